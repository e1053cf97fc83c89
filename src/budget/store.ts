/**
 * Budget stores: where reservations and commits live. Each operation is atomic over every
 * budget window it touches, so no interleaving of requests (or processes, for a shared store)
 * can push committed + reserved past a cap that was checked.
 * @module
 */
import { CloseGuard } from '../toolkit/closing';
import { MinHeap } from '../toolkit/min-heap';

/** One budget window a reservation is checked against and charged to. */
export interface WindowCheck {
  /** Store key of the window (budget id + window). */
  key: string;
  /** The reservation is refused if committed + reserved + amount would exceed this (Infinity = never). */
  cap: number;
  /** When the window's counters may be forgotten (epoch ms), or null to keep them. */
  expiresAt: number | null;
  /**
   * When the window began (epoch ms), if known. A store that lost its state refuses windows
   * that began before the loss ({@link RedisBudgetStore}, `onStateLoss: 'fail'`); omitted or
   * null counts as "before". {@link BudgetForcing} fills it: a calendar window's start, or
   * `now - sessionTtlMs` for a session (the earliest it could have begun).
   */
  startsAt?: number | null;
}

/** A window charged by {@link BudgetStore.charge}. */
export interface ChargeWindow {
  /** Store key of the window. */
  key: string;
  /** When the window's counters may be forgotten (epoch ms), or null to keep them (used if the charge creates them). */
  expiresAt: number | null;
}

/** A charge without a reservation: use approved while the store could not be reached (fail-open), charged once it answers again. */
export interface ChargeOp {
  /**
   * Unique id of the charge. A store applies a charge once per id (for at least 24 hours), so
   * sending it again after a reply that never came cannot charge twice.
   */
  id: string;
  /** Amount added to every window's committed total (finite, >= 0). */
  amount: number;
  /** The windows, all at once. */
  windows: ChargeWindow[];
  /** Now (epoch ms): reservations whose expiry has passed are released first. */
  now: number;
}

/** Result of {@link BudgetStore.charge}. */
export interface ChargeResult {
  /** False when a charge with this id had already been applied (nothing was added this time). */
  applied: boolean;
  /** Usage of every window after the charge (same order as `windows`). */
  after: KeyedUsage[];
}

/** Committed and reserved totals of one window. */
export interface WindowUsage {
  /** Amount charged by commits. */
  committed: number;
  /** Amount held by open reservations. */
  reserved: number;
}

/** A reservation to place. */
export interface ReserveOp {
  /** Unique reservation id. */
  id: string;
  /** Amount to hold in every window. */
  amount: number;
  /** The windows, all or none. */
  windows: WindowCheck[];
  /** Now (epoch ms): reservations whose expiry has passed are released first. */
  now: number;
  /** When this reservation expires (epoch ms). */
  expiresAt: number;
  /** Opaque data kept with the reservation (requester, resource, justification). */
  meta: string;
}

/** Result of a reserve. */
export interface ReserveResult {
  /** Whether the reservation was placed. */
  placed: boolean;
  /** Usage of every window before this reservation (same order as `windows`). */
  before: WindowUsage[];
  /** Index of the first window whose cap refused it, or -1. */
  refusedBy: number;
}

/** A reservation released because it expired. */
export interface ExpiredReservation {
  /** Reservation id. */
  id: string;
  /** The reservation's meta. */
  meta: string;
}

/** Usage of one window, with its key. */
export interface KeyedUsage extends WindowUsage {
  /** Store key of the window. */
  key: string;
}

/** Result of a commit or release of a reservation. */
export interface SettleResult {
  /** Amount that had been reserved. */
  reserved: number;
  /** Amount charged (0 for a release). */
  charged: number;
  /** Usage of every window of the reservation after settling. */
  after: KeyedUsage[];
  /** The reservation's meta. */
  meta: string;
}

/**
 * Storage contract of {@link BudgetForcing}. Implementations: {@link MemoryBudgetStore}
 * (one process) and {@link RedisBudgetStore} (many processes, Lua scripts).
 *
 * @example
 * ```ts
 * const store: BudgetStore = new MemoryBudgetStore();
 * ```
 */
export interface BudgetStore {
  /**
   * Places the reservation in all windows if every cap allows it.
   *
   * @example
   * ```ts
   * const now = Date.now();
   * const r = await store.reserve({ id: 'a1', amount: 500, windows: [{ key: 'tokens|user_001|2026-11-25', cap: 10_000, expiresAt: null }], now, expiresAt: now + 60_000, meta: '{}' });
   * if (!r.placed) console.log('refused by window', r.refusedBy, r.before[r.refusedBy]);
   * ```
   */
  reserve(op: ReserveOp): Promise<ReserveResult>;
  /**
   * Charges `actual` for an open reservation and frees what it held; null if it is unknown or expired.
   *
   * @example
   * ```ts
   * const s = await store.commit('a1', 420, Date.now());
   * if (s) console.log(s.reserved, s.charged, s.after); // 500 420 [{ key, committed, reserved }]
   * ```
   */
  commit(id: string, actual: number, now: number): Promise<SettleResult | null>;
  /**
   * Frees an open reservation; null if it is unknown or expired.
   *
   * @example
   * ```ts
   * const freed = (await store.release('a1', Date.now())) !== null;
   * ```
   */
  release(id: string, now: number): Promise<SettleResult | null>;
  /**
   * Releases reservations whose expiry has passed, and returns every reservation released by
   * expiry since the last call (other operations also release expired ones before they decide).
   *
   * @example
   * ```ts
   * for (const { id, meta } of await store.expire(Date.now())) console.log('expired', id, meta);
   * ```
   */
  expire(now: number): Promise<ExpiredReservation[]>;
  /**
   * Current usage of windows (zeros for unknown keys).
   *
   * @example
   * ```ts
   * const [daily] = await store.usage(['tokens|user_001|2026-11-25'], Date.now());
   * console.log(daily!.committed, daily!.reserved);
   * ```
   */
  usage(keys: string[], now: number): Promise<WindowUsage[]>;
  /**
   * Adds `amount` to the committed total of every window, all at once, with no reservation and
   * no cap: use that was approved fail-open while the store could not be reached. Applied once
   * per `op.id`. Optional: {@link BudgetForcing} can reconcile fail-open approvals only with a
   * store that has it (both stores here do).
   *
   * @example
   * ```ts
   * const r = await store.charge!({ id: 'unbacked:1', amount: 420, windows: [{ key: 'tokens|user_001|2026-11-25', expiresAt: null }], now: Date.now() });
   * console.log(r.applied, r.after); // true [{ key, committed, reserved }]
   * ```
   */
  charge?(op: ChargeOp): Promise<ChargeResult>;
  /**
   * Frees connections; later calls reject.
   *
   * @example
   * ```ts
   * await store.close();
   * ```
   */
  close(): Promise<void>;
}

// How long a store remembers that a charge id was applied.
const CHARGE_MEMORY_MS = 24 * 60 * 60 * 1000;

interface Reservation {
  amount: number;
  keys: string[];
  expiresAt: number;
  meta: string;
}

/**
 * The default, in-process store. Every operation runs synchronously inside one call, so it is
 * atomic with respect to everything else in the process.
 *
 * @example
 * ```ts
 * import { BudgetForcing, MemoryBudgetStore } from '@capibara/core';
 * const budgets = new BudgetForcing({ store: new MemoryBudgetStore() });
 * ```
 */
export class MemoryBudgetStore implements BudgetStore {
  readonly #windows = new Map<string, WindowUsage & { expiresAt: number | null }>();
  readonly #reservations = new Map<string, Reservation>();
  // Reservations released implicitly (by expiry inside another operation), until expire() reports them.
  #expired: ExpiredReservation[] = [];
  // Reservation ids and window keys by expiry: an operation finds what is due in O(log n), not by
  // scanning every reservation (a scan per expiry made decisions slow down with the requesters).
  // Entries are deleted lazily: one whose reservation was already settled is skipped.
  readonly #reservationsDue = new MinHeap<string>();
  readonly #windowsDue = new MinHeap<string>();
  // Ids of charges applied, forgotten 24 h (by the callers' clock) after they were applied.
  readonly #charged = new Set<string>();
  readonly #chargedDue = new MinHeap<string>();
  readonly #guard = new CloseGuard('The budget store');

  #window(key: string, expiresAt: number | null = null): WindowUsage & { expiresAt: number | null } {
    let w = this.#windows.get(key);
    if (!w) {
      w = { committed: 0, reserved: 0, expiresAt };
      this.#windows.set(key, w);
      if (expiresAt !== null) this.#windowsDue.push(expiresAt, key);
    }
    return w;
  }

  #check(): void {
    this.#guard.check();
  }

  #expireSync(now: number): void {
    while (this.#reservationsDue.peekKey() <= now) {
      const id = this.#reservationsDue.pop()!;
      const r = this.#reservations.get(id);
      if (r === undefined || r.expiresAt > now) continue;
      this.#settle(id, r, 0, now);
      this.#expired.push({ id, meta: r.meta });
    }
    // A window that ended with reservations open stays until the last one settles (#settle drops it then).
    while (this.#windowsDue.peekKey() <= now) {
      const key = this.#windowsDue.pop()!;
      const w = this.#windows.get(key);
      if (w !== undefined && w.expiresAt !== null && w.expiresAt <= now && w.reserved === 0) this.#windows.delete(key);
    }
    while (this.#chargedDue.peekKey() <= now) this.#charged.delete(this.#chargedDue.pop()!);
  }

  #settle(id: string, r: Reservation, actual: number, now: number): SettleResult {
    this.#reservations.delete(id);
    const after = r.keys.map((key) => {
      const w = this.#window(key);
      w.reserved = Math.max(0, w.reserved - r.amount);
      w.committed += actual;
      if (w.reserved === 0 && w.expiresAt !== null && w.expiresAt <= now) this.#windows.delete(key);
      return { key, committed: w.committed, reserved: w.reserved };
    });
    return { reserved: r.amount, charged: actual, after, meta: r.meta };
  }

  /**
   * {@inheritDoc BudgetStore.reserve}
   *
   * @example
   * ```ts
   * const store = new MemoryBudgetStore();
   * const r = await store.reserve({ id: 'a1', amount: 5, windows: [{ key: 'w', cap: 10, expiresAt: null }], now: 0, expiresAt: 60_000, meta: '' });
   * // r: { placed: true, before: [{ committed: 0, reserved: 0 }], refusedBy: -1 }
   * ```
   */
  async reserve(op: ReserveOp): Promise<ReserveResult> {
    this.#check();
    this.#expireSync(op.now);
    const windows = op.windows.map((c) => this.#window(c.key, c.expiresAt));
    const before = windows.map((w) => ({ committed: w.committed, reserved: w.reserved }));
    const refusedBy = op.windows.findIndex((c, i) => before[i]!.committed + before[i]!.reserved + op.amount > c.cap);
    if (refusedBy >= 0) return { placed: false, before, refusedBy };
    for (const w of windows) w.reserved += op.amount;
    this.#reservationsDue.push(op.expiresAt, op.id);
    this.#reservations.set(op.id, { amount: op.amount, keys: op.windows.map((c) => c.key), expiresAt: op.expiresAt, meta: op.meta });
    return { placed: true, before, refusedBy: -1 };
  }

  /**
   * {@inheritDoc BudgetStore.commit}
   *
   * @example
   * ```ts
   * const s = await store.commit('a1', 4, 1_000);
   * // s: { reserved: 5, charged: 4, after: [{ key: 'w', committed: 4, reserved: 0 }], meta: '' }
   * ```
   */
  async commit(id: string, actual: number, now: number): Promise<SettleResult | null> {
    this.#check();
    this.#expireSync(now);
    const r = this.#reservations.get(id);
    return r ? this.#settle(id, r, actual, now) : null;
  }

  /**
   * {@inheritDoc BudgetStore.release}
   *
   * @example
   * ```ts
   * const s = await store.release('a1', 1_000); // { reserved: 5, charged: 0, … }, or null if 'a1' is not open
   * ```
   */
  async release(id: string, now: number): Promise<SettleResult | null> {
    this.#check();
    this.#expireSync(now);
    const r = this.#reservations.get(id);
    return r ? this.#settle(id, r, 0, now) : null;
  }

  /**
   * {@inheritDoc BudgetStore.expire}
   *
   * @example
   * ```ts
   * const expired = await store.expire(Date.now()); // [{ id, meta }] released by expiry since the last call
   * ```
   */
  async expire(now: number): Promise<ExpiredReservation[]> {
    this.#check();
    this.#expireSync(now);
    const out = this.#expired;
    this.#expired = [];
    return out;
  }

  /**
   * {@inheritDoc BudgetStore.usage}
   *
   * @example
   * ```ts
   * const [w, unknown] = await store.usage(['w', 'nope'], 1_000); // unknown: { committed: 0, reserved: 0 }
   * ```
   */
  async usage(keys: string[], now: number): Promise<WindowUsage[]> {
    this.#check();
    this.#expireSync(now);
    return keys.map((k) => {
      const w = this.#windows.get(k);
      return { committed: w?.committed ?? 0, reserved: w?.reserved ?? 0 };
    });
  }

  /**
   * {@inheritDoc BudgetStore.charge}
   *
   * @example
   * ```ts
   * const r = await store.charge({ id: 'unbacked:1', amount: 3, windows: [{ key: 'w', expiresAt: null }], now: 1_000 });
   * // r: { applied: true, after: [{ key: 'w', committed: 3, reserved: 0 }] }; the same id again: applied false
   * ```
   */
  async charge(op: ChargeOp): Promise<ChargeResult> {
    this.#check();
    this.#expireSync(op.now);
    const applied = !this.#charged.has(op.id);
    if (applied) {
      this.#charged.add(op.id);
      this.#chargedDue.push(op.now + CHARGE_MEMORY_MS, op.id);
      for (const c of op.windows) this.#window(c.key, c.expiresAt).committed += op.amount;
    }
    const after = op.windows.map((c) => {
      const w = this.#windows.get(c.key);
      return { key: c.key, committed: w?.committed ?? 0, reserved: w?.reserved ?? 0 };
    });
    return { applied, after };
  }

  /**
   * {@inheritDoc BudgetStore.close}
   *
   * @example
   * ```ts
   * await store.close(); // later calls reject with 'The budget store is closed'
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(() => undefined);
  }

  /** {@link MemoryBudgetStore.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
