/**
 * The seeded PRNG of the routing strategies: every random choice (Thompson samples, the random
 * projection) comes from here, so a run is reproducible from its seed and its state persists.
 * @module
 */

/**
 * mulberry32: 32 bits of state, period 2³², fast and good enough for sampling (not for secrets).
 * The state is one uint32, so it travels in JSON exactly.
 *
 * @example
 * ```ts
 * const rng = new Prng(42);
 * const u = rng.next(); // in [0, 1)
 * const again = new Prng(rng.state); // continues the same stream
 * ```
 */
export class Prng {
  #state: number;

  /** Starts the stream at `seed` (any number; its low 32 bits are used). */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /**
   * The current state, a uint32: `new Prng(state)` continues the same stream.
   *
   * @example
   * ```ts
   * const saved = rng.state;
   * ```
   */
  get state(): number {
    return this.#state;
  }

  /**
   * A uniform sample in [0, 1).
   *
   * @example
   * ```ts
   * const u = new Prng(1).next();
   * ```
   */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /**
   * A standard normal sample (Box–Muller; the second value is dropped so the state stays one uint32).
   *
   * @example
   * ```ts
   * const z = new Prng(1).normal();
   * ```
   */
  normal(): number {
    const u = 1 - this.next(); // (0, 1]: log stays finite
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /**
   * A Gamma(shape, 1) sample (Marsaglia–Tsang; shape < 1 through the `U^(1/shape)` boost).
   *
   * @example
   * ```ts
   * const g = new Prng(1).gamma(2.5);
   * ```
   */
  gamma(shape: number): number {
    if (shape < 1) return this.gamma(shape + 1) * Math.pow(this.next(), 1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.next();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /**
   * A Beta(a, b) sample, as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
   *
   * @example
   * ```ts
   * const p = new Prng(1).beta(1 + 9, 1 + 1); // posterior of 9 successes, 1 failure
   * ```
   */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const y = this.gamma(b);
    return x / (x + y);
  }
}
