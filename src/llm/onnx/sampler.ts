/**
 * Next-token choice from logits: greedy, or temperature + nucleus (top-p) sampling from a
 * seeded generator, so a seeded run repeats exactly.
 * @module
 */
import { randomInt } from 'node:crypto';

/** xoshiro128** (32-bit state words): fast, seedable, and good enough for sampling. */
class Xoshiro128 {
  #s = new Uint32Array(4);
  constructor(seed: number) {
    // The low and high 32 bits of the seed (any integer up to 2^53) each fill two state words
    // through SplitMix32, a bijection per word: different seeds, different states.
    const words = [seed >>> 0, Math.floor(seed / 2 ** 32) >>> 0];
    for (let i = 0; i < 4; i++) {
      let z = (words[i >> 1]! + Math.imul(0x9e3779b9, (i & 1) + 1)) >>> 0;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.#s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.#s.every((w) => w === 0)) this.#s[0] = 1; // xoshiro's one forbidden state
  }

  /** Uniform in [0, 1) with 32 random bits. */
  next(): number {
    const s = this.#s;
    const r = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return r / 2 ** 32;
  }
}

/**
 * A seed from the OS for an unseeded call: 48 random bits. randomInt's range (max - min) must
 * be below 2^48, so `randomInt(2 ** 48)` throws; `2 ** 48 - 1` is its largest exclusive max.
 */
export function unseeded(): number {
  return randomInt(2 ** 48 - 1);
}

/**
 * Natural-log probability of token `id` under the softmax of `logits` at temperature 1 (no
 * sampling filter), in float64: `(x[id] - max) - log(sum_i exp(x[i] - max))`, shifted by the
 * largest logit so no exp overflows. NaN logits weigh nothing, as in sampling.
 */
export function logProbability(logits: Float32Array, id: number): number {
  const max = logits[argmax(logits)]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp(logits[i]! - max);
    if (!Number.isNaN(e)) sum += e;
  }
  return logits[id]! - max - Math.log(sum);
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Index of the largest logit; ties go to the lowest index. NaN never wins. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i]! > max) {
      max = logits[i]!;
      best = i;
    }
  }
  return best;
}

/** Picks tokens for one generate call. */
export class Sampler {
  readonly #rng: Xoshiro128 | undefined;
  #probs = new Float64Array(0);
  #order = new Uint32Array(0);
  #kept = new Uint32Array(0);

  /** `temperature` 0 is greedy (no randomness); `seed` undefined draws one from the OS. */
  constructor(
    readonly temperature: number,
    readonly topP: number,
    seed: number | undefined,
  ) {
    if (temperature > 0) this.#rng = new Xoshiro128(seed ?? unseeded());
  }

  /** The next token id from the logits of the last position. */
  pick(logits: Float32Array): number {
    if (this.#rng === undefined) return argmax(logits);
    const n = logits.length;
    if (this.#probs.length !== n) {
      this.#probs = new Float64Array(n);
      this.#order = new Uint32Array(n);
      this.#kept = new Uint32Array(n);
    }
    const p = this.#probs;
    // Softmax of logits / T in float64, shifted by the max so exp never overflows.
    const max = logits[argmax(logits)]!;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const e = Math.exp((logits[i]! - max) / this.temperature);
      p[i] = Number.isNaN(e) ? 0 : e;
      sum += p[i]!;
    }
    const u = this.#rng.next();
    if (this.topP >= 1) return draw(p, sum, u, n);
    // Nucleus: the most probable tokens whose mass first reaches topP (ties by lower id). A
    // max-heap pops them in order, so only the nucleus is sorted, not the whole vocabulary.
    const order = this.#kept;
    const heap = new MaxHeap(p, this.#order, n);
    const target = this.topP * sum;
    let kept = 0;
    let mass = 0;
    while (kept < n && mass < target) {
      const id = heap.pop();
      order[kept++] = id;
      mass += p[id]!;
    }
    let r = u * mass;
    for (let i = 0; i < kept; i++) {
      r -= p[order[i]!]!;
      if (r < 0) return order[i]!;
    }
    return order[kept - 1]!;
  }
}

/** Inverse-CDF draw over unnormalised weights `p[0..n)` with total `sum`. */
function draw(p: Float64Array, sum: number, u: number, n: number): number {
  let r = u * sum;
  let last = 0;
  for (let i = 0; i < n; i++) {
    if (p[i]! > 0) last = i;
    r -= p[i]!;
    if (r < 0) return i;
  }
  return last; // rounding left r >= 0: the last token with any mass
}

/** Binary max-heap of token ids keyed by probability (ties: lower id first), built in O(n). */
class MaxHeap {
  #size: number;
  constructor(
    private readonly p: Float64Array,
    private readonly a: Uint32Array,
    n: number,
  ) {
    this.#size = n;
    for (let i = 0; i < n; i++) a[i] = i;
    for (let i = (n >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  pop(): number {
    const a = this.a;
    const top = a[0]!;
    this.#size--;
    a[0] = a[this.#size]!;
    this.#down(0);
    return top;
  }

  #above(x: number, y: number): boolean {
    const px = this.p[x]!;
    const py = this.p[y]!;
    return px > py || (px === py && x < y);
  }

  #down(i: number): void {
    const a = this.a;
    const n = this.#size;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      const c = r < n && this.#above(a[r]!, a[l]!) ? r : l;
      if (!this.#above(a[c]!, a[i]!)) return;
      const t = a[i]!;
      a[i] = a[c]!;
      a[c] = t;
      i = c;
    }
  }
}
