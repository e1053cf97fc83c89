/**
 * LlamaDecoder's weights: the block quantiser against a float64 reading of MatMulNBits' layout;
 * int8 / int4 decoders against a float64 reference over the dequantised weights (closer to it
 * than to the float32 weights: the quantised values are what runs); float32 weights fed as
 * inputs (a graph past its embedding limit) giving the embedded graphs' logits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuoKVCache, HeadPattern, LlamaDecoder } from '../src/index';
import { loadOrt } from '../src/onnx/session';
import { readLlamaFolder } from '../src/llm/llama/folder';
import { Forward } from '../src/llm/llama/forward';
import { QUANT_BLOCK, quantizeBlocks } from '../src/llm/llama/quantize';
import { SafetensorsFolder } from '../src/llm/llama/safetensors';
import { loadWeights } from '../src/llm/llama/weights';
import { makeTinyHfModel, shapeOf } from '../scripts/make-tiny-model.mjs';
import { llamaReference } from './support/llama-reference';

let root: string;
const IDS = [300, 17, 44, 101, 256, 290, 5, 77, 350, 12, 64, 200];
const LINEAR = /(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$|^lm_head\.weight$/;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'capibara-llama-weights-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Value j of block b of row r, as MatMulNBits reads it: unsigned, zero point 2^(bits−1), 4-bit low nibble first. */
function stored(q: { data: Uint8Array; blocksPerRow: number }, bits: number, r: number, b: number, j: number): number {
  const blob = (QUANT_BLOCK * bits) / 8;
  const at = (r * q.blocksPerRow + b) * blob;
  const u = bits === 8 ? q.data[at + j]! : (q.data[at + (j >> 1)]! >> ((j & 1) * 4)) & 15;
  return u - 2 ** (bits - 1);
}

/** Float64 dequantisation of a [rows, cols] weight: per row, blocks of 32, scale = absmax / (2^(bits−1) − 1). */
function dequantized(w: Float32Array, rows: number, cols: number, bits: number): Float32Array {
  const top = 2 ** (bits - 1) - 1;
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    for (let b0 = 0; b0 < cols; b0 += 32) {
      const row = Array.from(w.subarray(r * cols + b0, r * cols + Math.min(cols, b0 + 32)));
      const scale = Math.fround(Math.max(...row.map(Math.abs)) / top);
      row.forEach((x, j) => (out[r * cols + b0 + j] = scale === 0 ? 0 : Math.max(-top, Math.min(top, Math.round(x / scale))) * scale));
    }
  }
  return out;
}

describe('quantizeBlocks', () => {
  it.each([8, 4] as const)('%i bits: scale = block absmax / top, every value within half a step, zeros past the row, MatMulNBits layout', (bits) => {
    const rows = 5;
    const cols = 70; // two whole blocks and a partial one
    const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 12.9898) * 0.05 + (i % 37 === 0 ? 3 : 0));
    w.fill(0, 2 * cols + 32, 2 * cols + 64); // an all-zero block
    const q = quantizeBlocks(w, rows, cols, bits);
    const top = 2 ** (bits - 1) - 1;
    expect(q.blocksPerRow).toBe(3);
    expect(q.data.length).toBe((rows * 3 * 32 * bits) / 8);
    for (let r = 0; r < rows; r++) {
      for (let b = 0; b < 3; b++) {
        let max = 0;
        for (let j = 0; j < 32 && b * 32 + j < cols; j++) max = Math.max(max, Math.abs(w[r * cols + b * 32 + j]!));
        const scale = q.scales[r * 3 + b]!;
        expect(scale).toBe(Math.fround(max / top));
        for (let j = 0; j < 32; j++) {
          const v = stored(q, bits, r, b, j);
          expect(Math.abs(v)).toBeLessThanOrEqual(top);
          if (b * 32 + j >= cols) expect(v).toBe(0);
          else expect(Math.abs(v * scale - w[r * cols + b * 32 + j]!)).toBeLessThanOrEqual(scale / 2 + 1e-9);
        }
      }
    }
    expect(q.scales[2 * 3 + 1]).toBe(0);
  });
});

describe('LlamaDecoder weights option', () => {
  let model: { dir: string; config: Record<string, unknown>; weights: Record<string, Float32Array> };
  beforeAll(async () => {
    model = await makeTinyHfModel(join(root, 'tiny'), {});
  });

  function maxAbsDiff(a: Float32Array, rows: Float64Array[], V: number): number {
    let m = 0;
    rows.forEach((r, t) => {
      for (let i = 0; i < V; i++) m = Math.max(m, Math.abs(a[t * V + i]! - r[i]!));
    });
    return m;
  }

  it.each([
    ['int8', 8, 8],
    ['int4', 4, 8],
  ] as const)('%s: logits follow a float64 reference over the dequantised weights, not the float32 ones', async (type, bits, headBits) => {
    const d = await LlamaDecoder.load(model.dir, { threads: 1, weights: type });
    try {
      const got = await d.logits(IDS, { lastPositions: IDS.length });
      const weights: Record<string, Float32Array> = {};
      for (const [name, w] of Object.entries(model.weights)) {
        if (!LINEAR.test(name)) weights[name] = w;
        else {
          const [rows, cols] = shapeOf(model.config, name) as [number, number];
          weights[name] = dequantized(w, rows, cols, name === 'lm_head.weight' ? headBits : bits);
        }
      }
      const V = d.info.vocabSize;
      const toQuantized = maxAbsDiff(got, llamaReference({ config: model.config, weights }, IDS).logits, V);
      const toFloat = maxAbsDiff(got, llamaReference(model, IDS).logits, V);
      // The rest is MatMulNBits' 8-bit activations per block (measured 0.038 / 0.045 with logits
      // up to 3.8); int4's weight error is 20× that, int8's about as large.
      expect(toQuantized).toBeLessThan(0.06);
      expect(toQuantized * (bits === 4 ? 5 : 1)).toBeLessThan(toFloat);
    } finally {
      await d.close();
    }
  });

  it('int4 with a head pattern and a compact cache still generates the requested tokens', async () => {
    const pattern = HeadPattern.fromRatio([1, 0, 0, 1], { layers: 2, kvHeads: 2, sink: 2, recent: 4, retrievalRatio: 0.5 });
    const d = await LlamaDecoder.load(model.dir, { threads: 1, weights: 'int4', headPattern: pattern, storage: 'bf16' });
    try {
      const r = await d.generate(IDS, { maxTokens: 20, temperature: 0 });
      expect(r.tokens).toBe(20);
    } finally {
      await d.close();
    }
  });

  it('float32 weights fed as inputs (a graph past its embedding limit) give the embedded graphs\' logits', async () => {
    const folder = readLlamaFolder(model.dir);
    const c = folder.config;
    const st = await SafetensorsFolder.open(model.dir);
    const w = await loadWeights(st, c);
    await st.close();
    const ort = loadOrt();
    const run = async (limit?: number) => {
      const f = await Forward.create(ort, c, w, 'float32', 1, limit);
      const cache = new DuoKVCache({ layers: c.layers, kvHeads: c.kvHeads, headDim: c.headDim, maxTokens: 64, headPattern: HeadPattern.allRetrieval(c.layers, c.kvHeads), sink: 4, recent: 8 });
      try {
        return await f.run(IDS, 0, cache, [...IDS.keys()], { attentionMs: 0, denseMs: 0 });
      } finally {
        cache.close();
        await f.release();
      }
    };
    const embedded = await run();
    const fed = await run(0);
    let m = 0;
    for (let i = 0; i < embedded.length; i++) m = Math.max(m, Math.abs(embedded[i]! - fed[i]!));
    expect(m).toBeLessThan(1e-5);
  });

  it('rejects an unknown weight type, naming the option', async () => {
    await expect(LlamaDecoder.load(model.dir, { weights: 'fp8' as never })).rejects.toThrow(
      new RangeError(`Expected one of 'float32', 'int8', 'int4' for options.weights but received 'fp8' of type string`),
    );
    await expect(LlamaDecoder.load(model.dir, { weights: 8 as never })).rejects.toThrow(TypeError);
  });
});
