// The float16 GroupQueryAttention graph that ONNX Runtime's CUDA provider needs (its GQA kernel
// takes float16 / bfloat16 only), checked where it can be without a GPU: the graph is valid, ORT's
// CPU provider runs it, and it equals the float32 graph within float16 rounding. Whether the CUDA
// provider runs it needs a machine with onnxruntime-node's CUDA provider installed.
import { describe, expect, it } from 'vitest';
import { attentionModel, type GraphSignature } from '../src/attention/onnx-graphs';
import { loadOrt } from '../src/onnx/session';
import { normal, rng } from './support/random';

const ort = loadOrt();

async function run(sig: GraphSignature, past: number, fresh: number, seed: number): Promise<Float32Array> {
  const r = rng(seed);
  const kvWidth = sig.kvHeadsIn * sig.headDim;
  const qWidth = (sig.gather?.length ?? sig.kvHeadsIn) * sig.group * sig.headDim;
  const session = await ort.InferenceSession.create(attentionModel(sig), { executionProviders: ['cpu'] });
  try {
    const out = await session.run({
      query: new ort.Tensor('float32', normal(r, fresh * qWidth), [1, fresh, qWidth]),
      key: new ort.Tensor('float32', normal(r, fresh * kvWidth), [1, fresh, kvWidth]),
      value: new ort.Tensor('float32', normal(r, fresh * kvWidth), [1, fresh, kvWidth]),
      past_key: new ort.Tensor('float32', normal(r, past * kvWidth), [1, past, kvWidth]),
      past_value: new ort.Tensor('float32', normal(r, past * kvWidth), [1, past, kvWidth]),
      seqlens_k: new ort.Tensor('int32', Int32Array.of(past + fresh - 1), [1]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(past + fresh), []),
    });
    return out['output']!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe("GroupQueryAttention graphs with precision 'float16'", () => {
  it.each([
    { name: '32 / 8 heads × 128, decode over 300 positions', sig: { kvHeadsIn: 8, gather: null, headDim: 128, group: 4 }, past: 300, fresh: 1 },
    { name: '8 / 2 heads × 64, a 17-token chunk after 40', sig: { kvHeadsIn: 2, gather: null, headDim: 64, group: 4 }, past: 40, fresh: 17 },
    { name: 'KV heads 1 and 3 of 4 gathered, group 2', sig: { kvHeadsIn: 4, gather: [1, 3], headDim: 32, group: 2 }, past: 25, fresh: 3 },
  ])('$name: runs on the CPU provider and equals the float32 graph within float16 rounding', async ({ sig, past, fresh }) => {
    const base: GraphSignature = { kind: 'gqa', scale: 1 / Math.sqrt(sig.headDim), bias: false, ...sig };
    const f32 = await run(base, past, fresh, 7);
    const f16 = await run({ ...base, precision: 'float16' }, past, fresh, 7);
    expect(f16.length).toBe(f32.length);
    let worst = 0;
    for (let i = 0; i < f32.length; i++) worst = Math.max(worst, Math.abs(f16[i]! - f32[i]!));
    // Inputs rounded to float16 (relative 2^-11) and float16 sums inside the operator.
    expect(worst).toBeLessThan(5e-3);
    expect(worst).toBeGreaterThan(0); // it did compute in float16
  });

  it('casts around the operator, so its inputs and output stay float32', () => {
    const sig: GraphSignature = { kind: 'gqa', kvHeadsIn: 2, gather: null, headDim: 16, group: 2, scale: 0.25, bias: false, precision: 'float16' };
    const text = new TextDecoder('latin1').decode(attentionModel(sig));
    expect(text).toContain('duo_gqa_f16');
    expect(text).toContain('output_f16');
    expect(new TextDecoder('latin1').decode(attentionModel({ ...sig, precision: 'float32' }))).not.toContain('Cast');
  });
});
