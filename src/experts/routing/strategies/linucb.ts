/**
 * Disjoint LinUCB (Li et al. 2010) with exponential forgetting, and the random projection that
 * keeps its matrices small.
 * @module
 */
import { Prng } from './prng';
import { decayFactor } from './expert-stats';

/**
 * A fixed random projection D → k by feature hashing (a count sketch): input i is added, with a
 * random sign, to one random output. E[(Rx)·(Ry)] = x·y, with variance of order 2/k for dense
 * unit vectors like the query embeddings (the same order as a dense Gaussian projection), at D
 * multiply-adds instead of D·k. Built from a seed, so it is never stored.
 *
 * @example
 * ```ts
 * const p = new RandomProjection(256, 16, 7);
 * const y = new Float64Array(16);
 * p.apply(features, y);
 * ```
 */
export class RandomProjection {
  /** Input dimensions D. */
  readonly inDims: number;
  /** Output dimensions k (= D when no projection is needed). */
  readonly outDims: number;
  readonly #identity: boolean;
  /** Output index of each input. */
  readonly #bucket: Int32Array;
  /** Sign (±1) of each input. */
  readonly #sign: Float64Array;

  /** Projects D → k dimensions; k >= D keeps the features unchanged. */
  constructor(inDims: number, outDims: number, seed: number) {
    this.inDims = inDims;
    this.#identity = outDims >= inDims;
    this.outDims = this.#identity ? inDims : outDims;
    this.#bucket = new Int32Array(inDims);
    this.#sign = new Float64Array(inDims);
    // Its own stream, so the projection never shifts the sampling stream (and vice versa).
    const rng = new Prng((seed ^ 0x9e3779b9) >>> 0);
    for (let i = 0; i < inDims; i++) {
      this.#bucket[i] = this.#identity ? i : Math.floor(rng.next() * this.outDims);
      this.#sign[i] = this.#identity || rng.next() < 0.5 ? 1 : -1;
    }
  }

  /**
   * Writes R·x into `out[0..k)`.
   *
   * @example
   * ```ts
   * const y = new Float64Array(projection.outDims);
   * projection.apply(features, y);
   * ```
   */
  apply(x: Float32Array, out: Float64Array): void {
    const k = this.outDims;
    for (let r = 0; r < k; r++) out[r] = 0;
    const bucket = this.#bucket;
    const sign = this.#sign;
    for (let i = 0; i < this.inDims; i++) out[bucket[i]!]! += sign[i]! * x[i]!;
  }
}

/** JSON form of `LinUcbArm`. */
export interface LinUcbArmJSON {
  n: number;
  time: number;
  rho: number;
  a: number[];
  ainv: number[];
  b: number[];
  /** θ = A⁻¹b, derived (recomputed on load); there for inspection. */
  theta: number[];
}

/**
 * One expert's LinUCB state over d-dimensional contexts: A = ρI + Σ wₛxₛxₛᵀ, b = Σ wₛrₛxₛ,
 * θ = A⁻¹b, UCB = θᵀx + α√(xᵀA⁻¹x).
 *
 * Forgetting: all weights, the ridge ρ included, halve every half-life (recursive least squares
 * with a forgetting factor). Scaling A by g leaves θ unchanged and scales A⁻¹ by 1/g, so decay
 * costs nothing at ranking time (the bonus is divided by √g) and O(d²) at update time. When ρ
 * falls below λ/2, λ − ρ is added back to the diagonal and A re-inverted (O(d³), at most once
 * per half-life of use); this bounds the uncertainty of directions the arm never sees.
 *
 * Cost, d = projected dimensions + 1: ranking d(d+1)/2 multiply-adds per arm (the quadratic form
 * as a dot product with the packed triangle) + d (θᵀx); update about 3d² (Sherman–Morrison, θ, the
 * packed copy). At the default d = 17: 170 per arm and rank, ~900 per update.
 */
export class LinUcbArm {
  readonly d: number;
  n = 0;
  /** Time the state refers to (decay since then is applied lazily). */
  time = 0;
  /** Current ridge weight on the diagonal of A. */
  rho: number;
  /** A, row-major d × d (kept to restore the ridge). */
  readonly a: Float64Array;
  /** A⁻¹, row-major, symmetric (Sherman–Morrison subtracts a symmetric outer product). */
  readonly ainv: Float64Array;
  readonly b: Float64Array;
  readonly theta: Float64Array;
  readonly #u: Float64Array;
  /** Upper triangle of A⁻¹ row by row, off-diagonal entries doubled (see `variance`). */
  readonly #packed: Float64Array;

  constructor(d: number, lambda: number) {
    this.d = d;
    this.rho = lambda;
    this.a = new Float64Array(d * d);
    this.ainv = new Float64Array(d * d);
    for (let i = 0; i < d; i++) {
      this.a[i * d + i] = lambda;
      this.ainv[i * d + i] = 1 / lambda;
    }
    this.b = new Float64Array(d);
    this.theta = new Float64Array(d);
    this.#u = new Float64Array(d);
    this.#packed = new Float64Array((d * (d + 1)) / 2);
    this.#derive();
  }

  /** θᵀx. */
  estimate(x: Float64Array): number {
    let s = 0;
    for (let i = 0; i < this.d; i++) s += this.theta[i]! * x[i]!;
    return s;
  }

  /**
   * xᵀA⁻¹x at `now` (A decayed lazily: divided by the decay factor), from `q` = `outerPacked`
   * of x: one flat dot product with the packed upper triangle of A⁻¹, so the d(d+1)/2 products of
   * x are formed once per ranking instead of once per arm.
   */
  variance(q: Float64Array, now: number, halfLifeMs: number): number {
    const p = this.#packed;
    const n = p.length;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let k = 0;
    // Four independent sums: a single one is bound by the latency of each add.
    for (; k + 3 < n; k += 4) {
      s0 += p[k]! * q[k]!;
      s1 += p[k + 1]! * q[k + 1]!;
      s2 += p[k + 2]! * q[k + 2]!;
      s3 += p[k + 3]! * q[k + 3]!;
    }
    for (; k < n; k++) s0 += p[k]! * q[k]!;
    return Math.max(0, s0 + s1 + (s2 + s3)) / decayFactor(now - this.time, halfLifeMs);
  }

  /** Learns reward `r` for context `x` at `now`. */
  update(x: Float64Array, r: number, now: number, lambda: number, halfLifeMs: number): void {
    const d = this.d;
    const a = this.a;
    const m = this.ainv;
    if (this.n === 0) this.time = now;
    const g = decayFactor(now - this.time, halfLifeMs);
    if (g !== 1) {
      for (let i = 0; i < d * d; i++) {
        a[i]! *= g;
        m[i]! /= g;
      }
      for (let i = 0; i < d; i++) this.b[i]! *= g;
      this.rho *= g;
    }
    if (now > this.time) this.time = now;
    if (this.rho < lambda / 2) {
      for (let i = 0; i < d; i++) a[i * d + i]! += lambda - this.rho;
      this.rho = lambda;
      invertSymmetric(a, m, d);
    }
    // Sherman–Morrison: (A + xxᵀ)⁻¹ = A⁻¹ − (A⁻¹x)(A⁻¹x)ᵀ / (1 + xᵀA⁻¹x).
    const u = this.#u;
    let den = 1;
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += m[i * d + j]! * x[j]!;
      u[i] = s;
      den += x[i]! * s;
    }
    const invDen = 1 / den;
    for (let i = 0; i < d; i++) {
      const ui = u[i]!;
      const xi = x[i]!;
      for (let j = 0; j < d; j++) {
        // (uᵢuⱼ)·c is bitwise symmetric in i, j, so A⁻¹ stays exactly symmetric.
        m[i * d + j]! -= ui * u[j]! * invDen;
        a[i * d + j]! += xi * x[j]!;
      }
      this.b[i]! += r * xi;
    }
    this.#derive();
    this.n += 1;
  }

  /** Recomputes θ = A⁻¹b and the packed A⁻¹ after A⁻¹ or b changed. */
  #derive(): void {
    const d = this.d;
    const m = this.ainv;
    let k = 0;
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += m[i * d + j]! * this.b[j]!;
      this.theta[i] = s;
      this.#packed[k++] = m[i * d + i]!;
      for (let j = i + 1; j < d; j++) this.#packed[k++] = 2 * m[i * d + j]!;
    }
  }

  toJSON(): LinUcbArmJSON {
    return {
      n: this.n, time: this.time, rho: this.rho,
      a: Array.from(this.a), ainv: Array.from(this.ainv), b: Array.from(this.b), theta: Array.from(this.theta),
    };
  }

  static fromJSON(json: LinUcbArmJSON, d: number, lambda: number): LinUcbArm {
    const arm = new LinUcbArm(d, lambda);
    arm.n = json.n;
    arm.time = json.time;
    arm.rho = json.rho;
    arm.a.set(json.a);
    arm.ainv.set(json.ainv);
    arm.b.set(json.b);
    arm.#derive();
    return arm;
  }
}

/**
 * The products xᵢxⱼ for i <= j, row by row, into `q` (length d(d+1)/2): the other half of
 * `LinUcbArm.variance`'s dot product.
 */
export function outerPacked(x: Float64Array, d: number, q: Float64Array): void {
  let k = 0;
  for (let i = 0; i < d; i++) {
    const xi = x[i]!;
    for (let j = i; j < d; j++) q[k++] = xi * x[j]!;
  }
}

/**
 * Inverts the symmetric positive definite `a` into `out` by Gauss–Jordan with partial pivoting,
 * then symmetrises the result (the quadratic form reads only the upper triangle).
 */
export function invertSymmetric(a: Float64Array, out: Float64Array, d: number): void {
  const w = 2 * d;
  const t = new Float64Array(d * w);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) t[i * w + j] = a[i * d + j]!;
    t[i * w + d + i] = 1;
  }
  for (let c = 0; c < d; c++) {
    let p = c;
    for (let r = c + 1; r < d; r++) if (Math.abs(t[r * w + c]!) > Math.abs(t[p * w + c]!)) p = r;
    if (p !== c) {
      for (let j = 0; j < w; j++) {
        const tmp = t[c * w + j]!;
        t[c * w + j] = t[p * w + j]!;
        t[p * w + j] = tmp;
      }
    }
    const inv = 1 / t[c * w + c]!;
    for (let j = 0; j < w; j++) t[c * w + j]! *= inv;
    for (let r = 0; r < d; r++) {
      if (r === c) continue;
      const f = t[r * w + c]!;
      if (f === 0) continue;
      for (let j = 0; j < w; j++) t[r * w + j]! -= f * t[c * w + j]!;
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const s = 0.5 * (t[i * w + d + j]! + t[j * w + d + i]!);
      out[i * d + j] = s;
      out[j * d + i] = s;
    }
  }
}
