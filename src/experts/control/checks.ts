/**
 * Argument checks of the control plane that more than one method needs.
 * @module
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import * as v from '../../validate';
import { type AllocationPlan, MAX_REPLICA_BUDGET, type RebalancingStrategy } from './allocation';
import { positiveUnit, REBALANCING } from './lifecycle';
import { DEFAULT_CAPACITY, type ExpertRegistry, type NewExpert } from './registry';
import type { BalancerSettings } from './request-balancer';
import type { AllocationOptions, CreateExpertOptions, LoadBalancingOptions, ManagedExpert, MergeExpertsOptions, PerformanceTargets } from './types';

const TARGET_KEYS = ['accuracy', 'latency', 'specializationScore'] as const;
const BALANCING_KEYS = ['rate', 'mode', 'batchQueries', 'maxBias'] as const;
const CREATE_KEYS = ['specialization', 'baseModel', 'trainingData', 'performanceTargets', 'id', 'description', 'keywords', 'capacity'] as const;
const MERGE_KEYS = ['id', 'specialization', 'baseModel', 'performanceTargets'] as const;
const ALLOCATION_KEYS = ['currentWorkload', 'targetUtilization', 'rebalancingStrategy', 'replicaBudget', 'windowMs', 'retireIdle', 'apply'] as const;

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

/** Seconds between timer ticks (the seed's unit): > 0, and within a timer's reach (2³¹ − 1 ms). */
export function timerSeconds(name: string, value: unknown): number {
  const seconds = v.finite(name, value, { positive: true });
  if (seconds * 1000 > 2 ** 31 - 1) throw v.rangeError(name, 'number of seconds in (0, 2147483]', seconds);
  return seconds;
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

/** {@link CreateExpertOptions} checked, with the id to use (a free one when not given). */
export function checkCreateOptions(options: unknown, registry: Pick<ExpertRegistry, 'freeId' | 'taken'>): NewExpert {
  if (options === undefined) throw v.typeError('options', 'an options object', options);
  const o = v.options<CreateExpertOptions>('options', options, CREATE_KEYS);
  const specialization = v.nonEmptyString('options.specialization', o.specialization);
  const baseModel = v.nonEmptyString('options.baseModel', o.baseModel);
  const performanceTargets = checkTargets('options.performanceTargets', o.performanceTargets);
  const description = o.description === undefined ? undefined : v.nonEmptyString('options.description', o.description);
  const keywords = o.keywords === undefined ? undefined : checkKeywords('options.keywords', o.keywords);
  const capacity = o.capacity === undefined ? DEFAULT_CAPACITY : v.integer('options.capacity', o.capacity, 1);
  let id: string;
  if (o.id === undefined) id = registry.freeId(specialization);
  else if (registry.taken(checkId('options.id', o.id))) throw v.rangeError('options.id', 'an id no expert of the registry has', o.id);
  else id = o.id;
  const trainingData = o.trainingData === undefined ? null : checkTrainingData('options.trainingData', o.trainingData);
  return {
    id, specialization, baseModel, capacity, performanceTargets, trainingData, ...(description === undefined ? {} : { description }), ...(keywords === undefined ? {} : { keywords }),
  };
}

/** The arguments of {@link MoEControlAPI.mergeExperts} checked: the records, the id kept, the fields given. */
export function checkMerge(
  ids: unknown,
  options: unknown,
  registry: Pick<ExpertRegistry, 'activeRecord' | 'taken'>,
): { records: ManagedExpert[]; into: string; fields: MergeExpertsOptions } {
  if (!Array.isArray(ids)) throw v.typeError('ids', 'array of at least 2 expert ids', ids);
  if (ids.length < 2) throw v.rangeError('ids', 'array of at least 2 expert ids', ids);
  const records = ids.map((id: unknown, i) => registry.activeRecord(`ids[${i}]`, id));
  if (new Set(ids).size !== ids.length) throw v.rangeError('ids', 'distinct expert ids', ids);
  const o = v.options<MergeExpertsOptions>('options', options, MERGE_KEYS);
  const into = o.id === undefined ? (ids[0] as string) : checkId('options.id', o.id);
  if (!ids.includes(into) && registry.taken(into)) throw v.rangeError('options.id', 'one of ids, or an id no expert of the registry has', into);
  const fields: MergeExpertsOptions = {};
  if (o.specialization !== undefined) fields.specialization = v.nonEmptyString('options.specialization', o.specialization);
  if (o.baseModel !== undefined) fields.baseModel = v.nonEmptyString('options.baseModel', o.baseModel);
  if (o.performanceTargets !== undefined) fields.performanceTargets = checkTargets('options.performanceTargets', o.performanceTargets);
  return { records, into, fields };
}

/** How to plan an allocation: {@link AllocationOptions} checked, with the instance's defaults. */
export interface AllocationSettings {
  targetUtilization: number;
  rebalancingStrategy: RebalancingStrategy;
  replicaBudget: number;
  /** How an error names the budget. */
  budgetName: string;
  windowMs: number;
  retireIdle: boolean;
}

/** {@link AllocationOptions} checked; `workload` keys are checked to be active experts. */
export function checkAllocationOptions(
  options: unknown,
  defaults: { replicaBudget: number; windowMs: number; bucketMs: number; retainMs: number },
  registry: Pick<ExpertRegistry, 'activeRecord'>,
): { settings: AllocationSettings; workload: Map<string, number>; apply: boolean } {
  const o = v.options<AllocationOptions>('options', options, ALLOCATION_KEYS);
  const workload = o.currentWorkload === undefined ? new Map<string, number>() : checkWorkload('options.currentWorkload', o.currentWorkload);
  for (const id of workload.keys()) registry.activeRecord('options.currentWorkload key', id);
  const settings: AllocationSettings = {
    targetUtilization: o.targetUtilization === undefined ? 0.75 : positiveUnit('options.targetUtilization', o.targetUtilization),
    rebalancingStrategy: o.rebalancingStrategy === undefined ? 'load_based' : v.oneOf('options.rebalancingStrategy', o.rebalancingStrategy, REBALANCING),
    replicaBudget: o.replicaBudget === undefined ? defaults.replicaBudget : v.integer('options.replicaBudget', o.replicaBudget, 1, MAX_REPLICA_BUDGET),
    budgetName: o.replicaBudget === undefined ? 'MoEControlAPI.replicaBudget' : 'options.replicaBudget',
    windowMs: o.windowMs === undefined ? defaults.windowMs : v.integer('options.windowMs', o.windowMs, defaults.bucketMs, defaults.retainMs),
    retireIdle: o.retireIdle === undefined ? true : v.boolean('options.retireIdle', o.retireIdle),
  };
  return { settings, workload, apply: o.apply !== undefined && v.boolean('options.apply', o.apply) };
}

/** A plan to apply, checked against the active experts: the replica changes and the experts to retire. */
export function checkPlan(
  plan: unknown,
  registry: Pick<ExpertRegistry, 'activeRecord' | 'active'>,
): { changes: Array<readonly [ManagedExpert, number]>; retire: ManagedExpert[] } {
  if (plan === null || typeof plan !== 'object') throw v.typeError('plan', 'an AllocationPlan', plan);
  const p = plan as Partial<Pick<AllocationPlan, 'replicas' | 'retire'>>;
  const replicas = p.replicas as unknown;
  if (replicas === null || typeof replicas !== 'object' || Array.isArray(replicas)) throw v.typeError('plan.replicas', 'object of expert id to replicas', replicas);
  if (!Array.isArray(p.retire)) throw v.typeError('plan.retire', 'array of expert ids', p.retire);
  const changes = Object.entries(replicas).map(([id, n]) => [registry.activeRecord('plan.replicas key', id), v.integer(`plan.replicas.${id}`, n, 1, MAX_REPLICA_BUDGET)] as const);
  const retire = [...new Set(p.retire.map((id: unknown, i) => registry.activeRecord(`plan.retire[${i}]`, id)))];
  for (const r of retire) if (Object.hasOwn(replicas, r.id)) throw v.rangeError('plan.retire', 'ids not also given replicas', p.retire);
  if (retire.length >= registry.active().length) throw new RangeError('MoEControlAPI.applyAllocationPlan: the plan retires every active expert');
  return { changes, retire };
}
