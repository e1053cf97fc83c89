/**
 * Argument checks of the control plane that more than one method needs.
 * @module
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import * as v from '../../validate';
import { positiveUnit } from './lifecycle';
import type { BalancerSettings } from './request-balancer';
import type { LoadBalancingOptions, PerformanceTargets } from './types';

const TARGET_KEYS = ['accuracy', 'latency', 'specializationScore'] as const;
const BALANCING_KEYS = ['rate', 'mode', 'batchQueries', 'maxBias'] as const;

export function checkTargets(name: string, targets: unknown): PerformanceTargets {
  const t = v.options<PerformanceTargets>(name, targets, TARGET_KEYS);
  const out: PerformanceTargets = {};
  if (t.accuracy !== undefined) out.accuracy = v.unitInterval(`${name}.accuracy`, t.accuracy);
  if (t.latency !== undefined) out.latency = v.finite(`${name}.latency`, t.latency, { positive: true });
  if (t.specializationScore !== undefined) out.specializationScore = v.unitInterval(`${name}.specializationScore`, t.specializationScore);
  return out;
}

/** The path must exist (a file or a directory); nothing is read or trained. */
export function checkTrainingData(name: string, path: unknown): { path: string; bytes: number | null } {
  v.nonEmptyString(name, path);
  const abs = resolve(path as string);
  try {
    const st = statSync(abs);
    return { path: abs, bytes: st.isFile() ? st.size : null };
  } catch (err) {
    throw new RangeError(`Expected path of an existing file or directory for ${name} but received ${v.describe(path)}`, { cause: err });
  }
}

export function checkSpecializations(name: string, specs: unknown): string[] {
  if (!Array.isArray(specs)) throw v.typeError(name, 'array of non-empty strings', specs);
  const out = specs.map((s: unknown, i) => v.nonEmptyString(`${name}[${i}]`, s));
  out.forEach((s, i) => {
    if (out.indexOf(s) !== i) throw v.rangeError(`${name}[${i}]`, 'a specialization not listed before', s);
  });
  return out;
}

export function checkKeywords(name: string, keywords: unknown): string[] {
  if (!Array.isArray(keywords)) throw v.typeError(name, 'array of non-empty strings', keywords);
  return keywords.map((k: unknown, i) => v.nonEmptyString(`${name}[${i}]`, k));
}

/** An expert id as the router accepts it: 1 to 128 characters. */
export function checkId(name: string, id: unknown): string {
  v.nonEmptyString(name, id);
  if ((id as string).length > 128) throw v.rangeError(name, 'string of at most 128 characters', id);
  return id as string;
}

export function resolveBalancing(name: string, value: unknown): BalancerSettings | undefined {
  if (value === undefined || value === false) return undefined;
  const o: Partial<LoadBalancingOptions> = value === true ? {} : v.options<LoadBalancingOptions>(name, value, BALANCING_KEYS);
  return {
    // Relevance is in [0, 1]: a bias (or a step of it) beyond 1 means nothing more.
    rate: o.rate === undefined ? 0.01 : positiveUnit(`${name}.rate`, o.rate),
    mode: o.mode === undefined ? 'sign' : v.oneOf(`${name}.mode`, o.mode, ['sign', 'proportional'] as const),
    batchQueries: o.batchQueries === undefined ? 32 : v.integer(`${name}.batchQueries`, o.batchQueries, 1),
    maxBias: o.maxBias === undefined ? 0.2 : positiveUnit(`${name}.maxBias`, o.maxBias),
  };
}

/** A plain object of finite numbers >= 0 keyed by expert id. */
export function checkWorkload(name: string, value: unknown): Map<string, number> {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || ArrayBuffer.isView(value)) {
    throw v.typeError(name, 'object of expert id to load (Erlangs)', value);
  }
  const out = new Map<string, number>();
  for (const [id, x] of Object.entries(value)) out.set(id, v.finite(`${name}.${id}`, x, { min: 0 }));
  return out;
}

/**
 * A duration: ms as a number (> 0), or a string such as `'500ms'`, `'90s'`, `'15m'`, `'24h'`, `'7d'`.
 */
export function duration(name: string, value: unknown): number {
  const expected = "duration: ms > 0, or a string like '90s', '15m', '24h'";
  if (typeof value === 'number') {
    if (!(value > 0) || value === Infinity) throw v.rangeError(name, expected, value);
    return value;
  }
  if (typeof value !== 'string') throw v.typeError(name, expected, value);
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
  const ms = m === null ? NaN : Number(m[1]) * UNIT[m[2]!]!;
  if (!(ms > 0)) throw v.rangeError(name, expected, value);
  return ms;
}

const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
