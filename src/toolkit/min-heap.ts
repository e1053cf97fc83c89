/**
 * A binary min-heap keyed by a number: the due-time queue behind expiries, so that finding what
 * is due costs O(log n) whatever the number of live entries.
 * @module
 */

/** Items pop by key, equal keys in insertion order (so expiries are reported in a stable order). @internal */
export class MinHeap<T> {
  readonly #keys: number[] = [];
  readonly #seqs: number[] = [];
  readonly #items: T[] = [];
  #seq = 0;

  get size(): number {
    return this.#keys.length;
  }

  /** The smallest key, or Infinity when empty. */
  peekKey(): number {
    return this.#keys.length > 0 ? this.#keys[0]! : Infinity;
  }

  push(key: number, item: T): void {
    const seq = this.#seq++;
    let i = this.#keys.length;
    this.#keys.push(key);
    this.#seqs.push(seq);
    this.#items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(key, seq, parent)) break;
      this.#move(parent, i);
      i = parent;
    }
    this.#set(i, key, seq, item);
  }

  /** Removes and returns the item with the smallest key (undefined when empty). */
  pop(): T | undefined {
    if (this.#keys.length === 0) return undefined;
    const top = this.#items[0];
    const key = this.#keys.pop()!;
    const seq = this.#seqs.pop()!;
    const item = this.#items.pop()!;
    const n = this.#keys.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && this.#before(this.#keys[child + 1]!, this.#seqs[child + 1]!, child)) child++;
        if (!this.#before(this.#keys[child]!, this.#seqs[child]!, -1, key, seq)) break;
        this.#move(child, i);
        i = child;
      }
      this.#set(i, key, seq, item);
    }
    return top;
  }

  // Whether (key, seq) orders before slot `at` (or before (atKey, atSeq) when at is -1).
  #before(key: number, seq: number, at: number, atKey = this.#keys[at]!, atSeq = this.#seqs[at]!): boolean {
    return key < atKey || (key === atKey && seq < atSeq);
  }

  #move(from: number, to: number): void {
    this.#set(to, this.#keys[from]!, this.#seqs[from]!, this.#items[from]!);
  }

  #set(at: number, key: number, seq: number, item: T): void {
    this.#keys[at] = key;
    this.#seqs[at] = seq;
    this.#items[at] = item;
  }
}
