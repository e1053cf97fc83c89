/**
 * The router's ledger of decisions awaiting outcomes, and of the requests each expert has in
 * flight because of them.
 * @module
 */

/**
 * One decision awaiting outcomes.
 * @internal
 */
export interface PendingDecision {
  /** The chosen expert. */
  readonly expertId: string;
  /** The fallbacks listed in the decision: the only other experts its outcomes may name. */
  readonly fallbacks: readonly string[];
  /** When it was made (clock ms). */
  readonly at: number;
  /** Whether it still counts as a request in flight to `expertId`. */
  open: boolean;
  /** Fallback runs working on it (see {@link PendingDecisions.hold}): never expired meanwhile. */
  calls: number;
  /** Row of the features slab holding the query's features. */
  readonly slot: number;
}

/**
 * Decisions made and not yet answered, each with its query's features (for learning from its
 * outcomes), plus the requests in flight per expert. A decision leaves when a success answers
 * it, when it is older than the TTL, or, oldest first, when more than `maxPending` are kept.
 *
 * Expiry walks decisions in routing (time) order, an array with a moving head; ids closed since
 * are skipped when reached. (Iterating the map from its start instead scans the slots V8 leaves
 * behind deleted entries until a rehash: microseconds per query once many decisions are closed.)
 * Features live in one slab, a row per decision, so no decision allocates.
 * @internal
 */
export class PendingDecisions {
  readonly #byId = new Map<string, PendingDecision>();
  #order: string[] = [];
  #head = 0;
  #slab: Float32Array | undefined;
  readonly #freeSlots: number[] = [];
  #slots = 0;
  readonly #inFlight = new Map<string, number>();

  /**
   * @param dims - Length of a query's features.
   * @param maxPending - Decisions kept at most (more only while fallback runs hold them).
   * @param ttlMs - Age (ms) past which a decision is dropped.
   */
  constructor(
    readonly dims: number,
    readonly maxPending: number,
    readonly ttlMs: number,
  ) {}

  /** Decisions kept. */
  get size(): number {
    return this.#byId.size;
  }

  /** The decision, or undefined when unknown, answered or expired. */
  get(id: string): PendingDecision | undefined {
    return this.#byId.get(id);
  }

  /** Keeps a new decision (a copy of `features`) and counts a request in flight to its expert. */
  add(id: string, expertId: string, fallbacks: readonly string[], features: Float32Array, now: number): PendingDecision {
    const p: PendingDecision = { expertId, fallbacks, at: now, open: true, calls: 0, slot: this.#keep(features) };
    this.#byId.set(id, p);
    this.#order.push(id);
    this.#compactOrder();
    this.begin(expertId);
    return p;
  }

  /** The query features of a decision (a view: valid while the decision is kept or held). */
  features(p: PendingDecision): Float32Array {
    return this.#slab!.subarray(p.slot * this.dims, (p.slot + 1) * this.dims);
  }

  /** Requests in flight to an expert. */
  inFlight(expertId: string): number {
    return this.#inFlight.get(expertId) ?? 0;
  }

  /** Counts one more request in flight to an expert. */
  begin(expertId: string): void {
    this.#inFlight.set(expertId, (this.#inFlight.get(expertId) ?? 0) + 1);
  }

  /** Counts one request to an expert as done (never below 0). */
  end(expertId: string): void {
    const n = this.#inFlight.get(expertId);
    if (n !== undefined) this.#inFlight.set(expertId, Math.max(0, n - 1));
  }

  /** Forgets an expert's in-flight count (it was removed). */
  forget(expertId: string): void {
    this.#inFlight.delete(expertId);
  }

  /** Ends the decision's request in flight, once. */
  release(p: PendingDecision): void {
    if (!p.open) return;
    p.open = false;
    this.end(p.expertId);
  }

  /** Marks a fallback run working on the decision: it is not expired meanwhile, nor closed by a success. */
  hold(p: PendingDecision): void {
    p.calls++;
  }

  /** Ends a {@link PendingDecisions.hold}: the run is done, so is the decision. */
  unhold(id: string, p: PendingDecision): void {
    p.calls--;
    this.close(id, p);
  }

  /** Drops the decision (releasing its request) and frees its features row. */
  close(id: string, p: PendingDecision): void {
    this.release(p);
    if (this.#byId.get(id) === p) {
      this.#byId.delete(id);
      this.#freeSlots.push(p.slot);
    }
  }

  /** Drops decisions past their TTL, and the oldest beyond `maxPending`, except those held. */
  expire(now: number): void {
    while (this.#head < this.#order.length) {
      const id = this.#order[this.#head]!;
      const p = this.#byId.get(id);
      if (p !== undefined) {
        if (now - p.at < this.ttlMs && this.#byId.size < this.maxPending) break;
        // A fallback run still using it closes it when done.
        if (p.calls === 0) this.close(id, p);
      }
      this.#head++;
    }
  }

  // Keeps #order within about twice the decisions kept: O(1) amortised per decision.
  #compactOrder(): void {
    const head = this.#head;
    if (this.#order.length - head > 2 * this.#byId.size + 1024) {
      this.#order = this.#order.slice(head).filter((id) => this.#byId.has(id));
      this.#head = 0;
    } else if (head >= 1024 && 2 * head >= this.#order.length) {
      this.#order = this.#order.slice(head);
      this.#head = 0;
    }
  }

  #keep(features: Float32Array): number {
    const d = this.dims;
    this.#slab ??= new Float32Array(this.maxPending * d);
    const slot = this.#freeSlots.pop() ?? this.#slots++;
    if ((slot + 1) * d > this.#slab.length) {
      // Only decisions held by fallback runs can outnumber maxPending.
      const grown = new Float32Array(this.#slab.length * 2);
      grown.set(this.#slab);
      this.#slab = grown;
    }
    this.#slab.set(features, slot * d);
    return slot;
  }
}
