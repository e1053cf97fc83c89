import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_EXPERTS, RewiringExperts, RoutingStrategy } from '../src/index';
import { QUERIES } from './support/labelled-queries';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-routing-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function clock(start = 1_000_000) {
  const c = { now: start, fn: () => c.now };
  return c;
}


describe('RewiringExperts.routeQuery', () => {
  it('routes labelled queries of each domain to their expert, with reasons and fallbacks', () => {
    const router = new RewiringExperts();
    let right = 0;
    let total = 0;
    for (const [domain, qs] of Object.entries(QUERIES)) {
      for (const q of qs) {
        const d = router.routeQuery(q);
        total++;
        if (d.expertId === domain) right++;
        expect(d.fallbacks).toHaveLength(3);
        expect(d.fallbacks).not.toContain(d.expertId);
        expect(d.ranking[0]!.id).toBe(d.expertId);
        expect(d.reasons.relevance).toBeGreaterThanOrEqual(0);
        expect(d.reasons.relevance).toBeLessThanOrEqual(1);
        expect(d.reasons.health).toBe('available');
        expect(d.strategy).toBe(RoutingStrategy.PERFORMANCE_BASED);
      }
    }
    expect(right / total).toBeGreaterThanOrEqual(0.8);
    expect(router.getMetrics().totalRouted).toBe(total);
  });

  it('honours exclude and the domain hint, and rejects bad input with the field named', () => {
    const router = new RewiringExperts();
    expect(router.routeQuery('slow SQL join', { exclude: ['sql'] }).expertId).not.toBe('sql');
    expect(() => router.routeQuery('')).toThrow(RangeError);
    expect(() => router.routeQuery('x', { complexity: 2 })).toThrow(new RangeError('Expected number in [0, 1] for context.complexity but received 2 of type number'));
    expect(() => router.routeQuery('x', { exclude: DEFAULT_EXPERTS.map((e) => e.id) })).toThrow(
      'RewiringExperts.routeQuery: no expert to route to (none registered, or all excluded)',
    );
    expect(() => router.routeQuery('x', { colour: 'red' } as never)).toThrow(TypeError);
    expect(() => new RewiringExperts({ strategy: 'random' as never })).toThrow(/options\.strategy/);
    expect(() => router.expertHealth('nope')).toThrow(RangeError);
  });

  it('adds and removes experts at run time', () => {
    const router = new RewiringExperts();
    router.addExpert({ id: 'rust', domain: 'rust', description: 'Rust ownership, borrow checker, lifetimes, cargo crates', keywords: ['rust', 'cargo', 'borrow checker', 'lifetime'] });
    expect(router.routeQuery('the borrow checker rejects my lifetime in Rust').expertId).toBe('rust');
    expect(router.removeExpert('rust')).toBe(true);
    expect(router.removeExpert('rust')).toBe(false);
    expect(router.experts().map((e) => e.id)).not.toContain('rust');
  });
});

describe('RewiringExperts learning and health', () => {
  for (const strategy of Object.values(RoutingStrategy)) {
    it(`${strategy}: moves traffic away from a failing expert within a bounded number of outcomes, and back after recovery`, () => {
      const c = clock();
      const router = new RewiringExperts({ strategy, clock: c.fn, health: { cooldownMs: 5_000 } });
      const q = 'This LEFT JOIN query is slow on Postgres';
      expect(router.routeQuery(q).expertId).toBe('sql');
      // sql starts failing.
      let routedAway = -1;
      for (let i = 0; i < 10; i++) {
        const d = router.routeQuery(q);
        if (d.expertId !== 'sql') {
          routedAway = i;
          break;
        }
        router.recordOutcome(d.id, { success: false, latencyMs: 100 });
        c.now += 100;
      }
      expect(routedAway).toBeGreaterThanOrEqual(1); // one failure never moves it
      expect(routedAway).toBeLessThanOrEqual(3);
      // Recovery: sql answers well again, the others answer this query poorly.
      c.now += 5_000;
      expect(router.expertHealth('sql').available).toBe(true);
      const chosen: string[] = [];
      for (let i = 0; i < 40; i++) {
        const d = router.routeQuery(q);
        chosen.push(d.expertId);
        router.recordOutcome(d.id, d.expertId === 'sql' ? { success: true, latencyMs: 100, quality: 1 } : { success: true, latencyMs: 100, quality: 0.2 });
        c.now += 100;
      }
      expect(chosen.slice(-5)).toEqual(['sql', 'sql', 'sql', 'sql', 'sql']);
    });
  }

  it('cools an expert when more than half its requests failed, never on the first', () => {
    const c = clock();
    const router = new RewiringExperts({ clock: c.fn, health: { cooldownMs: 5_000 } });
    const q = 'This LEFT JOIN query is slow on Postgres';
    const d1 = router.routeQuery(q);
    router.recordOutcome(d1.id, { success: false, latencyMs: 5 });
    expect(router.expertHealth('sql').available).toBe(true);
    const d2 = router.routeQuery(q);
    router.recordOutcome(d2.id, { success: false, latencyMs: 5, expertId: d2.expertId });
    expect(router.expertHealth('sql')).toMatchObject({ available: false, reason: 'failure-rate', coolingUntil: c.now + 5_000 });
    expect(router.routeQuery(q).expertId).not.toBe('sql');
    c.now += 5_000;
    expect(router.routeQuery(q).expertId).toBe('sql');
  });

  it('cools an expert at once on a non-retryable error, for retry-after when given', () => {
    const c = clock();
    const router = new RewiringExperts({ clock: c.fn });
    const d = router.routeQuery('pandas DataFrame groupby');
    router.recordOutcome(d.id, { success: false, latencyMs: 5, nonRetryable: true });
    expect(router.expertHealth(d.expertId)).toMatchObject({ available: false, reason: 'non-retryable' });
    const e = router.routeQuery('REST endpoint pagination');
    router.recordOutcome(e.id, { success: false, latencyMs: 5, retryAfterMs: 30_000 });
    expect(router.expertHealth(e.expertId)).toMatchObject({ available: false, reason: 'retry-after', coolingUntil: c.now + 30_000 });
  });

  it('checks outcomes: unknown decision, foreign expert, NaN latency', () => {
    const router = new RewiringExperts();
    const d = router.routeQuery('slow SQL join');
    expect(() => router.recordOutcome('nope', { success: true, latencyMs: 1 })).toThrow(RangeError);
    expect(() => router.recordOutcome(d.id, { success: true, latencyMs: Number.NaN })).toThrow(
      new RangeError('Expected finite number >= 0 for outcome.latencyMs but received NaN of type number'),
    );
    const foreign = DEFAULT_EXPERTS.map((e) => e.id).find((id) => id !== d.expertId && !d.fallbacks.includes(id))!;
    expect(() => router.recordOutcome(d.id, { success: true, latencyMs: 1, expertId: foreign })).toThrow(/outcome\.expertId/);
    router.recordOutcome(d.id, { success: true, latencyMs: 12 });
    expect(router.getMetrics()).toMatchObject({ outcomes: 1, successRate: 1, meanLatencyMs: 12 });
  });

  it('reports metrics for an expert whose id is __proto__', () => {
    const router = new RewiringExperts({ experts: [{ id: '__proto__', name: 'P', domain: 'sql', description: 'SQL joins', keywords: ['join'] }, { id: 'b', name: 'B', domain: 'python', description: 'Python lists', keywords: ['list'] }] });
    router.routeQuery('slow SQL join');
    const m = router.getMetrics();
    expect(Object.keys(m.utilization)).toEqual(['__proto__', 'b']);
    expect(m.utilization['__proto__']).toBe(1);
    expect(m.inFlight['__proto__']).toBe(1);
  });

  it('closes a decision on success and keeps at most maxPendingDecisions open', () => {
    const router = new RewiringExperts({ maxPendingDecisions: 2 });
    const a = router.routeQuery('slow SQL join');
    router.recordOutcome(a.id, { success: true, latencyMs: 3 });
    expect(() => router.recordOutcome(a.id, { success: true, latencyMs: 3 })).toThrow(RangeError);
    const b = router.routeQuery('pandas groupby');
    const c = router.routeQuery('React hooks');
    const d = router.routeQuery('REST pagination'); // drops b, the oldest open decision
    expect(() => router.recordOutcome(b.id, { success: false, latencyMs: 3 })).toThrow(RangeError);
    router.recordOutcome(c.id, { success: false, latencyMs: 3 });
    router.recordOutcome(d.id, { success: true, latencyMs: 3 });
    expect(Object.values(router.getMetrics().inFlight).reduce((x, y) => x + y, 0)).toBe(0);
  });

  it('rewires the expert graph from fallback outcomes and counts the events', () => {
    const router = new RewiringExperts({ maxFallbacks: 3 });
    const events: unknown[] = [];
    router.on('rewired', (e) => events.push(e));
    const q = 'Segmentation fault with a stack trace in gdb';
    const first = router.routeQuery(q);
    const last = first.fallbacks.at(-1)!;
    // The last fallback keeps rescuing the first choice: it moves up the fallback order.
    for (let i = 0; i < 6; i++) {
      const d = router.routeQuery(q);
      router.recordOutcome(d.id, { success: true, latencyMs: 10, expertId: last });
      if (d.fallbacks[0] === last) break;
    }
    expect(router.routeQuery(q).fallbacks[0]).toBe(last);
    expect(events.length).toBeGreaterThan(0);
    expect(router.getMetrics().rewiringEvents).toBe(events.length);
  });
});

describe('RewiringExperts options and events', () => {
  it('names health options as written and refuses duplicate expert ids', () => {
    expect(() => new RewiringExperts({ health: { failureRate: 2 } })).toThrow(/for options\.health\.failureRate/);
    const e = { id: 'x', domain: 'x', description: 'x things' };
    expect(() => new RewiringExperts({ experts: [e, e] })).toThrow(new RangeError("Expected an id not used by an earlier expert for options.experts[1].id but received 'x' of type string"));
  });

  it("sends a throwing listener's error to 'error' listeners, else to process.emitWarning, never failing the call", () => {
    const router = new RewiringExperts();
    router.on('routed', () => {
      throw new Error('routed listener bug');
    });
    const seen: string[] = [];
    router.on('routed', (d) => seen.push(d.expertId)); // still called
    const errors: string[] = [];
    const onError = (e: Error) => errors.push(e.message);
    router.on('error', onError);
    expect(router.routeQuery('slow SQL join').expertId).toBe('sql');
    expect(errors).toEqual(['routed listener bug']);
    // No 'error' listener: a warning, not an exception on a later tick.
    router.off('error', onError);
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const d = router.routeQuery('pandas groupby');
      expect(d.expertId).toBe('python');
      expect(router.getMetrics().inFlight.python).toBe(1);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0]![0]).toBe("a 'routed' listener threw: routed listener bug");
    } finally {
      warn.mockRestore();
    }
    expect(seen).toEqual(['sql', 'python']);
  });

  it("emits 'outcome' with the expert filled in only when someone listens", () => {
    const router = new RewiringExperts();
    const d = router.routeQuery('slow SQL join');
    router.recordOutcome(d.id, { success: false, latencyMs: 3 }); // nobody listens: nothing to build
    const got: unknown[] = [];
    router.on('outcome', (id, o) => got.push([id, o]));
    router.recordOutcome(d.id, { success: true, latencyMs: 4, quality: 1 });
    expect(got).toEqual([[d.id, { success: true, latencyMs: 4, quality: 1, expertId: 'sql', nonRetryable: false }]]);
  });
});

describe('RewiringExperts persistence', () => {
  it('saves and loads experts, learned state, graph, health and counters', async () => {
    const c = clock();
    const router = new RewiringExperts({ strategy: RoutingStrategy.ADAPTIVE, clock: c.fn });
    router.addExpert({ id: 'rust', domain: 'rust', description: 'Rust ownership and cargo' });
    for (const [, qs] of Object.entries(QUERIES)) {
      for (const q of qs) {
        const d = router.routeQuery(q);
        router.recordOutcome(d.id, { success: d.expertId !== 'ml', latencyMs: 50 });
      }
    }
    const path = join(dir, 'router.json');
    await router.save(path);
    const loaded = await RewiringExperts.load(path, { clock: c.fn });
    expect(loaded.strategy).toBe(RoutingStrategy.ADAPTIVE);
    expect(loaded.experts()).toEqual(router.experts());
    const { inFlight: _a, ...m1 } = router.getMetrics();
    const { inFlight: _b, ...m2 } = loaded.getMetrics();
    expect(m2).toEqual(m1);
    for (const qs of Object.values(QUERIES)) {
      for (const q of qs) expect(loaded.routeQuery(q).ranking).toEqual(router.routeQuery(q).ranking);
    }
  });
});
