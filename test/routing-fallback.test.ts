import { describe, expect, it } from 'vitest';
import { FallbackOrder } from '../src/experts/routing/fallback-order';
import { RewiringExperts } from '../src/index';

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
});

describe('RewiringExperts.routeWithFallback failures', () => {
  it('reads status 401/403/404 as non-retryable and keeps a sane retryAfterMs', async () => {
    let now = 1_000_000;
    const router = new RewiringExperts({ clock: () => now });
    const fail = (status: number, retryAfterMs?: unknown) => async () => {
      throw Object.assign(new Error(`HTTP ${status}`), { status, retryAfterMs });
    };
    await router.routeWithFallback('slow SQL join', fail(404), { maxAttempts: 1 }).catch(() => undefined);
    expect(router.expertHealth('sql')).toMatchObject({ available: false, reason: 'non-retryable' });
    await router.routeWithFallback('pandas groupby', fail(429, 30_000), { maxAttempts: 1 }).catch(() => undefined);
    expect(router.expertHealth('python')).toMatchObject({ available: false, reason: 'retry-after', coolingUntil: now + 30_000 });
    await router.routeWithFallback('React hooks', fail(500, Number.NaN), { maxAttempts: 1 }).catch(() => undefined);
    expect(router.expertHealth('javascript')).toMatchObject({ available: true, windowFailures: 1 });
  });

  it('checks its arguments before routing', async () => {
    const router = new RewiringExperts();
    await expect(router.routeWithFallback('q', 5 as never)).rejects.toThrow(new TypeError('Expected function for call but received 5 of type number'));
    await expect(router.routeWithFallback('q', async () => 1, { maxAttempts: 0 })).rejects.toThrow(
      new RangeError('Expected integer in [1, 17] for options.maxAttempts but received 0 of type number'),
    );
    await expect(router.routeWithFallback('q', async () => 1, { signal: {} as never })).rejects.toThrow(
      new TypeError('Expected AbortSignal for options.signal but received object'),
    );
    expect(router.getMetrics().totalRouted).toBe(0);
  });
});

describe('FallbackOrder', () => {
  it('orders by affinity from the chosen expert, ties by rank, at most max', () => {
    const w: Record<string, number> = { 'a>b': 0.2, 'a>c': 0.9, 'a>d': 0.2, 'a>e': 0.5 };
    const graph = { weight: (from: string, to: string) => w[`${from}>${to}`] ?? 0 };
    expect(new FallbackOrder(3).select(graph, 'a', ['b', 'c', 'd', 'e'])).toEqual(['c', 'e', 'b']);
    expect(new FallbackOrder(0).select(graph, 'a', ['b', 'c'])).toEqual([]);
    // More candidates than its scratch holds, all weights equal: the strategy's rank.
    const many = Array.from({ length: 200 }, (_, i) => `x${i}`);
    const order = new FallbackOrder(16);
    expect(order.select(graph, 'a', many)).toEqual(many.slice(0, 16));
    expect(order.select(graph, 'a', ['e', 'b'])).toEqual(['e', 'b']);
  });
});
