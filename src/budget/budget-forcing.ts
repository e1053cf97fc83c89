/**
 * The BudgetForcing facade: reserve → commit/release over a {@link BudgetStore}, with events,
 * alerts and counters. Window selection is in windows.ts, argument checks in checks.ts.
 * @module
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';

import { CloseGuard } from '../toolkit/closing';
import { MinHeap } from '../toolkit/min-heap';
import { emitSafely } from '../toolkit/listeners';
import * as v from '../validate';
import { checkDefinition, checkRequest, LEVELS, OPTION_KEYS, RESOURCES } from './checks';
import { type PendingCharge, Reconciler } from './reconcile';
import { type BudgetStore, type ChargeResult, MemoryBudgetStore, type SettleResult, type WindowUsage } from './store';
import {
  type BudgetAlert, type BudgetDecision, type BudgetDefinition, type BudgetForcingOptions, type BudgetMetrics, type BudgetRequest, type BudgetStatus,
  type BudgetViolation, type CommitResult, EnforcementLevel, type Overdraft, type ResourceType,
} from './types';
import { type BudgetWindow, budgetWindows, utilisationOf, windowCap, windowChecks } from './windows';

// Fail-open allocation ids carry this prefix: they hold nothing in the store.
const UNBACKED = 'unbacked:';

interface Meta {
  requesterId: string;
  resourceType: ResourceType;
  windows: Array<{ budgetId: string; key: string; limit: number }>;
}

const unknownAllocation = (id: string) =>
  new RangeError(`Unknown allocation '${id}': it was never approved, is already settled, or expired`);

const fmt = (n: number) => (Number.isInteger(n) ? n.toLocaleString('en-US') : n.toPrecision(6));

/**
 * Resource budgets that never overspend (the seed's BudgetForcing, made atomic): a request
 * *reserves* its amount in every budget window it falls in — per request, per session,
 * daily, weekly, monthly, per requester or shared — and is approved only if every window can
 * hold it under the enforcement level; the caller then `commit`s what it really used (the rest
 * returns) or `release`s it; reservations left open expire after `estimatedDuration`.
 * Reservations are all-or-nothing inside the store, so concurrent requests — or processes,
 * with {@link RedisBudgetStore} — cannot push committed + reserved past a HARD limit.
 * Fail-open approvals (`onStoreError: 'fail-open'`) are reconciled: what they commit is charged
 * to their windows when the store answers again, and {@link BudgetMetrics} counts it.
 *
 * Events: `approved`, `denied` (the decision), `violation` ({@link BudgetViolation}), `alert`
 * ({@link BudgetAlert}), `expired` (`{ allocationId, requesterId, resourceType }`), `reconciled`
 * (`{ allocationId, amount, requesterId }`: a fail-open commit charged at last), `storeError` (the error,
 * from a decision or from the timed sweep). A listener that throws never changes what a call
 * returns: its error goes to the `'error'` listeners, or without any to a process warning.
 *
 * @example
 * ```ts
 * import { BudgetForcing, EnforcementLevel, ResourceType } from '@capibara/core';
 * const budgets = new BudgetForcing({ enforcementLevel: EnforcementLevel.HARD, budgets: [
 *   { resourceType: ResourceType.TOKENS, scope: 'daily', limit: 100_000, softThreshold: 0.8 },
 * ] });
 * const d = await budgets.requestBudget({ resourceType: ResourceType.TOKENS, requestedAmount: 2_000,
 *   priority: 1, estimatedDuration: 60, requesterId: 'user_001', justification: 'chat' });
 * if (d.approved) await budgets.commit(d.allocationId!, 1_234);
 * budgets.close();
 * ```
 */
export class BudgetForcing extends EventEmitter {
  /** The enforcement level. */
  readonly enforcementLevel: EnforcementLevel;
  readonly #store: BudgetStore;
  readonly #onStoreError: 'fail-open' | 'fail-closed';
  readonly #overdraft: Overdraft;
  readonly #sessionTtl: number;
  readonly #now: () => number;
  readonly #budgets = new Map<string, BudgetDefinition>();
  readonly #timer: NodeJS.Timeout;
  // Windows this instance reserved in, for utilisation: key -> (resource, limit, window end).
  readonly #touched = new Map<string, { resourceType: ResourceType; limit: number; end: number }>();
  // Fail-open allocations (no reservation in the store), and what they used until the store takes it.
  readonly #reconciler: Reconciler;
  // Windows whose soft threshold has alerted (in this process), until the window is pruned.
  readonly #alerted = new Set<string>();
  // #touched keys by window end, so pruning costs O(log n) per ended window, not a scan per decision.
  readonly #ends = new MinHeap<string>();
  readonly #m = { approved: 0, denied: 0, violations: 0, wouldOverspend: 0, prevented: 0, decisions: 0, decisionMs: 0 };
  readonly #guard = new CloseGuard('BudgetForcing');

  /** Creates the controller; checks every option and budget. */
  constructor(options: BudgetForcingOptions = {}) {
    super();
    const o = v.options<BudgetForcingOptions>('options', options, OPTION_KEYS);
    this.enforcementLevel = o.enforcementLevel === undefined ? EnforcementLevel.HARD : v.oneOf('enforcementLevel', o.enforcementLevel, LEVELS);
    this.#store = o.store ?? new MemoryBudgetStore();
    for (const m of ['reserve', 'commit', 'release', 'expire', 'usage', 'close'] as const) {
      if (typeof (this.#store as unknown as Record<string, unknown>)[m] !== 'function') throw v.typeError('store', 'a BudgetStore', o.store);
    }
    this.#onStoreError = o.onStoreError === undefined ? 'fail-closed' : v.oneOf('onStoreError', o.onStoreError, ['fail-open', 'fail-closed'] as const);
    const od = v.options<Overdraft>('overdraft', o.overdraft, ['ratio', 'minPriority']);
    this.#overdraft = {
      ratio: od.ratio === undefined ? 0.1 : v.finite('overdraft.ratio', od.ratio, { min: 0 }),
      minPriority: od.minPriority === undefined ? 5 : v.integer('overdraft.minPriority', od.minPriority, 0, 10),
    };
    this.#sessionTtl = o.sessionTtlMs === undefined ? 86_400_000 : v.finite('sessionTtlMs', o.sessionTtlMs, { positive: true });
    const sweep = o.sweepIntervalMs === undefined ? 1000 : v.integer('sweepIntervalMs', o.sweepIntervalMs, 1, 2 ** 31 - 1);
    if (o.now !== undefined && typeof o.now !== 'function') throw v.typeError('now', 'a function returning epoch ms', o.now);
    this.#now = o.now ?? Date.now;
    const maxUnreconciled = o.maxUnreconciled === undefined ? 10_000 : v.integer('maxUnreconciled', o.maxUnreconciled, 0, 2 ** 31 - 1);
    this.#reconciler = new Reconciler(this.#store, maxUnreconciled, this.#now, (p, r) => this.#reconciled(p, r));
    if (o.onViolation !== undefined) {
      if (typeof o.onViolation !== 'function') throw v.typeError('onViolation', 'a function', o.onViolation);
      this.on('violation', o.onViolation);
    }
    if (o.onAlert !== undefined) {
      if (typeof o.onAlert !== 'function') throw v.typeError('onAlert', 'a function', o.onAlert);
      this.on('alert', o.onAlert);
    }
    if (o.budgets !== undefined) {
      if (!Array.isArray(o.budgets)) throw v.typeError('budgets', 'an array of budget definitions', o.budgets);
      for (const b of o.budgets) this.setBudget(b);
    }
    // A failed sweep (the store unreachable) is retried on the next tick and reported as `storeError`.
    this.#timer = setInterval(() => void this.sweep().catch((err: unknown) => emitSafely(this, 'storeError', err)), sweep);
    this.#timer.unref();
  }

  /**
   * Whether {@link BudgetForcing.close} was called.
   *
   * @example
   * ```ts
   * await budgets.close();
   * console.log(budgets.closed); // true
   * ```
   */
  get closed(): boolean {
    return this.#guard.closed;
  }

  #ensureOpen(): void {
    this.#guard.check();
  }

  /**
   * Adds a budget (or replaces the one with the same `id`) and returns its id. Usage already
   * recorded under that id is kept, so a limit can be changed in place.
   *
   * @example
   * ```ts
   * const id = budgets.setBudget({ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 100_000 }, 'tokens-daily');
   * budgets.setBudget({ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 150_000 }, id); // raise it in place
   * ```
   */
  setBudget(definition: BudgetDefinition, id?: string): string {
    this.#ensureOpen();
    const def = checkDefinition(definition);
    if (id !== undefined && (v.nonEmptyString('id', id).includes('|'))) throw v.rangeError('id', "string without '|'", id);
    const key = id ?? `${def.resourceType}:${def.scope}:${encodeURIComponent(def.requesterId ?? (def.shared ? '*shared' : '*each'))}`;
    this.#budgets.set(key, def);
    return key;
  }

  /**
   * Removes a budget; returns whether it existed. Open reservations keep what they hold until settled.
   *
   * @example
   * ```ts
   * const existed = budgets.removeBudget('tokens-daily');
   * ```
   */
  removeBudget(id: string): boolean {
    return this.#budgets.delete(id);
  }

  /**
   * The budgets by id.
   *
   * @example
   * ```ts
   * for (const [id, def] of budgets.budgets()) console.log(id, def.scope, def.limit);
   * ```
   */
  budgets(): Map<string, BudgetDefinition> {
    return new Map(this.#budgets);
  }

  #windows(resourceType: ResourceType, requesterId: string, sessionId: string | undefined, now: number): BudgetWindow[] {
    return budgetWindows(this.#budgets, resourceType, requesterId, sessionId, now);
  }

  #cap(limit: number, priority: number): number {
    return windowCap(this.enforcementLevel, this.#overdraft, limit, priority);
  }

  /**
   * Decides a request: reserves `requestedAmount` in every matching budget window if the
   * enforcement level allows it. Bad requests throw (TypeError / RangeError naming the field);
   * store failures follow `onStoreError`.
   *
   * @example
   * ```ts
   * const d = await budgets.requestBudget({ resourceType: ResourceType.TOKENS, requestedAmount: 2_000,
   *   priority: 1, estimatedDuration: 60, requesterId: 'user_001', sessionId: 'session-42' });
   * if (!d.approved) console.warn(d.message);
   * ```
   */
  async requestBudget(request: BudgetRequest): Promise<BudgetDecision> {
    this.#ensureOpen();
    const req = checkRequest(request);
    const start = performance.now();
    try {
      return await this.#decide(req);
    } finally {
      this.#m.decisions++;
      this.#m.decisionMs += performance.now() - start;
    }
  }

  async #decide(req: BudgetRequest): Promise<BudgetDecision> {
    const now = this.#now();
    const amount = req.requestedAmount;
    const all = this.#windows(req.resourceType, req.requesterId, req.sessionId, now);
    const perRequest = all.filter((w) => w.def.scope === 'request');
    const windows = all.filter((w) => w.def.scope !== 'request');

    // Per-request budgets need no store: the amount alone decides.
    const overRequest = perRequest.filter((w) => amount > w.def.limit);
    const refusedRequest = overRequest.find((w) => amount > this.#cap(w.def.limit, req.priority));
    if (refusedRequest) {
      this.#m.wouldOverspend++;
      return this.#deny(req, `Denied: ${req.requesterId} asked for ${fmt(amount)} ${req.resourceType} but budget '${refusedRequest.budgetId}' allows ${fmt(refusedRequest.def.limit)} per request`, true);
    }

    const id = randomUUID();
    const meta: Meta = { requesterId: req.requesterId, resourceType: req.resourceType, windows: windows.map((w) => ({ budgetId: w.budgetId, key: w.key, limit: w.def.limit })) };
    const checks = windowChecks(windows, (limit) => this.#cap(limit, req.priority), now, this.#sessionTtl);
    let result;
    try {
      // With only per-request budgets there is nothing to hold: no store round trip.
      result = checks.length === 0 ? { placed: true, before: [], refusedBy: -1 } : await this.#store.reserve({ id, amount, windows: checks, now, expiresAt: now + req.estimatedDuration * 1000, meta: JSON.stringify(meta) });
    } catch (err) {
      emitSafely(this, 'storeError', err);
      if (this.#onStoreError === 'fail-closed') {
        return this.#deny(req, `Denied: the budget store is unavailable (${err instanceof Error ? err.message : String(err)}); onStoreError is 'fail-closed'`, false);
      }
      this.#m.approved++;
      const charged = windows.map((w, i) => ({ budgetId: w.budgetId, key: w.key, limit: w.def.limit, expiresAt: checks[i]!.expiresAt }));
      this.#reconciler.approve(`${UNBACKED}${id}`, now + req.estimatedDuration * 1000, charged, req.requesterId);
      const decision: BudgetDecision = { approved: true, allocationId: `${UNBACKED}${id}`, message: 'Approved without a reservation: the budget store is unavailable and onStoreError is \'fail-open\'', overLimit: false, unbacked: true };
      emitSafely(this, 'approved', decision, req);
      return decision;
    }

    if (checks.length > 0) this.#reconciler.kick(); // the store answers again: charge what fail-open approvals used
    const over = windows.filter((w, i) => result.before[i]!.committed + result.before[i]!.reserved + amount > w.def.limit);
    if (over.length > 0 || overRequest.length > 0) this.#m.wouldOverspend++;
    if (!result.placed) {
      const w = windows[result.refusedBy]!;
      const b = result.before[result.refusedBy]!;
      const left = Math.max(0, w.def.limit - b.committed - b.reserved);
      return this.#deny(req, `Denied: budget '${w.budgetId}' (${w.def.scope} ${req.resourceType}, window ${w.window}) has ${fmt(left)} of ${fmt(w.def.limit)} left; ${req.requesterId} asked for ${fmt(amount)}`, true);
    }

    this.#prune(now);
    windows.forEach((w, i) => {
      if (!this.#touched.has(w.key)) {
        const end = checks[i]!.expiresAt ?? now + this.#sessionTtl;
        this.#touched.set(w.key, { resourceType: req.resourceType, limit: w.def.limit, end });
        this.#ends.push(end, w.key);
      }
      this.#maybeAlert(w.key, w.budgetId, req.requesterId, result.before[i]!.committed + result.before[i]!.reserved + amount);
    });
    const overLimit = over.length > 0 || overRequest.length > 0;
    for (const w of over) {
      const i = windows.indexOf(w);
      this.#violation({ budgetId: w.budgetId, budget: w.def, requesterId: req.requesterId, cause: 'request', used: result.before[i]!.committed + result.before[i]!.reserved + amount, limit: w.def.limit, allocationId: id });
    }
    for (const w of overRequest) {
      this.#violation({ budgetId: w.budgetId, budget: w.def, requesterId: req.requesterId, cause: 'request', used: amount, limit: w.def.limit, allocationId: id });
    }
    this.#m.approved++;
    const decision: BudgetDecision = {
      approved: true,
      allocationId: id,
      message: overLimit
        ? `Approved over the limit (${this.enforcementLevel}) for ${req.requesterId}: ${over.concat(overRequest).map((w) => `'${w.budgetId}'`).join(', ')}`
        : `Approved: ${fmt(amount)} ${req.resourceType} reserved for ${req.requesterId} in ${windows.length} budget window(s)`,
      overLimit,
      unbacked: false,
    };
    emitSafely(this, 'approved', decision, req);
    return decision;
  }

  /** Emits `alert` the first time (in this process) a window's use reaches its soft threshold. */
  #maybeAlert(key: string, budgetId: string, requesterId: string, used: number): void {
    const def = this.#budgets.get(budgetId);
    const t = def?.softThreshold;
    if (def === undefined || t === undefined || used < t * def.limit || this.#alerted.has(key)) return;
    this.#alerted.add(key);
    emitSafely(this, 'alert', { budgetId, budget: def, requesterId, fraction: def.limit > 0 ? used / def.limit : Infinity } satisfies BudgetAlert);
  }

  #deny(req: BudgetRequest, message: string, prevented: boolean): BudgetDecision {
    this.#m.denied++;
    if (prevented) this.#m.prevented++;
    const decision: BudgetDecision = { approved: false, allocationId: null, message, overLimit: false, unbacked: false };
    emitSafely(this, 'denied', decision, req);
    return decision;
  }

  #violation(violation: BudgetViolation): void {
    this.#m.violations++;
    emitSafely(this, 'violation', violation);
  }

  #checkAllocation(allocationId: unknown): string {
    if (typeof allocationId !== 'string' || allocationId === '') throw v.typeError('allocationId', 'an allocation id string', allocationId);
    return allocationId;
  }

  /**
   * Charges what the allocation really used and returns the rest of its reservation. Charging
   * more than reserved is allowed (usage is a fact) and is a violation if it takes a window past
   * its limit. Throws a RangeError for an unknown, settled or expired allocation: once a
   * reservation expires its hold is gone and nothing is charged, so give `estimatedDuration`
   * room for the slowest call. A fail-open allocation (`unbacked`) settles without the store:
   * its use is queued and charged to its windows once the store answers again.
   *
   * @example
   * ```ts
   * const { charged, returned, overLimit } = await budgets.commit(d.allocationId!, 1_234);
   * ```
   */
  async commit(allocationId: string, actualAmount: number): Promise<CommitResult> {
    this.#ensureOpen();
    const id = this.#checkAllocation(allocationId);
    const actual = v.finite('actualAmount', actualAmount, { min: 0 });
    if (id.startsWith(UNBACKED)) {
      // Nothing was reserved (the store was down when it was approved): the use waits to be
      // charged to the allocation's windows once the store answers again.
      const charged = this.#reconciler.settle(id, actual);
      if (charged === null) throw unknownAllocation(id);
      return { charged, returned: 0, overLimit: false, unbacked: true };
    }
    const r = await this.#store.commit(id, actual, this.#now());
    this.#reconciler.kick();
    if (!r) throw unknownAllocation(id);
    return this.#settled(id, r);
  }

  // A fail-open commit charged at last: all of it is excess (nothing was reserved).
  #reconciled(p: PendingCharge, r: ChargeResult): void {
    emitSafely(this, 'reconciled', { allocationId: p.id, amount: p.amount, requesterId: p.requesterId });
    if (r.applied) this.#charged(p.id, p.requesterId, p.windows, r.after, p.amount);
  }

  #settled(id: string, r: SettleResult): CommitResult {
    const meta = JSON.parse(r.meta) as Meta;
    const overLimit = this.#charged(id, meta.requesterId, meta.windows, r.after, r.charged - r.reserved);
    return { charged: r.charged, returned: Math.max(0, r.reserved - r.charged), overLimit, unbacked: false };
  }

  // After a charge: alerts, and a violation for each window the charge's excess over its
  // reservation took past the limit (past it now, and not before the excess). Returns whether any.
  #charged(id: string, requesterId: string, windows: Meta['windows'], after: WindowUsage[], excess: number): boolean {
    let over = false;
    windows.forEach((w, i) => {
      const used = after[i]!.committed + after[i]!.reserved;
      this.#maybeAlert(w.key, w.budgetId, requesterId, used);
      if (excess > 0 && used > w.limit && used - excess <= w.limit) {
        over = true;
        this.#violation({ budgetId: w.budgetId, budget: this.#budgets.get(w.budgetId) ?? null, requesterId, cause: 'commit', used, limit: w.limit, allocationId: id });
      }
    });
    if (over) this.#m.wouldOverspend++;
    return over;
  }

  /**
   * Frees an allocation's whole reservation; returns false if it was unknown, settled or expired.
   *
   * @example
   * ```ts
   * if (d.approved) await budgets.release(d.allocationId!); // the call was cancelled: nothing is charged
   * ```
   */
  async release(allocationId: string): Promise<boolean> {
    this.#ensureOpen();
    const id = this.#checkAllocation(allocationId);
    if (id.startsWith(UNBACKED)) return this.#reconciler.settle(id, null) !== null;
    const released = (await this.#store.release(id, this.#now())) !== null;
    this.#reconciler.kick();
    return released;
  }


  /**
   * Releases expired reservations now and emits `expired` for each (the timer calls this).
   *
   * @example
   * ```ts
   * const expired = await budgets.sweep(); // how many reservations it reported expired
   * ```
   */
  async sweep(): Promise<number> {
    if (this.#guard.closed) return 0;
    const now = this.#now();
    this.#reconciler.prune(now);
    const expired = await this.#store.expire(now);
    for (const e of expired) {
      const meta = JSON.parse(e.meta) as Meta;
      emitSafely(this, 'expired', { allocationId: e.id, requesterId: meta.requesterId, resourceType: meta.resourceType });
    }
    // The store answers: charge what fail-open approvals used (what fails waits for the next sweep).
    await this.#reconciler.drain().catch((err: unknown) => emitSafely(this, 'storeError', err));
    return expired.length;
  }

  /**
   * Usage of every budget window that applies to `requesterId` now (and to `sessionId`, if given).
   *
   * @example
   * ```ts
   * for (const s of await budgets.status('user_001', 'session-42')) console.log(s.budgetId, s.window, s.committed + s.reserved, '/', s.limit);
   * ```
   */
  async status(requesterId: string, sessionId?: string): Promise<BudgetStatus[]> {
    this.#ensureOpen();
    v.nonEmptyString('requesterId', requesterId);
    if (sessionId !== undefined) v.nonEmptyString('sessionId', sessionId);
    const now = this.#now();
    const windows = RESOURCES.flatMap((r) => this.#windows(r, requesterId, sessionId, now)).filter((w) => w.def.scope !== 'request');
    const usage = await this.#store.usage(windows.map((w) => w.key), now);
    this.#reconciler.kick();
    return windows.map((w, i) => ({ budgetId: w.budgetId, budget: w.def, window: w.window, committed: usage[i]!.committed, reserved: usage[i]!.reserved, limit: w.def.limit, resetsAt: w.end }));
  }

  /** Forgets windows that have ended (and their alert state). */
  #prune(now: number): void {
    while (this.#ends.peekKey() <= now) {
      const key = this.#ends.pop()!;
      this.#touched.delete(key);
      this.#alerted.delete(key);
    }
  }


  /**
   * The counters and, from the store, utilisation per resource (null while the store cannot be
   * reached: the error goes to `storeError`, the rest is this instance's own and still reported).
   *
   * @example
   * ```ts
   * const { approved, denied, utilisation } = await budgets.getMetrics();
   * console.log(approved, denied, utilisation[ResourceType.TOKENS]);
   * ```
   */
  async getMetrics(): Promise<BudgetMetrics> {
    this.#ensureOpen();
    const now = this.#now();
    this.#prune(now);
    const touched = [...this.#touched]; // a snapshot: a concurrent call may prune while we await
    // While the store cannot be reached the counters below are still this process's own: utilisation is unknown.
    const usage = touched.length === 0 ? [] : await this.#store.usage(touched.map(([k]) => k), now).catch((err: unknown) => void emitSafely(this, 'storeError', err));
    if (usage && touched.length > 0) this.#reconciler.kick();
    const utilisation = utilisationOf(touched.map(([, t]) => t), usage ?? null, RESOURCES);
    const m = this.#m;
    return {
      approved: m.approved,
      denied: m.denied,
      violations: m.violations,
      wouldOverspend: m.wouldOverspend,
      prevented: m.prevented,
      preventionRate: m.wouldOverspend > 0 ? m.prevented / m.wouldOverspend : null,
      meanDecisionMs: m.decisions > 0 ? m.decisionMs / m.decisions : null,
      utilisation,
      ...this.#reconciler.counts(),
    };
  }

  /**
   * Stops the sweep timer, tries once more to charge what fail-open approvals used (what the
   * store does not take then is lost), and closes the store. Idempotent.
   *
   * @example
   * ```ts
   * process.once('SIGTERM', () => void budgets.close());
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(async () => {
      clearInterval(this.#timer);
      await this.#reconciler.drain().catch(() => undefined);
      await this.#store.close();
    });
  }

  /** {@link BudgetForcing.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
