/**
 * The native kernel's segment formats and block sizes (native/attention/kernels.h, which
 * documents the layouts), mirrored for the cache's bookkeeping, plus the two conversions the cache
 * does in TypeScript: rounding a chunk to bfloat16 and reading an int8 block back (rollback).
 * @module
 */

/**
 * What a {@link DuoKVCache} stores keys and values as (see {@link DuoKVCacheOptions.storage}):
 * `'float32'` (4 bytes), `'float16'` (2), `'bf16'` (bfloat16, 2) or `'int8'` (about 1.07 bytes:
 * KIVI-style, keys per channel and values per token).
 *
 * @example
 * ```ts
 * const storage: KvCacheStorage = 'int8';
 * ```
 */
export type KvCacheStorage = 'float32' | 'float16' | 'bf16' | 'int8';

/** Segment formats, numbered as `attention::Format` (static_assert-ed in native/attention/binding.cc). @internal */
export const FORMAT = { denseF32: 0, denseF16: 1, blockF32: 2, blockF16: 3, blockBf16: 4, blockI8: 5 } as const;
/** A segment format number. @internal */
export type Format = (typeof FORMAT)[keyof typeof FORMAT];

/** Positions per block of the cache layouts. @internal */
export const BLOCK = 64;
/** Columns per value chunk of an int8 block. @internal */
const I8_CHUNK = 32;

const dim4 = (dim: number) => Math.ceil(dim / 4) * 4;

/** Elements (of the format's storage type) of one block's keys. @internal */
export function keyBlockElements(format: Format, dim: number): number {
  if (format === FORMAT.blockBf16) return Math.ceil(dim / 2) * 2 * BLOCK;
  if (format === FORMAT.blockI8) return dim4(dim) * (8 + BLOCK);
  return dim * BLOCK;
}

/** Elements of one block's values. @internal */
export function valueBlockElements(format: Format, dim: number): number {
  return format === FORMAT.blockI8 ? 4 * BLOCK + dim * BLOCK : dim * BLOCK;
}

/** Bytes per element of a format's storage type. @internal */
export function elementBytes(format: Format): number {
  return format === FORMAT.denseF32 || format === FORMAT.blockF32 ? 4 : format === FORMAT.blockI8 ? 1 : 2;
}

/**
 * The values of `src` rounded to bfloat16 (nearest even, as the native writes round), as
 * float32. A chunk a bfloat16 cache attends to is rounded first, so that its tokens are seen at
 * the precision they are stored in, whatever the chunking. @internal
 */
export function roundToBf16(src: Float32Array): Float32Array {
  const out = new Float32Array(src.length);
  out.set(src);
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i]!;
    bits[i] = ((u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000) >>> 0;
  }
  return out;
}

/**
 * Dequantises rows `[from, to)` of an int8 block (keys at `k`, values at `v`, byte offsets into
 * the buffers) into token-major float32 rows `out[row - from][dim]`, as `min + step · code` for keys
 * and `step · code` for values. How a rollback into an already quantised block gets its
 * residual back when the float32 copy of those positions is gone. @internal
 */
export function dequantiseBlock(
  kBuf: Uint8Array, k: number, vBuf: Uint8Array, v: number, dim: number, from: number, to: number, outK: Float32Array, outV: Float32Array, at: number,
): void {
  const d4 = dim4(dim);
  const kView = new DataView(kBuf.buffer, kBuf.byteOffset + k, d4 * (8 + BLOCK));
  const vView = new DataView(vBuf.buffer, vBuf.byteOffset + v, 4 * BLOCK + dim * BLOCK);
  for (let r = from; r < to; r++) {
    const vStep = vView.getFloat32(4 * r, true);
    for (let d = 0; d < dim; d++) {
      const min = kView.getFloat32(4 * d, true);
      const step = kView.getFloat32(4 * (d4 + d), true);
      const code = kView.getUint8(8 * d4 + Math.floor(r / 32) * (d4 / 4) * 128 + Math.floor(d / 4) * 128 + (r % 32) * 4 + (d % 4));
      outK[at + (r - from) * dim + d] = Math.fround(min + Math.fround(step * code));
      const start = Math.floor(d / I8_CHUNK) * I8_CHUNK;
      const width = Math.min(I8_CHUNK, dim - start);
      const vc = vView.getInt8(4 * BLOCK + start * BLOCK + Math.floor(r / 4) * width * 4 + (d - start) * 4 + (r % 4));
      outV[at + (r - from) * dim + d] = Math.fround(vStep * vc);
    }
  }
}
