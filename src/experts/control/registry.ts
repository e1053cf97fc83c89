/**
 * The registry of an expert pool: a record per expert of the router, kept in step with it
 * (experts added to or removed from the router directly are noticed), and the changes that go
 * through both: create, retire, merge, replicas.
 * @module
 */
import type { ExpertProfile, RewiringExperts } from '../routing/index';
import * as v from '../../validate';
import { type ReplicaSplit, replicaSplits } from './replica-splits';
import { specializationProfile } from './specialization-profile';
import type { ManagedExpert, MergeExpertsOptions, PerformanceTargets, RetireReason } from './types';

/** Requests one replica serves at once when nothing says otherwise. @internal */
export const DEFAULT_CAPACITY = 4;

/** What the registry tells its owner, or asks of it. @internal */
export interface RegistryHooks {
  now(): number;
  /** An event for the control plane's listeners (held back during a lifecycle pass). */
  emit(event: string, ...args: unknown[]): void;
  /** The active experts changed. */
  changed(): void;
  /** An id retired earlier came back to the router: its traffic starts afresh. */
  resetTraffic(id: string): void;
  /** `ids` were merged into `into`: their traffic moves onto it. */
  mergeTraffic(ids: readonly string[], into: string): void;
}

/** A new expert, its options checked. @internal */
export interface NewExpert {
  id: string;
  specialization: string;
  baseModel: string;
  capacity: number;
  performanceTargets: PerformanceTargets;
  trainingData: ManagedExpert['trainingData'];
  description?: string;
  keywords?: string[];
}

/** @internal */
export class ExpertRegistry {
  readonly #records = new Map<string, ManagedExpert>();
  readonly #splits: Map<string, ReplicaSplit>;

  /** Adopts the router's experts as they are now. */
  constructor(
    readonly router: RewiringExperts,
    private readonly hooks: RegistryHooks,
  ) {
    this.#splits = replicaSplits(router);
    const now = hooks.now();
    for (const p of router.experts()) this.#records.set(p.id, this.#adopt(p, now));
  }

  get(id: string): ManagedExpert | undefined {
    return this.#records.get(id);
  }

  /** Every record, active and retired, registration order. */
  all(): ManagedExpert[] {
    return [...this.#records.values()];
  }

  active(): ManagedExpert[] {
    return this.all().filter((r) => r.status === 'active');
  }

  activeIds(): string[] {
    return this.active().map((r) => r.id);
  }

  /** The active record of `id`. @throws TypeError / RangeError naming `name`. */
  activeRecord(name: string, id: unknown): ManagedExpert {
    v.string(name, id);
    const r = this.#records.get(id as string);
    if (r === undefined || r.status !== 'active') throw v.rangeError(name, `id of an active expert (${this.activeIds().join(', ')})`, id);
    return r;
  }

  /** The record of `id`, active or retired. @throws TypeError / RangeError naming `name`. */
  record(name: string, id: unknown): ManagedExpert {
    v.string(name, id);
    const r = this.#records.get(id as string);
    if (r === undefined) throw v.rangeError(name, `id of an expert of the registry (${[...this.#records.keys()].join(', ')})`, id);
    return r;
  }

  specializationOf(id: string): string {
    const r = this.#records.get(id);
    if (r !== undefined) return r.specialization;
    return this.router.experts().find((p) => p.id === id)?.domain ?? id;
  }

  /** Whether the registry or the router has the id. */
  taken(id: string): boolean {
    return this.#records.has(id) || this.router.experts().some((p) => p.id === id);
  }

  /** The specialization as an id, with `-2`, `-3` … appended while taken. */
  freeId(specialization: string): string {
    const base = specialization.length > 120 ? specialization.slice(0, 120) : specialization;
    let id = base;
    for (let n = 2; this.taken(id); n++) id = `${base}-${n}`;
    return id;
  }

  /** Adds an expert of each specialization (profile from the specialization), without events. */
  addSpecializations(specs: readonly string[]): void {
    const now = this.hooks.now();
    for (const s of specs) {
      const id = this.freeId(s);
      this.router.addExpert(specializationProfile(id, s, {}));
      this.#records.set(id, record(id, s, null, DEFAULT_CAPACITY, now));
    }
  }

  /** Registers a new expert and adds it to the router. */
  create(e: NewExpert): ManagedExpert {
    const extra = { ...(e.description === undefined ? {} : { description: e.description }), ...(e.keywords === undefined ? {} : { keywords: e.keywords }), capacity: e.capacity };
    this.router.addExpert(specializationProfile(e.id, e.specialization, extra));
    const r = record(e.id, e.specialization, e.baseModel, e.capacity, this.hooks.now());
    r.performanceTargets = e.performanceTargets;
    r.trainingData = e.trainingData;
    this.#records.set(e.id, r);
    this.hooks.changed();
    this.hooks.emit('created', copy(r));
    return r;
  }

  /**
   * Adopts experts added to the router directly — even beyond numExperts (see overCapacity):
   * the router routes to them either way — and retires those removed from it.
   */
  sync(): void {
    const profiles = this.router.experts();
    const ids = new Set(profiles.map((p) => p.id));
    const now = this.hooks.now();
    const removed: ManagedExpert[] = [];
    for (const r of this.#records.values()) {
      if (r.status !== 'active' || ids.has(r.id)) continue;
      Object.assign(r, { status: 'retired', retiredAt: now, retireReason: 'removed-from-router' });
      this.#writeSplit(r);
      removed.push(r);
    }
    let changed = removed.length > 0;
    for (const p of profiles) {
      const r = this.#records.get(p.id);
      if (r !== undefined && r.status === 'active') {
        r.specialization = p.domain;
        continue;
      }
      if (r !== undefined) {
        // A retired id added back to the router is a new expert: a new record, fresh counters.
        this.#records.delete(p.id);
        this.hooks.resetTraffic(p.id);
      }
      this.#records.set(p.id, this.#adopt(p, now));
      changed = true;
    }
    if (changed) this.hooks.changed();
    for (const r of removed) this.hooks.emit('retired', copy(r));
  }

  /**
   * Retires an active expert from the router. Returns false, doing nothing, for an expert
   * retired meanwhile (by a listener, say).
   * @throws RangeError for the last active expert.
   */
  retire(r: ManagedExpert, reason: RetireReason, now: number): boolean {
    if (r.status !== 'active') return false;
    if (this.active().length <= 1) throw new RangeError(`MoEControlAPI.retireExpert: '${r.id}' is the last active expert (the router needs one)`);
    this.router.removeExpert(r.id);
    Object.assign(r, { status: 'retired', retiredAt: now, retireReason: reason });
    this.#writeSplit(r);
    this.hooks.changed();
    this.hooks.emit('retired', copy(r));
    return true;
  }

  /** Merges active experts into `into` (see {@link MoEControlAPI.mergeExperts}); `o` is checked. */
  merge(recs: readonly ManagedExpert[], into: string, o: MergeExpertsOptions, now: number): ManagedExpert {
    const profiles = new Map(this.router.experts().map((p) => [p.id, p]));
    const ps = recs.map((r) => profiles.get(r.id)!);
    const first = recs[0]!;
    const ids = recs.map((r) => r.id);
    const from = ids.filter((id) => id !== into);
    const replicas = recs.reduce((s, r) => s + r.replicas, 0);
    const specialization = o.specialization ?? first.specialization;
    const profile: ExpertProfile = {
      id: into,
      domain: specialization,
      description: [...new Set(ps.map((p) => p.description))].join(' '),
      keywords: [...new Set(ps.flatMap((p) => p.keywords ?? []))],
      capacity: first.capacity * replicas,
    };
    if (ps[0]!.name !== undefined) profile.name = ps[0]!.name;
    for (const id of from) this.router.removeExpert(id);
    this.router.addExpert(profile);
    this.hooks.mergeTraffic(ids, into);
    const kept = this.#records.get(into);
    const target = kept?.status === 'active' ? kept : record(into, specialization, first.baseModel, first.capacity, now);
    Object.assign(target, {
      specialization,
      baseModel: o.baseModel ?? first.baseModel,
      performanceTargets: o.performanceTargets ?? { ...first.performanceTargets },
      trainingData: target.trainingData ?? first.trainingData,
      // The router got first.capacity × replicas: the registry agrees, whichever id survives.
      capacity: first.capacity,
      replicas,
      mergedFrom: [...target.mergedFrom, ...from],
    });
    for (const r of recs) {
      if (r.id === into) continue;
      Object.assign(r, { status: 'retired', retiredAt: now, retireReason: 'merged', mergedInto: into });
      this.#writeSplit(r);
    }
    this.#records.set(into, target);
    this.#writeSplit(target);
    this.hooks.changed();
    this.hooks.emit('merged', copy(target), from);
    return target;
  }

  /** Sets active experts' replicas; the router gets each one's `capacity × replicas`. */
  setReplicas(changes: ReadonlyArray<readonly [ManagedExpert, number]>): void {
    const profiles = new Map(this.router.experts().map((p) => [p.id, p]));
    for (const [r, replicas] of changes) {
      if (r.replicas === replicas) continue;
      r.replicas = replicas;
      this.router.addExpert({ ...profiles.get(r.id)!, capacity: r.capacity * r.replicas });
      this.#writeSplit(r);
    }
  }

  // A record for an expert of the router: one replica of its router capacity, unless a control
  // plane over this router split that capacity into replicas.
  #adopt(p: ExpertProfile, now: number): ManagedExpert {
    const total = p.capacity ?? DEFAULT_CAPACITY;
    const r = record(p.id, p.domain, null, total, now);
    const split = this.#splits.get(p.id);
    if (split !== undefined && split.capacity * split.replicas === total) Object.assign(r, split);
    return r;
  }

  // Shares an expert's split with the other control planes of the router.
  #writeSplit(r: ManagedExpert): void {
    if (r.status === 'active' && r.replicas > 1) this.#splits.set(r.id, { capacity: r.capacity, replicas: r.replicas });
    else this.#splits.delete(r.id);
  }
}

function record(id: string, specialization: string, baseModel: string | null, capacity: number, now: number): ManagedExpert {
  return {
    id,
    specialization,
    baseModel,
    status: 'active',
    replicas: 1,
    capacity,
    performanceTargets: {},
    trainingData: null,
    createdAt: now,
    retiredAt: null,
    retireReason: null,
    mergedFrom: [],
    mergedInto: null,
  };
}

/** A copy of a record that shares nothing with it. @internal */
export function copy(r: ManagedExpert): ManagedExpert {
  return { ...r, performanceTargets: { ...r.performanceTargets }, trainingData: r.trainingData === null ? null : { ...r.trainingData }, mergedFrom: [...r.mergedFrom] };
}
