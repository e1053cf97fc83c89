/**
 * The lifecycle plan is a pure function: the same inputs give the same actions, in the order the
 * control plane applies them, and nothing it is given changes.
 */
import { describe, expect, it } from 'vitest';
import { emptyCounters, type ExpertCounters } from '../src/experts/control/counters';
import { resolvePolicy } from '../src/experts/control/lifecycle';
import { type LifecycleInput, planLifecycle } from '../src/experts/control/lifecycle-plan';

const OFF = { idleMs: false, maxFailureRate: false, mergeOverlap: false, driftThreshold: false } as const;

function counters(c: Partial<ExpertCounters>): ExpertCounters {
  return { ...emptyCounters(), ...c };
}

function input(o: Partial<LifecycleInput> & { policy: LifecycleInput['policy'] }): LifecycleInput {
  return {
    at: 100_000,
    window: { experts: new Map(), terms: new Map(), termsComplete: true },
    previous: null,
    poolChanged: false,
    active: ['a', 'b', 'c', 'd'].map((id) => ({ id, createdAt: 0, lastUsedAt: undefined })),
    ...o,
  };
}

describe('planLifecycle', () => {
  it('retires failing experts worst first, then idle ones longest idle first, never below minActive', () => {
    const experts = new Map([
      ['a', counters({ routed: 20, outcomes: 20, failures: 12, successes: 8 })], // 0.6
      ['b', counters({ routed: 20, outcomes: 20, failures: 18, successes: 2 })], // 0.9
      ['c', counters({ routed: 20, outcomes: 20, successes: 20 })],
    ]);
    const active = [
      { id: 'a', createdAt: 0, lastUsedAt: 99_000 },
      { id: 'b', createdAt: 0, lastUsedAt: 99_000 },
      { id: 'c', createdAt: 0, lastUsedAt: 99_000 },
      { id: 'd', createdAt: 0, lastUsedAt: 10_000 },
      { id: 'e', createdAt: 50_000, lastUsedAt: undefined },
    ];
    const policy = resolvePolicy({ ...OFF, maxFailureRate: 0.5, minOutcomes: 20, idleMs: 40_000, minActive: 2 });
    const plan = planLifecycle(input({ policy, active, window: { experts, terms: new Map(), termsComplete: true } }));
    expect(plan.actions).toEqual([
      { type: 'retire', retired: { id: 'b', reason: 'failing', failureRate: 0.9, outcomes: 20 } },
      { type: 'retire', retired: { id: 'a', reason: 'failing', failureRate: 0.6, outcomes: 20 } },
      // d idle 90 s, e 50 s since its registration: only d goes, minActive keeps c and e.
      { type: 'retire', retired: { id: 'd', reason: 'idle', idleForMs: 90_000 } },
    ]);
    expect(plan.routed).toEqual(new Map([['a', 20], ['b', 20], ['c', 20]]));
    expect(plan.outcomes).toBe(60);
    expect(plan.drift).toBeNull();
    // A failure rate needs minOutcomes: with more required, nothing is failing.
    const strict = planLifecycle(input({ policy: { ...policy, minOutcomes: 21 }, active, window: { experts, terms: new Map(), termsComplete: true } }));
    expect(strict.actions.map((a) => a.type === 'retire' && a.retired.reason)).toEqual(['idle', 'idle']);
  });

  it('merges overlapping experts into the one with more queries, each expert once, and only over complete terms', () => {
    const same = new Map([['join', 5], ['index', 5]]);
    const experts = new Map([
      ['a', counters({ routed: 20 })],
      ['b', counters({ routed: 30 })],
      ['c', counters({ routed: 25 })],
      ['d', counters({ routed: 25 })],
    ]);
    const terms = new Map([['a', same], ['b', same], ['c', same], ['d', new Map([['pandas', 9]])]]);
    const policy = resolvePolicy({ ...OFF, mergeOverlap: 0.9, minMergeQueries: 20 });
    const plan = planLifecycle(input({ policy, window: { experts, terms, termsComplete: true } }));
    // a~b, a~c, b~c all overlap fully; the first pair in order merges, the others share an expert.
    expect(plan.actions).toEqual([{ type: 'merge', merged: { into: 'b', from: 'a', overlap: 1 } }]);
    expect(planLifecycle(input({ policy, window: { experts, terms, termsComplete: false } })).actions).toEqual([]);
    expect(planLifecycle(input({ policy: { ...policy, minActive: 4 }, window: { experts, terms, termsComplete: true } })).actions).toEqual([]);
  });

  it('measures drift against the previous window, and leaves its inputs as they were', () => {
    const experts = new Map([['a', counters({ routed: 30 })], ['b', counters({ routed: 10 })]]);
    const previous = new Map([['a', 10], ['b', 30]]);
    const given = input({ policy: resolvePolicy({ ...OFF, driftThreshold: 0.1, minDriftQueries: 20 }), previous, poolChanged: true, window: { experts, terms: new Map(), termsComplete: true } });
    const snapshot = structuredClone(given);
    const plan = planLifecycle(given);
    expect(plan.drift).toMatchObject({ detected: true, previousQueries: 40, currentQueries: 40, poolChanged: true });
    expect(plan.drift!.shifts.map((s) => s.id)).toEqual(['a', 'b']);
    expect(plan.actions).toEqual([]);
    expect(given).toEqual(snapshot);
    expect(planLifecycle(given)).toEqual(plan);
    // Off, or on the first pass: no drift.
    expect(planLifecycle({ ...given, policy: resolvePolicy(OFF) }).drift).toBeNull();
    expect(planLifecycle({ ...given, previous: null }).drift).toBeNull();
  });
});
