/**
 * Defaults and argument checks of the routing strategies (messages from the shared validator).
 * @module
 */
import * as v from '../../../validate';
import type { RoutingContext } from '../types';
import type { Candidate, ResolvedStrategyOptions, StrategyOptions, StrategyOutcome } from './types';

/** Every option name of a strategy (unknown keys are refused). */
export const OPTION_KEYS = [
  'dimensions', 'seed', 'halfLifeMs', 'referenceLatencyMs', 'relevanceFraction', 'adaptiveMethod', 'alpha',
  'lambda', 'projectedDimensions', 'relevanceWeight', 'latencyPenalty', 'latencyWeight',
] as const;

/** Largest feature dimension accepted. */
export const MAX_DIMENSIONS = 65536;

/** Fills in defaults and checks every option; throws TypeError/RangeError naming the option. */
export function resolveOptions(options: unknown): ResolvedStrategyOptions {
  if (options === undefined) throw v.typeError('options', 'an options object', options);
  const o = v.options<StrategyOptions>('options', options, OPTION_KEYS);
  const nonNegative = (name: string, value: unknown, fallback: number): number =>
    value === undefined ? fallback : v.finite(name, value, { min: 0 });
  const fraction = o.relevanceFraction === undefined ? 0.8 : v.unitInterval('relevanceFraction', o.relevanceFraction);
  return {
    dimensions: v.integer('dimensions', o.dimensions, 1, MAX_DIMENSIONS),
    seed: o.seed === undefined ? 0x5eed : v.integer('seed', o.seed, 0, 0xffffffff),
    halfLifeMs: o.halfLifeMs === undefined ? 300_000 : halfLife(o.halfLifeMs),
    referenceLatencyMs: o.referenceLatencyMs === undefined ? 1000 : v.finite('referenceLatencyMs', o.referenceLatencyMs, { positive: true }),
    relevanceFraction: fraction,
    adaptiveMethod: o.adaptiveMethod === undefined ? 'linucb' : v.oneOf('adaptiveMethod', o.adaptiveMethod, ['linucb', 'thompson'] as const),
    alpha: nonNegative('alpha', o.alpha, 0.5),
    lambda: o.lambda === undefined ? 1 : v.finite('lambda', o.lambda, { positive: true }),
    projectedDimensions: o.projectedDimensions === undefined ? 16 : v.integer('projectedDimensions', o.projectedDimensions, 1, 1024),
    relevanceWeight: nonNegative('relevanceWeight', o.relevanceWeight, 0.5),
    latencyPenalty: nonNegative('latencyPenalty', o.latencyPenalty, 0),
    latencyWeight: nonNegative('latencyWeight', o.latencyWeight, 0.5),
  };
}

function halfLife(value: unknown): number {
  const expected = 'number > 0 (Infinity: never forget)';
  if (typeof value !== 'number') throw v.typeError('halfLifeMs', expected, value);
  if (!(value > 0)) throw v.rangeError('halfLifeMs', expected, value);
  return value;
}

/** Checks the arguments of `update`. Features are scanned in full: a NaN would poison learned state. */
export function checkUpdate(id: unknown, features: unknown, outcome: unknown, now: unknown, dimensions: number): void {
  v.nonEmptyString('id', id);
  v.finiteVector('features', v.float32Array('features', features, dimensions), dimensions);
  if (outcome === null || typeof outcome !== 'object') throw v.typeError('outcome', 'an outcome object', outcome);
  const o = outcome as StrategyOutcome;
  v.boolean('success', o.success);
  v.finite('latencyMs', o.latencyMs, { min: 0 });
  if (o.quality !== undefined) v.unitInterval('quality', o.quality);
  v.finite('now', now);
}

/**
 * Checks the arguments of `rank`. Only the length of `features` is checked (the router builds them;
 * a full scan would cost as much as the ranking).
 */
export function checkRank(candidates: unknown, features: unknown, context: unknown, now: unknown, dimensions: number): void {
  if (!Array.isArray(candidates)) throw v.typeError('candidates', 'Array of candidates', candidates);
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i] as Candidate;
    // Fast test first: building the names below costs as much as a whole ranking.
    if (
      c !== null && typeof c === 'object' && typeof c.id === 'string' &&
      typeof c.relevance === 'number' && c.relevance >= 0 && c.relevance <= 1 &&
      typeof c.inFlight === 'number' && c.inFlight >= 0 && c.inFlight < Infinity &&
      typeof c.capacity === 'number' && c.capacity > 0 && c.capacity < Infinity
    ) continue;
    if (c === null || typeof c !== 'object') throw v.typeError(`candidates[${i}]`, 'a candidate object', c);
    if (typeof c.id !== 'string') throw v.typeError(`candidates[${i}].id`, 'string', c.id);
    v.unitInterval(`candidates[${i}].relevance`, c.relevance);
    v.finite(`candidates[${i}].inFlight`, c.inFlight, { min: 0 });
    v.finite(`candidates[${i}].capacity`, c.capacity, { positive: true });
  }
  v.float32Array('features', features, dimensions);
  if (context === null || typeof context !== 'object') throw v.typeError('context', 'a context object', context);
  const ctx = context as RoutingContext;
  if (ctx.complexity !== undefined) v.unitInterval('complexity', ctx.complexity);
  if (ctx.latencyBudgetMs !== undefined) v.finite('latencyBudgetMs', ctx.latencyBudgetMs, { positive: true });
  v.finite('now', now);
}

