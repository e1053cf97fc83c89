/**
 * The one set of attention rules (lifecycle pass and monitor), and the one utilisation.
 */
import { describe, expect, it } from 'vitest';
import { attentionReasons, isFailing, recommend } from '../src/experts/control/attention-reasons';
import { emptyCounters, type ExpertCounters, utilization } from '../src/experts/control/counters';

function counters(c: Partial<ExpertCounters>): ExpertCounters {
  return { ...emptyCounters(), ...c };
}

// 10 outcomes, 4 failures, 2 s of latency: success 0.6, mean latency 200 ms, efficiency 3 per s.
const W = counters({ routed: 10, outcomes: 10, successes: 6, failures: 4, latencyMs: 2000 });

describe('attentionReasons', () => {
  it('applies only the rules whose facts are given, in one fixed order', () => {
    expect(attentionReasons({ window: W, minOutcomes: 1 })).toEqual([]);
    expect(
      attentionReasons({
        window: W,
        minOutcomes: 10,
        available: false,
        maxFailureRate: 0.3,
        trend: 'degrading',
        targets: { accuracy: 0.9, latency: 100 },
        utilization: 1.5,
        efficiencyFloor: 4,
        shareShifted: true,
      }),
    ).toEqual(['cooling-down', 'failing', 'degrading', 'below-accuracy-target', 'above-latency-target', 'overloaded', 'low-efficiency', 'share-shift']);
    // Idle: no request in the window while the pool had some.
    expect(attentionReasons({ window: emptyCounters(), minOutcomes: 1, poolRouted: 5 })).toEqual(['idle']);
    expect(attentionReasons({ window: emptyCounters(), minOutcomes: 1, poolRouted: 0 })).toEqual([]);
    expect(attentionReasons({ window: counters({ fallbacks: 1, outcomes: 1, successes: 1 }), minOutcomes: 1, poolRouted: 5 })).toEqual([]);
  });

  it('counts rates, targets and efficiency only with minOutcomes outcomes; the boundaries are strict', () => {
    const all = { available: true, maxFailureRate: 0.3, targets: { accuracy: 0.9, latency: 100 }, efficiencyFloor: 4 };
    expect(attentionReasons({ window: W, minOutcomes: 11, ...all })).toEqual([]);
    expect(attentionReasons({ window: W, minOutcomes: 10, ...all, maxFailureRate: 0.4, targets: { accuracy: 0.6, latency: 200 }, efficiencyFloor: 3, utilization: 1 })).toEqual([]);
    expect(isFailing(W, 10, 0.39)).toBe(true);
    expect(isFailing(W, 10, 0.4)).toBe(false);
    expect(isFailing(W, 11, 0)).toBe(false);
  });

  it('recommends by the first action in the order investigate, add-replicas, retire', () => {
    expect(recommend(['idle', 'overloaded'])).toBe('add-replicas');
    expect(recommend(['idle', 'share-shift'])).toBe('investigate');
    expect(recommend([])).toBe('none');
  });
});

describe('utilization', () => {
  it('is load over the slots of every replica', () => {
    expect(utilization(3, 2, 2)).toBe(0.75);
    expect(utilization(0, 4, 1)).toBe(0);
  });
});
