/**
 * Traffic counters of one expert (or one domain) over some span of time, and the figures the
 * control plane derives from them.
 * @module
 */

/**
 * What the control plane counts per expert, from the router's `'routed'` and `'outcome'`
 * events. Counters over a window are sums of the same counters over its time buckets.
 *
 * @example
 * ```ts
 * const c: ExpertCounters = control.getExpertStatus().experts[0]!.total;
 * console.log(c.routed, c.successes / Math.max(1, c.outcomes));
 * ```
 */
export interface ExpertCounters {
  /** Queries routed to it (it was the decision's choice). */
  routed: number;
  /**
   * Outcomes recorded for it as a fallback: queries routed to another expert that were then
   * tried on it. `routed + fallbacks` is the requests it was given (its *attempts*).
   */
  fallbacks: number;
  /** Outcomes recorded for it (the chosen expert or a fallback that was tried). */
  outcomes: number;
  /** Successful outcomes. */
  successes: number;
  /** Failed outcomes. */
  failures: number;
  /** Sum of the outcomes' `latencyMs`. */
  latencyMs: number;
  /** Sum of the reported `quality` values. */
  qualitySum: number;
  /** Outcomes that reported a quality. */
  qualityCount: number;
}

/** Zeroed counters. */
export function emptyCounters(): ExpertCounters {
  return { routed: 0, fallbacks: 0, outcomes: 0, successes: 0, failures: 0, latencyMs: 0, qualitySum: 0, qualityCount: 0 };
}

/** Adds `b` into `a` (in place) and returns `a`. */
export function addCounters(a: ExpertCounters, b: Readonly<ExpertCounters>): ExpertCounters {
  a.routed += b.routed;
  a.fallbacks += b.fallbacks;
  a.outcomes += b.outcomes;
  a.successes += b.successes;
  a.failures += b.failures;
  a.latencyMs += b.latencyMs;
  a.qualitySum += b.qualitySum;
  a.qualityCount += b.qualityCount;
  return a;
}

/** successes / outcomes, 0 before any outcome (the router's convention). */
export function successRate(c: Readonly<ExpertCounters>): number {
  return c.outcomes === 0 ? 0 : c.successes / c.outcomes;
}

/** Mean outcome latency in ms, 0 before any outcome. */
export function meanLatency(c: Readonly<ExpertCounters>): number {
  return c.outcomes === 0 ? 0 : c.latencyMs / c.outcomes;
}

/** Successful answers per second of expert busy time: successes / (Σ latency in s); 0 with no latency. */
export function efficiency(c: Readonly<ExpertCounters>): number {
  return c.latencyMs === 0 ? 0 : c.successes / (c.latencyMs / 1000);
}

/** Requests the expert was given: queries routed to it plus fallback tries on it. */
export function attempts(c: Readonly<ExpertCounters>): number {
  return c.routed + c.fallbacks;
}

/**
 * Busy share of an expert's request slots: `load / (capacity × replicas)` (1 = saturated), the
 * one definition behind every utilisation the control plane reports.
 */
export function utilization(load: number, capacity: number, replicas: number): number {
  return load / (capacity * replicas);
}

/**
 * Offered load in Erlangs (mean requests in service at once), by Little's law L = λ·W:
 * λ = attempts (routed + fallback tries) / span (per s), W = the mean measured latency (s) — of
 * the window's outcomes, else `fallbackLatencyMs` (e.g. the all-time mean); 0 when no latency
 * was ever measured.
 */
export function offeredLoad(c: Readonly<ExpertCounters>, spanMs: number, fallbackLatencyMs: number): number {
  const w = c.outcomes > 0 ? c.latencyMs / c.outcomes : fallbackLatencyMs;
  return spanMs <= 0 ? 0 : (attempts(c) / spanMs) * w;
}
