import { describe, expect, it } from 'vitest';

import { type ExpertHealth, HealthTracker, type HealthTrackerOptions } from '../src/experts/routing/health';
import { rng } from './support/random';

/** A controllable clock. */
function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, set: (x: number) => (t = x), advance: (ms: number) => (t += ms) };
}

function setup(opts: Omit<HealthTrackerOptions, 'now' | 'onChange'> = {}) {
  const c = clock();
  const events: Array<[string, ExpertHealth]> = [];
  const h = new HealthTracker({ ...opts, now: c.now, onChange: (id, s) => events.push([id, s]) });
  return { c, h, events };
}

const ok = { success: true } as const;
const fail = { success: false } as const;

describe('HealthTracker cooldown rules', () => {
  it('never cools down on the first failure', () => {
    const { h, events } = setup();
    const s = h.record('a', fail);
    expect(s).toEqual({ available: true, coolingUntil: null, windowRequests: 1, windowFailures: 1, failureRate: 1, reason: null });
    expect(h.isAvailable('a')).toBe(true);
    expect(events).toEqual([]);
  });

  it('1 failure of 2 is not above 0.5; 2 of 3 is', () => {
    const { c, h, events } = setup();
    h.record('a', ok);
    c.advance(10);
    expect(h.record('a', fail).available).toBe(true);
    expect(h.status('a')).toMatchObject({ windowRequests: 2, windowFailures: 1, failureRate: 0.5, available: true });
    c.advance(10);
    const s = h.record('a', fail);
    expect(s).toEqual({ available: false, coolingUntil: c.now() + 5_000, windowRequests: 3, windowFailures: 2, failureRate: 2 / 3, reason: 'failure-rate' });
    expect(events).toEqual([['a', s]]);
  });

  it('2 failures of 2 cool down at the second', () => {
    const { h } = setup();
    h.record('a', fail);
    expect(h.record('a', fail)).toMatchObject({ available: false, reason: 'failure-rate' });
  });

  it('a success never starts a cooldown, and neither does a lone failure after successes', () => {
    const { c, h } = setup();
    for (let i = 0; i < 5; i++) h.record('a', ok);
    c.advance(1);
    expect(h.record('a', fail).available).toBe(true);
    expect(h.record('a', { success: true, nonRetryable: true, retryAfterMs: 9_000 })).toMatchObject({ available: true, windowFailures: 1 });
  });

  it('cools down at once on a non-retryable failure, for cooldownMs or retryAfterMs', () => {
    const { c, h, events } = setup({ cooldownMs: 7_000 });
    expect(h.record('a', { success: false, nonRetryable: true })).toMatchObject({ available: false, coolingUntil: c.now() + 7_000, reason: 'non-retryable' });
    expect(h.record('b', { success: false, nonRetryable: true, retryAfterMs: 30_000 })).toMatchObject({ coolingUntil: c.now() + 30_000, reason: 'non-retryable' });
    expect(events.map(([id]) => id)).toEqual(['a', 'b']);
  });

  it('cools down at once for retryAfterMs; 0 counts as not given', () => {
    const { c, h } = setup();
    expect(h.record('a', { success: false, retryAfterMs: 12_345 })).toMatchObject({ available: false, coolingUntil: c.now() + 12_345, reason: 'retry-after' });
    expect(h.record('b', { success: false, retryAfterMs: 0 })).toMatchObject({ available: true, reason: null });
    // The next failure trips by rate, with the default cooldown.
    expect(h.record('b', { success: false, retryAfterMs: 0 })).toMatchObject({ coolingUntil: c.now() + 5_000, reason: 'failure-rate' });
  });

  it('recovers at the exact ms, clears the window and reports it lazily', () => {
    const { c, h, events } = setup();
    h.record('a', fail);
    const until = h.record('a', fail).coolingUntil!;
    c.set(until - 1);
    expect(h.isAvailable('a')).toBe(false);
    expect(events).toHaveLength(1);
    c.set(until);
    expect(events).toHaveLength(1); // nothing until asked
    expect(h.status('a')).toEqual({ available: true, coolingUntil: null, windowRequests: 0, windowFailures: 0, failureRate: 0, reason: null });
    expect(events).toHaveLength(2);
    expect(events[1]).toEqual(['a', { available: true, coolingUntil: null, windowRequests: 0, windowFailures: 0, failureRate: 0, reason: null }]);
    // The old failures are gone: one new failure is a first failure again.
    expect(h.record('a', fail).available).toBe(true);
  });

  it('a record after the end of a cooldown reports the recovery first', () => {
    const { c, h, events } = setup();
    h.record('a', { success: false, retryAfterMs: 100 });
    c.advance(100);
    expect(h.record('a', ok)).toMatchObject({ available: true, windowRequests: 1 });
    expect(events.map(([, s]) => s.available)).toEqual([false, true]);
  });

  it('slides the window: an outcome counts while now < t + windowMs', () => {
    const { c, h } = setup({ windowMs: 1_000 });
    h.record('a', fail); // t0
    c.advance(999);
    expect(h.status('a').windowRequests).toBe(1);
    c.advance(1);
    expect(h.status('a').windowRequests).toBe(0);
    // So a failure 1000 ms after another is a first failure again.
    expect(h.record('a', fail).available).toBe(true);
    c.advance(999);
    expect(h.record('a', fail)).toMatchObject({ available: false, windowRequests: 2 });
  });

  it('old successes leave the window too, so later failures weigh more', () => {
    const { c, h } = setup({ windowMs: 1_000 });
    h.record('a', ok);
    h.record('a', ok);
    c.advance(500);
    expect(h.record('a', fail).available).toBe(true); // 1 of 3
    c.advance(500); // the successes leave
    expect(h.record('a', fail)).toMatchObject({ available: false, windowRequests: 2, windowFailures: 2 });
  });

  it('honours failureRate and minRequests', () => {
    const { h } = setup({ failureRate: 0.25, minRequests: 4 });
    h.record('a', ok);
    h.record('a', fail);
    h.record('a', ok);
    expect(h.status('a').available).toBe(true); // only 3 requests
    expect(h.record('a', ok).available).toBe(true); // 1 of 4 = 0.25, not above
    expect(h.record('a', fail).reason).toBe('failure-rate'); // 2 of 5
    const one = setup({ minRequests: 1 });
    expect(one.h.record('a', fail).available).toBe(false);
  });

  it('extends a cooldown when a later failure asks for longer, never shortens it', () => {
    const { c, h, events } = setup();
    h.record('a', { success: false, retryAfterMs: 10_000 });
    const until = c.now() + 10_000;
    c.advance(1_000);
    expect(h.record('a', { success: false, retryAfterMs: 2_000 })).toMatchObject({ coolingUntil: until, reason: 'retry-after' });
    expect(events).toHaveLength(1);
    expect(h.record('a', { success: false, retryAfterMs: 20_000 })).toMatchObject({ coolingUntil: c.now() + 20_000 });
    expect(events).toHaveLength(2);
    expect(h.record('a', { success: true })).toMatchObject({ available: false, coolingUntil: c.now() + 20_000 });
  });

  it('merges outcomes of one ms and survives a clock stepping back', () => {
    const { c, h } = setup({ windowMs: 100 });
    h.record('a', ok);
    h.record('a', fail);
    c.advance(-50);
    h.record('a', ok);
    expect(h.toJSON().experts[0]!.window).toEqual([[1_000_000, 3, 1]]);
    c.set(1_000_000 + 99);
    expect(h.status('a').windowRequests).toBe(3);
    c.set(1_000_000 + 100);
    expect(h.status('a').windowRequests).toBe(0);
  });

  it('matches a naive reference over a long random run', () => {
    const windowMs = 300;
    const cooldownMs = 200;
    const { c, h } = setup({ windowMs, cooldownMs });
    const rand = rng(7);
    // Reference: every outcome kept as [t, failed]; cooldown per the rules.
    const log: Array<[number, boolean]> = [];
    let until: number | null = null;
    for (let step = 0; step < 5_000; step++) {
      c.advance(Math.floor(rand() * 8));
      const t = c.now();
      if (until !== null && t >= until) {
        until = null;
        log.length = 0;
      }
      const success = rand() < 0.7;
      const retryAfterMs = !success && rand() < 0.02 ? 1 + Math.floor(rand() * 400) : undefined;
      log.push([t, !success]);
      const inWin = log.filter(([x]) => t < x + windowMs);
      const fails = inWin.filter(([, f]) => f).length;
      if (!success) {
        const trip = retryAfterMs !== undefined || (inWin.length >= 2 && fails / inWin.length > 0.5);
        const end = t + (retryAfterMs ?? cooldownMs);
        if (trip && (until === null || end > until)) until = end;
      }
      const s = h.record('a', retryAfterMs === undefined ? { success } : { success, retryAfterMs });
      expect(s.windowRequests).toBe(inWin.length);
      expect(s.windowFailures).toBe(fails);
      expect(s.coolingUntil).toBe(until);
    }
  });
});

describe('HealthTracker queries', () => {
  it('reports an unknown expert as available', () => {
    const { h } = setup();
    expect(h.status('nobody')).toEqual({ available: true, coolingUntil: null, windowRequests: 0, windowFailures: 0, failureRate: 0, reason: null });
    expect(h.isAvailable('nobody')).toBe(true);
  });

  it('earliestRecovery: null for none, now when one is available, else the soonest end', () => {
    const { c, h, events } = setup();
    expect(h.earliestRecovery([])).toBeNull();
    h.record('a', { success: false, retryAfterMs: 3_000 });
    h.record('b', { success: false, retryAfterMs: 1_000 });
    h.record('c', { success: false, retryAfterMs: 2_000 });
    const t0 = c.now();
    expect(h.earliestRecovery(['a', 'b', 'c'])).toBe(t0 + 1_000);
    expect(h.earliestRecovery(['a', 'c'])).toBe(t0 + 2_000);
    expect(h.earliestRecovery(['a', 'fresh'])).toBe(t0);
    c.advance(1_000);
    expect(h.earliestRecovery(['a', 'b'])).toBe(t0 + 1_000); // b is back: now
    expect(events.at(-1)).toEqual(['b', expect.objectContaining({ available: true })]);
  });

  it('remove forgets an expert without an event', () => {
    const { h, events } = setup();
    h.record('a', { success: false, nonRetryable: true });
    expect(h.remove('a')).toBe(true);
    expect(h.remove('a')).toBe(false);
    expect(h.isAvailable('a')).toBe(true);
    expect(events).toHaveLength(1);
  });

  it('accepts a whole RoutingOutcome', () => {
    const { h } = setup();
    expect(h.record('a', { success: false, latencyMs: 12, quality: 0, nonRetryable: true } as never).reason).toBe('non-retryable');
  });
});

describe('HealthTracker JSON', () => {
  it('round-trips through JSON text, then recovers on the restored clock', () => {
    const { c, h } = setup();
    h.record('a', ok);
    c.advance(5);
    h.record('a', fail);
    h.record('b', { success: false, retryAfterMs: 8_000 });
    const json = JSON.parse(JSON.stringify(h));
    expect(json).toEqual({
      version: 1,
      experts: [
        { id: 'a', window: [[1_000_000, 1, 0], [1_000_005, 1, 1]], coolingUntil: null, reason: null },
        { id: 'b', window: [[1_000_005, 1, 1]], coolingUntil: 1_008_005, reason: 'retry-after' },
      ],
    });
    const events: string[] = [];
    const r = HealthTracker.fromJSON(json, { now: c.now, onChange: (id, s) => events.push(`${id}:${s.available}`) });
    expect(r.toJSON()).toEqual(json);
    expect(r.status('a')).toEqual(h.status('a'));
    expect(r.status('b')).toEqual(h.status('b'));
    c.set(1_008_005);
    expect(r.isAvailable('b')).toBe(true);
    expect(events).toEqual(['b:true']);
    // The restored window still counts: a second failure for a trips by rate (2 of 3).
    c.set(1_000_010);
    expect(r.record('a', fail).reason).toBe('failure-rate');
  });

  it('load replaces state all or nothing', () => {
    const { h } = setup();
    h.record('x', { success: false, nonRetryable: true });
    const before = h.toJSON();
    expect(() => h.load({ version: 1, experts: [{ id: 'y', window: [], coolingUntil: null, reason: null }, { id: 'y', window: [], coolingUntil: null, reason: null }] })).toThrow(
      new RangeError("Expected unique id for json.experts[1].id but received 'y' of type string"),
    );
    expect(h.toJSON()).toEqual(before);
    h.load({ version: 1, experts: [] });
    expect(h.toJSON()).toEqual({ version: 1, experts: [] });
  });

  it('rejects bad JSON with exact messages', () => {
    const e = (id: unknown, window: unknown, coolingUntil: unknown = null, reason: unknown = null) => ({ version: 1, experts: [{ id, window, coolingUntil, reason }] });
    const cases: Array<[unknown, Error]> = [
      [null, new TypeError('Expected HealthTrackerJSON object for json but received null')],
      [{ version: 2, experts: [] }, new RangeError('Expected 1 for json.version but received 2 of type number')],
      [{ version: 1 }, new TypeError('Expected Array for json.experts but received undefined')],
      [{ version: 1, experts: [7] }, new TypeError('Expected object for json.experts[0] but received 7 of type number')],
      [e('', []), new RangeError("Expected non-empty string for json.experts[0].id but received '' of type string")],
      [e('a', {}), new TypeError('Expected Array for json.experts[0].window but received object')],
      [e('a', [[1, 2]]), new TypeError('Expected [time, requests, failures] for json.experts[0].window[0] but received Array of length 2')],
      [e('a', [[5, 1, 0], [5, 1, 0]]), new RangeError('Expected number > 5 for json.experts[0].window[1][0] but received 5 of type number')],
      [e('a', [[5, 0, 0]]), new RangeError('Expected integer >= 1 for json.experts[0].window[0][1] but received 0 of type number')],
      [e('a', [[5, 2, 3]]), new RangeError('Expected integer in [0, 2] for json.experts[0].window[0][2] but received 3 of type number')],
      [e('a', [], 10, 'tired'), new RangeError("Expected one of 'failure-rate', 'non-retryable', 'retry-after' for json.experts[0].reason but received 'tired' of type string")],
      [e('a', [], null, 'retry-after'), new TypeError('Expected finite number for json.experts[0].coolingUntil but received null')],
    ];
    for (const [json, err] of cases) expect(() => HealthTracker.fromJSON(json)).toThrow(err);
  });
});

describe('HealthTracker argument checks', () => {
  it('rejects bad options with exact messages', () => {
    const cases: Array<[unknown, Error]> = [
      [5, new TypeError('Expected an options object for options but received 5 of type number')],
      [{ window: 1 }, new TypeError("Unknown option 'window' in options (expected one of: windowMs, failureRate, minRequests, cooldownMs, onChange, now)")],
      [{ windowMs: 0 }, new RangeError('Expected finite number > 0 for options.windowMs but received 0 of type number')],
      [{ failureRate: 1.5 }, new RangeError('Expected number in [0, 1] for options.failureRate but received 1.5 of type number')],
      [{ failureRate: '0.5' }, new TypeError("Expected number in [0, 1] for options.failureRate but received '0.5' of type string")],
      [{ minRequests: 0 }, new RangeError('Expected integer >= 1 for options.minRequests but received 0 of type number')],
      [{ cooldownMs: -1 }, new RangeError('Expected finite number > 0 for options.cooldownMs but received -1 of type number')],
      [{ onChange: 1 }, new TypeError('Expected function for options.onChange but received 1 of type number')],
      [{ now: 'x' }, new TypeError("Expected function for options.now but received 'x' of type string")],
    ];
    for (const [opts, err] of cases) expect(() => new HealthTracker(opts as HealthTrackerOptions)).toThrow(err);
  });

  it('rejects bad records and ids with exact messages', () => {
    const { h } = setup();
    const rec = (id: unknown, o: unknown) => () => h.record(id as string, o as never);
    expect(rec('', ok)).toThrow(new RangeError("Expected non-empty string for expertId but received '' of type string"));
    expect(rec('a', null)).toThrow(new TypeError('Expected an outcome object for outcome but received null'));
    expect(rec('a', {})).toThrow(new TypeError('Expected boolean for outcome.success but received undefined'));
    expect(rec('a', { success: false, nonRetryable: 1 })).toThrow(new TypeError('Expected boolean for outcome.nonRetryable but received 1 of type number'));
    expect(rec('a', { success: false, retryAfterMs: -5 })).toThrow(new RangeError('Expected finite number >= 0 for outcome.retryAfterMs but received -5 of type number'));
    expect(rec('a', { success: true, retryAfterMs: Number.NaN })).toThrow(new RangeError('Expected finite number >= 0 for outcome.retryAfterMs but received NaN of type number'));
    expect(() => h.status(3 as never)).toThrow(new TypeError('Expected non-empty string for expertId but received 3 of type number'));
    expect(() => h.earliestRecovery('a' as never)).toThrow(new TypeError("Expected Array of expert ids for expertIds but received 'a' of type string"));
    expect(() => h.earliestRecovery(['a', ''])).toThrow(new RangeError("Expected non-empty string for expertIds[1] but received '' of type string"));
    expect(h.status('a').windowRequests).toBe(0); // nothing was recorded by the refused calls
  });
});
