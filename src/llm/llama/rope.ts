/**
 * Rotary position embedding tables: the inverse frequencies of `rope_theta` with Hugging Face's
 * scaling rules, and the cos/sin rows of a run of positions in the `rotate_half` layout
 * (`cat(freqs, freqs)`), computed in float32 as the exported models do.
 * @module
 */
import type { RopeConfig } from './config';

/**
 * `inv_freq[i] = 1 / theta^(2i / headDim)`, then scaled as `rope_scaling` says (transformers'
 * `_compute_llama3_parameters` for `'llama3'`, `inv_freq / factor` for `'linear'`).
 * @internal
 */
export function inverseFrequencies(headDim: number, rope: RopeConfig): Float32Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = Math.fround(1 / Math.fround(rope.theta ** ((2 * i) / headDim)));
  const s = rope.scaling;
  if (s.type === 'linear') for (let i = 0; i < half; i++) inv[i] = inv[i]! / s.factor;
  if (s.type === 'llama3') {
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositions / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) inv[i] = f / s.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = ((1 - smooth) * f) / s.factor + smooth * f;
      }
    }
  }
  return Float32Array.from(inv);
}

/**
 * Fills `cos` and `sin` (`[n, headDim / 2]`) for positions `start .. start + n - 1`: angle
 * `fround(p × inv_freq[i])` in column `i` (rotate_half uses each for columns i and i + headDim / 2).
 * @internal
 */
export function ropeRows(invFreq: Float32Array, start: number, n: number, cos: Float32Array, sin: Float32Array): void {
  const half = invFreq.length;
  for (let t = 0; t < n; t++) {
    const p = Math.fround(start + t);
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]!);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
}
