// OnnxCausalLM's device-resident KV cache (IO binding of the present.* outputs), checked where
// it can be without a GPU or ORT's CUDA provider: the CPU provider gets no second session, and a
// session created with the binding on the CPU returns ordinary CPU tensors (so the model's
// behaviour there is unchanged). Whether ORT's CUDA provider keeps the outputs on the device, and
// what that saves per step, needs a machine with that provider.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTinyModel } from '../scripts/make-tiny-model.mjs';
import { deviceKvSession, onDevice } from '../src/llm/onnx/device-kv';
import type { PastSlot } from '../src/llm/onnx/kv-cache';
import { OnnxCausalLM } from '../src/llm/onnx/onnx-causal-lm';
import { loadOrt } from '../src/onnx/session';

const ort = loadOrt();
let root: string;
let model: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'capibara-device-kv-'));
  await makeTinyModel(join(root, 'tiny'));
  model = existsSync(join(root, 'tiny', 'model.onnx')) ? join(root, 'tiny', 'model.onnx') : join(root, 'tiny', 'onnx', 'model.onnx');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('device-resident KV cache (IO binding)', () => {
  it('creates no second session for the CPU provider', async () => {
    expect(await deviceKvSession(ort, model, ['cpu'], 1, [])).toBeNull();
  });

  it('a CPU session with the present outputs bound to gpu-buffer returns CPU tensors, so nothing changes there', async () => {
    const plain = await ort.InferenceSession.create(model);
    const slots: PastSlot[] = plain.outputNames.filter((n) => n.startsWith('present.')).map((output) => ({ output, input: output.replace('present.', 'past_key_values.'), type: 'float32', heads: 0, headDim: 0 }));
    await plain.release();
    const bound = await ort.InferenceSession.create(model, { preferredOutputLocation: Object.fromEntries(slots.map((s) => [s.output, 'gpu-buffer' as const])) });
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.of(1n, 2n, 3n), [1, 3]),
      attention_mask: new ort.Tensor('int64', BigInt64Array.of(1n, 1n, 1n), [1, 3]),
    };
    for (const m of bound.inputMetadata) {
      if (!m.name.startsWith('past_key_values.') || !m.isTensor) continue;
      const [, heads, , dim] = m.shape as number[];
      feeds[m.name] = new ort.Tensor('float32', new Float32Array(0), [1, heads!, 0, dim!]);
    }
    if (bound.inputNames.includes('position_ids')) feeds['position_ids'] = new ort.Tensor('int64', BigInt64Array.of(0n, 1n, 2n), [1, 3]);
    const out = await bound.run(feeds);
    for (const s of slots) expect(onDevice(out[s.output]!)).toBe(false);
    await bound.release();
  });

  it('OnnxCausalLM on the CPU provider generates as before', async () => {
    const lm = await OnnxCausalLM.load(join(root, 'tiny'), { executionProviders: ['cpu'] });
    const a = await lm.generate([1, 2, 3], { maxTokens: 5, temperature: 0 });
    const b = await lm.generate([1, 2, 3, 9], { maxTokens: 5, temperature: 0 });
    expect(a.tokens).toBe(5);
    expect(b.cachedTokens).toBeGreaterThan(0);
    await lm.close();
  });
});
