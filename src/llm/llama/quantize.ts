/**
 * Block quantisation of linear weights for ONNX Runtime's `MatMulNBits` (com.microsoft): each
 * row of a `[out, in]` weight (Hugging Face's `nn.Linear` layout, which is MatMulNBits' `[N, K]`)
 * is cut into blocks of {@link QUANT_BLOCK} input features; a block keeps one float32 scale
 * (its largest magnitude / (2^(bits−1) − 1)) and its values rounded to the nearest integer step,
 * symmetric around zero like llama.cpp's Q8_0 / Q4_0. Stored unsigned with MatMulNBits' default
 * zero point 2^(bits−1) (so no zero-point tensor); 4-bit values two per byte, the first in the low
 * nibble. A row whose length is not a multiple of the block is padded with zeros.
 * @module
 */

/** Input features per scale. @internal */
export const QUANT_BLOCK = 32;

/** A weight in MatMulNBits' layout. @internal */
export interface QuantizedWeight {
  /** `[rows, blocksPerRow, QUANT_BLOCK · bits / 8]` bytes. */
  data: Uint8Array;
  /** `[rows · blocksPerRow]` scales. */
  scales: Float32Array;
  blocksPerRow: number;
}

/**
 * Quantises `w` (`rows × cols`, row-major) to `bits` (4 or 8) per value.
 * @internal
 */
export function quantizeBlocks(w: Float32Array, rows: number, cols: number, bits: 4 | 8): QuantizedWeight {
  const blocksPerRow = Math.ceil(cols / QUANT_BLOCK);
  const blob = (QUANT_BLOCK * bits) / 8;
  const zero = 1 << (bits - 1);
  const top = zero - 1;
  const data = new Uint8Array(rows * blocksPerRow * blob);
  const scales = new Float32Array(rows * blocksPerRow);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocksPerRow; b++) {
      const from = r * cols + b * QUANT_BLOCK;
      const n = Math.min(QUANT_BLOCK, cols - b * QUANT_BLOCK);
      let max = 0;
      for (let j = 0; j < n; j++) max = Math.max(max, Math.abs(w[from + j]!));
      // An all-zero block keeps scale 0; its values are the zero point.
      const scale = Math.fround(max / top);
      const inv = scale === 0 ? 0 : 1 / scale;
      scales[r * blocksPerRow + b] = scale;
      const at = (r * blocksPerRow + b) * blob;
      for (let j = 0; j < QUANT_BLOCK; j++) {
        const q = j < n ? Math.min(top, Math.max(-top, Math.round(w[from + j]! * inv))) : 0;
        if (bits === 8) data[at + j] = q + zero;
        else data[at + (j >> 1)]! |= (q + zero) << ((j & 1) * 4);
      }
    }
  }
  return { data, scales, blocksPerRow };
}
