/**
 * Reconciliation of fail-open approvals: what an allocation approved while the store could not
 * be reached (`unbacked: true`) really used is kept here, in a bounded queue, and charged to the
 * windows it would have been charged to once the store answers again, in commit order, through
 * the store's {@link BudgetStore.charge}.
 * @module
 */
import type { BudgetStore, ChargeResult, ChargeWindow } from './store';

/** One window of a fail-open allocation, as the decision found it. */
export interface UnbackedWindow extends ChargeWindow {
  budgetId: string;
  limit: number;
}

/** A fail-open commit waiting to be charged. */
export interface PendingCharge {
  /** The allocation id: also the charge id, so a charge sent twice counts once. */
  id: string;
  amount: number;
  windows: UnbackedWindow[];
  requesterId: string;
}

/** Counters of {@link Reconciler}, as {@link BudgetMetrics} reports them. */
export interface ReconcileCounts {
  reconciledCommits: number;
  reconciledAmount: number;
  unreconciledCommits: number;
  unreconciledAmount: number;
  unchargedCommits: number;
  unchargedAmount: number;
}

/**
 * Fail-open allocations from approval to charge: the open ones (each settles once, before its
 * expiry), the queue of commits waiting for the store, and the counters.
 */
export class Reconciler {
  readonly #open = new Map<string, { expiresAt: number; windows: UnbackedWindow[]; requesterId: string }>();
  readonly #store: BudgetStore;
  readonly #limit: number;
  readonly #now: () => number;
  readonly #onCharged: (p: PendingCharge, r: ChargeResult) => void;
  // A FIFO: #queue[#head …] are waiting; the consumed front is cut off now and then.
  #queue: PendingCharge[] = [];
  #head = 0;
  #flushing: Promise<void> | null = null;
  #reconciled = { commits: 0, amount: 0 };
  #uncharged = { commits: 0, amount: 0 };

  /**
   * @param limit - Most commits kept waiting; past it a commit is counted uncharged.
   * @param onCharged - Called after each charge the store confirms (`applied` false: an earlier try had been applied).
   */
  constructor(store: BudgetStore, limit: number, now: () => number, onCharged: (p: PendingCharge, r: ChargeResult) => void) {
    this.#store = store;
    this.#limit = limit;
    this.#now = now;
    this.#onCharged = onCharged;
  }

  /** Records a fail-open approval, to be committed or released before `expiresAt`. */
  approve(id: string, expiresAt: number, windows: UnbackedWindow[], requesterId: string): void {
    this.#open.set(id, { expiresAt, windows, requesterId });
  }

  /**
   * Settles an open fail-open allocation once: a commit (`actual`) queues its use for charging,
   * a release (`null`) drops it. Returns the amount that will be charged (0 for a release, a
   * zero commit, or a commit the queue cannot take), or null when the allocation is unknown,
   * already settled or expired.
   */
  settle(id: string, actual: number | null): number | null {
    const u = this.#open.get(id);
    this.#open.delete(id);
    if (u === undefined || u.expiresAt <= this.#now()) return null;
    const queued = actual !== null && actual > 0 && this.add({ id, amount: actual, windows: u.windows, requesterId: u.requesterId });
    this.kick();
    return queued ? actual : 0;
  }

  /** Forgets open allocations that expired unsettled (they used nothing anyone reported). */
  prune(now: number): void {
    for (const [id, u] of this.#open) if (u.expiresAt <= now) this.#open.delete(id);
  }

  /** Whether commits are waiting. */
  get pending(): boolean {
    return this.#head < this.#queue.length;
  }

  /** Queues a commit; false (and counted uncharged) when the queue is full or the store cannot charge. */
  add(p: PendingCharge): boolean {
    if (typeof this.#store.charge !== 'function' || this.#queue.length - this.#head >= this.#limit) {
      this.#uncharged.commits++;
      this.#uncharged.amount += p.amount;
      return false;
    }
    this.#queue.push(p);
    return true;
  }

  /** Starts charging the queue in the background, if anything waits; a failure leaves it waiting. */
  kick(): void {
    if (this.pending && this.#flushing === null) this.drain().catch(() => undefined);
  }

  /** Charges everything waiting; rejects with the store's error (what was not charged keeps waiting). */
  async drain(): Promise<void> {
    while (this.pending) {
      this.#flushing ??= this.#flush().finally(() => (this.#flushing = null));
      await this.#flushing;
    }
  }

  async #flush(): Promise<void> {
    while (this.pending) {
      const p = this.#queue[this.#head]!;
      const r = await this.#store.charge!({ id: p.id, amount: p.amount, windows: p.windows.map((w) => ({ key: w.key, expiresAt: w.expiresAt })), now: this.#now() });
      this.#head++;
      if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      this.#reconciled.commits++;
      this.#reconciled.amount += p.amount;
      this.#onCharged(p, r);
    }
  }

  /** The counters; the waiting amount is summed in queue order. */
  counts(): ReconcileCounts {
    let amount = 0;
    for (let i = this.#head; i < this.#queue.length; i++) amount += this.#queue[i]!.amount;
    return {
      reconciledCommits: this.#reconciled.commits,
      reconciledAmount: this.#reconciled.amount,
      unreconciledCommits: this.#queue.length - this.#head,
      unreconciledAmount: amount,
      unchargedCommits: this.#uncharged.commits,
      unchargedAmount: this.#uncharged.amount,
    };
  }
}
