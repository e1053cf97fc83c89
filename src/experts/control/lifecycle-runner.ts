/**
 * Runs lifecycle passes over a pool: takes the window since the previous pass, has the pure
 * plan (lifecycle-plan.ts) decide, applies its actions through the registry, flags experts for
 * attention and, with dynamic allocation, applies an allocation plan; on a timer or on demand.
 * @module
 */
import type { RewiringExperts } from '../routing/index';
import type { AllocationPlan } from './allocation';
import { attentionReasons } from './attention-reasons';
import { emptyCounters, meanLatency, offeredLoad, utilization } from './counters';
import type { DeferredEvents } from './deferred-events';
import { type LifecyclePolicy, type LifecycleReport, type ResolvedPolicy, resolvePolicy } from './lifecycle';
import { planLifecycle } from './lifecycle-plan';
import type { ExpertRegistry } from './registry';
import type { LedgerTap, TrafficLedger, WindowCounts } from './traffic-ledger';

/** What a runner works with. @internal */
export interface LifecycleDeps {
  registry: ExpertRegistry;
  ledger: TrafficLedger;
  router: Pick<RewiringExperts, 'expertHealth'>;
  events: DeferredEvents;
  /** The control plane's clock, ms. */
  now: () => number;
  /** Plans and applies an allocation at the pass's time (with `dynamicExpertAllocation`); absent without. */
  allocate?: (policy: ResolvedPolicy, at: number) => AllocationPlan;
}

/** @internal */
export class LifecycleRunner {
  readonly #deps: LifecycleDeps;
  readonly #tap: LedgerTap;
  #policy: ResolvedPolicy = resolvePolicy(undefined);
  // Queries routed per expert in the previous window; null before the first pass.
  #previous: Map<string, number> | null = null;
  #poolChanged = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(deps: LifecycleDeps) {
    this.#deps = deps;
    // Query terms are counted only for the merge rule, from the first pass or policy that has it.
    this.#tap = deps.ledger.tap(false);
  }

  /** Replaces the policy (checked; defaults filled) and restarts the timer on it. */
  start(policy: LifecyclePolicy, onError: (err: unknown) => void): void {
    this.#policy = resolvePolicy(policy);
    // Query terms are only needed by the merge rule.
    this.#tap.terms = this.#policy.mergeOverlap !== false;
    this.stop();
    this.#timer = setInterval(() => {
      try {
        this.run(this.#deps.now());
      } catch (err) {
        // A timer callback never throws.
        onError(err);
      }
    }, this.#policy.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Experts were retired, merged or added: the next drift measure says so. */
  poolChanged(): void {
    this.#poolChanged = true;
  }

  /** A merge moves the sources' counts of the previous window onto the expert kept, so that it is not read as drift. */
  merged(ids: readonly string[], into: string): void {
    if (this.#previous === null) return;
    let n = 0;
    for (const id of ids) {
      n += this.#previous.get(id) ?? 0;
      this.#previous.delete(id);
    }
    if (n > 0) this.#previous.set(into, n);
  }

  /** One pass at `at`, its events held back until it ends. */
  run(at: number): LifecycleReport {
    const { events, registry } = this.#deps;
    return events.hold(() => {
      registry.sync();
      return this.#pass(at);
    });
  }

  close(): void {
    this.stop();
    this.#tap.close();
  }

  #pass(at: number): LifecycleReport {
    const { registry, ledger, events } = this.#deps;
    const p = this.#policy;
    const w = this.#tap.take(at);
    // Terms are counted from the first pass whose policy merges (the window just closed lacks them).
    this.#tap.terms = p.mergeOverlap !== false;
    const active = registry.active().map((r) => ({ id: r.id, createdAt: r.createdAt, lastUsedAt: ledger.lastUsedAt(r.id) }));
    const plan = planLifecycle({ policy: p, at, window: w, previous: this.#previous, poolChanged: this.#poolChanged, active });
    this.#previous = new Map(plan.routed);
    this.#poolChanged = false;
    const retired: LifecycleReport['retired'] = [];
    const merged: LifecycleReport['merged'] = [];
    for (const a of plan.actions) {
      if (a.type === 'retire') {
        if (registry.retire(registry.get(a.retired.id)!, a.retired.reason, at)) retired.push(a.retired);
      } else {
        const { into, from } = a.merged;
        registry.merge([registry.get(into)!, registry.get(from)!], into, {}, at);
        merged.push(a.merged);
      }
    }
    const attention = this.#attention(p, w, at);
    const allocation = this.#deps.allocate?.(p, at) ?? null;
    const report: LifecycleReport = { at, window: { from: w.from, to: at, routed: w.routed, outcomes: plan.outcomes }, drift: plan.drift, retired, merged, attention, allocation };
    if (plan.drift?.detected) events.emit('drift', plan.drift);
    events.emit('lifecycle', report);
    return report;
  }

  // The attention flags of the active experts over the pass's window (after its changes).
  #attention(p: ResolvedPolicy, w: WindowCounts, at: number): LifecycleReport['attention'] {
    const { registry, ledger, router, events } = this.#deps;
    const out: LifecycleReport['attention'] = [];
    for (const r of registry.active()) {
      const c = w.experts.get(r.id) ?? emptyCounters();
      const load = offeredLoad(c, at - w.from, meanLatency(ledger.totals(r.id)));
      const reasons = attentionReasons({
        window: c,
        minOutcomes: p.minOutcomes,
        available: router.expertHealth(r.id).available,
        maxFailureRate: p.maxFailureRate === false ? undefined : p.maxFailureRate,
        targets: r.performanceTargets,
        utilization: utilization(load, r.capacity, r.replicas),
      });
      if (reasons.length > 0) {
        out.push({ id: r.id, reasons });
        events.emit('attention', { id: r.id, reasons });
      }
    }
    return out;
  }
}
