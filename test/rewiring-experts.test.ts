import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
    expect(() => router.routeQuery('x', { complexity: 2 })).toThrow(new RangeError('Expected finite number in [0, 1] for context.complexity but received 2 of type number'));
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

describe('RewiringExperts.routeWithFallback', () => {
  it('walks the fallback chain on failure, recording every attempt', async () => {
    const router = new RewiringExperts();
    const tried: string[] = [];
    const r = await router.routeWithFallback('This LEFT JOIN query is slow on Postgres', async (expert) => {
      tried.push(expert.id);
      if (tried.length < 3) throw Object.assign(new Error(`${expert.id} is down`), { status: 503 });
      return `answer from ${expert.id}`;
    });
    expect(tried[0]).toBe('sql');
    expect(r.expertId).toBe(tried[2]);
    expect(r.result).toBe(`answer from ${tried[2]}`);
    expect(r.attempts.map((a) => a.success)).toEqual([false, false, true]);
    expect(router.getMetrics()).toMatchObject({ outcomes: 3 });
    await expect(router.routeWithFallback('slow SQL', async () => Promise.reject(new Error('nope')), { maxAttempts: 2 })).rejects.toThrow(
      /^RewiringExperts\.routeWithFallback: every expert tried failed \(.*: nope; .*: nope\)$/,
    );
  });

  it('stops on abort', async () => {
    const router = new RewiringExperts();
    const ac = new AbortController();
    await expect(
      router.routeWithFallback('slow SQL', async () => {
        ac.abort(new Error('user left'));
        throw new Error('cancelled');
      }, { signal: ac.signal }),
    ).rejects.toThrow('user left');
  });
});

describe('RewiringExperts.routeWithFallback edge cases', () => {
  it('waits for the earliest recovery when every expert of the chain cools down', async () => {
    let now = 1_000_000;
    const router = new RewiringExperts({ clock: () => now, health: { cooldownMs: 50 } });
    // Cool every expert down at once.
    for (const e of router.experts()) {
      const d = router.routeQuery('anything', { exclude: router.experts().map((x) => x.id).filter((id) => id !== e.id) });
      router.recordOutcome(d.id, { success: false, latencyMs: 1, nonRetryable: true });
    }
    const slept: number[] = [];
    const t0 = now;
    const r = await router.routeWithFallback('slow SQL join', async (expert) => {
      slept.push(now - t0);
      return expert.id;
    }, { waitForRecovery: true, signal: AbortSignal.timeout(5000) }).catch((e: Error) => e);
    // The degraded choice is tried at once (nothing is available); when it succeeds no wait is needed.
    expect(r).toMatchObject({ expertId: 'sql' });
    expect(slept).toEqual([0]);
  });

  it('after the choice fails with every fallback cooling, waits and tries again', async () => {
    const router = new RewiringExperts({ health: { cooldownMs: 30 } }); // real clock: the wait is real
    for (const id of ['python', 'javascript', 'debug', 'ml', 'api']) {
      const d = router.routeQuery('anything', { exclude: router.experts().map((x) => x.id).filter((x) => x !== id) });
      router.recordOutcome(d.id, { success: false, latencyMs: 1, nonRetryable: true });
    }
    const tried: string[] = [];
    const t0 = Date.now();
    const r = await router.routeWithFallback('slow SQL join', async (expert) => {
      tried.push(expert.id);
      if (tried.length === 1) throw Object.assign(new Error('down'), { status: 401 });
      return 'ok';
    }, { waitForRecovery: true, maxAttempts: 3 });
    expect(r.result).toBe('ok');
    expect(tried[0]).toBe('sql');
    expect(tried).toHaveLength(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(20); // it waited for a cooldown to end
  });

  it('releases the in-flight count on abort and routes nothing for an aborted signal', async () => {
    const router = new RewiringExperts();
    const ac = new AbortController();
    await expect(router.routeWithFallback('slow SQL', async () => {
      ac.abort(new Error('gone'));
      throw new Error('cancelled');
    }, { signal: ac.signal })).rejects.toThrow('gone');
    expect(Object.values(router.getMetrics().inFlight).reduce((a, b) => a + b, 0)).toBe(0);
    const before = router.getMetrics().totalRouted;
    await expect(router.routeWithFallback('slow SQL', async () => 1, { signal: AbortSignal.abort(new Error('already')) })).rejects.toThrow('already');
    expect(router.getMetrics().totalRouted).toBe(before);
  });

  it('keeps a success even when its decision would have been evicted meanwhile, and survives odd throws', async () => {
    const router = new RewiringExperts({ maxPendingDecisions: 1 });
    let release!: () => void;
    const slow = router.routeWithFallback('slow SQL', () => new Promise<string>((r) => (release = () => r('ANSWER'))));
    for (let i = 0; i < 5; i++) router.routeQuery(`other query ${i}`); // would evict the oldest decision
    release();
    await expect(slow).resolves.toMatchObject({ result: 'ANSWER' });
    const r = await router.routeWithFallback('slow SQL', async (e) => {
      if (e.id === 'sql') throw Object.create(null);
      return 'fine';
    });
    expect(r.attempts[0]).toMatchObject({ success: false, error: '[object Object]' });
    expect(r.result).toBe('fine');
  });

  it('names health options as written and refuses duplicate expert ids', () => {
    expect(() => new RewiringExperts({ health: { failureRate: 2 } })).toThrow(/for options\.health\.failureRate/);
    const e = { id: 'x', domain: 'x', description: 'x things' };
    expect(() => new RewiringExperts({ experts: [e, e] })).toThrow(new RangeError("Expected an id not used by an earlier expert for options.experts[1].id but received 'x' of type string"));
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
