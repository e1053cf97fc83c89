/**
 * LlamaDecoder.load: Hugging Face folders of every supported shape (fp32/fp16/bf16, sharded,
 * Qwen2 biases, Llama attention_bias, tied lm_head, Llama 3 and linear rope_scaling, Mistral)
 * give the logits of a float64 reference over the stored weights; bad folders and patterns fail
 * naming the file, the tensor and the expected shape.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadPattern, LlamaDecoder } from '../src/index';
import { encodeSafetensors, makeTinyHfModel } from '../scripts/make-tiny-model.mjs';
import { llamaReference } from './support/llama-reference';

let root: string;
const IDS = [300, 17, 44, 101, 256, 290, 5, 77, 350, 12, 64, 200];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'capibara-llama-load-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

let count = 0;
async function hf(options: Record<string, unknown> = {}) {
  return makeTinyHfModel(join(root, `m${count++}`), options) as Promise<{ dir: string; config: Record<string, unknown>; weights: Record<string, Float32Array> }>;
}

function maxAbsDiff(a: Float32Array, rows: Float64Array[], V: number): number {
  let m = 0;
  rows.forEach((r, t) => {
    for (let i = 0; i < V; i++) m = Math.max(m, Math.abs(a[t * V + i]! - r[i]!));
  });
  return m;
}

async function checkAgainstReference(options: Record<string, unknown>, chunk?: number) {
  const m = await hf(options);
  const d = await LlamaDecoder.load(m.dir, { threads: 1, ...(chunk ? { prefillChunk: chunk } : {}) });
  try {
    const got = await d.logits(IDS, { lastPositions: IDS.length });
    const want = llamaReference(m, IDS).logits;
    expect(maxAbsDiff(got, want, d.info.vocabSize)).toBeLessThan(1e-4);
    return d.config;
  } finally {
    await d.close();
  }
}

describe('LlamaDecoder.load: shapes and dtypes', () => {
  it('reads the tiny Llama folder (fp32) and matches the float64 reference at every position', async () => {
    const config = await checkAgainstReference({}, 5);
    expect(config).toMatchObject({ family: 'llama', layers: 2, hidden: 64, queryHeads: 4, kvHeads: 2, headDim: 16, qkvBias: false, tiedEmbeddings: false });
    expect(config.rope).toEqual({ theta: 10000, scaling: { type: 'none' } });
  });

  it('widens float16 and bfloat16 weights, and reads shards through the index', async () => {
    await checkAgainstReference({ dtype: 'float16' });
    await checkAgainstReference({ dtype: 'bfloat16', shards: 3 });
  });

  it('runs Qwen2 (q/k/v biases, tied embeddings), Llama with attention_bias, Mistral', async () => {
    const qwen = await checkAgainstReference({ architecture: 'qwen2', tieWordEmbeddings: true, ropeTheta: 1e6 });
    expect(qwen).toMatchObject({ family: 'qwen2', qkvBias: true, oBias: false, tiedEmbeddings: true, rope: { theta: 1e6 } });
    expect(await checkAgainstReference({ attentionBias: true })).toMatchObject({ qkvBias: true, oBias: true });
    expect(await checkAgainstReference({ architecture: 'mistral', kvHeads: 1 })).toMatchObject({ family: 'mistral', kvHeads: 1 });
  });

  it('applies Llama 3 and linear rope_scaling', async () => {
    const llama3 = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
    const c = await checkAgainstReference({ ropeScaling: llama3, ropeTheta: 500000 });
    expect(c.rope.scaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 });
    await checkAgainstReference({ ropeScaling: { type: 'linear', factor: 4 } });
  });
});

describe('LlamaDecoder.load: errors', () => {
  let base: Awaited<ReturnType<typeof hf>>;
  beforeAll(async () => {
    base = await hf();
  });

  async function variant(edit: (dir: string) => void | Promise<void>) {
    const m = await hf();
    await edit(m.dir);
    return m.dir;
  }
  const editConfig = (dir: string, edit: (c: Record<string, unknown>) => void) => {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    edit(c);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  };
  const writeWeights = (dir: string, weights: Record<string, Float32Array>, shapes: Record<string, number[]>, dtype = 'F32') =>
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(Object.entries(weights).map(([n, data]) => [n, { dtype, shape: shapes[n]!, data }])));
  const shapesOf = (c: Record<string, number>) => {
    const s: Record<string, number[]> = {};
    for (const name of Object.keys(base.weights)) {
      const n = base.weights[name]!.length;
      if (name.endsWith('layernorm.weight') || name === 'model.norm.weight') s[name] = [c['hidden_size']!];
      else if (name.includes('down_proj') || name.includes('o_proj')) s[name] = [c['hidden_size']!, n / c['hidden_size']!];
      else s[name] = [n / c['hidden_size']!, c['hidden_size']!];
    }
    return s;
  };

  it('names config.json and the key for an unsupported architecture or setting', async () => {
    const gpt2 = await variant((d) => editConfig(d, (c) => (c['architectures'] = ['GPT2LMHeadModel'])));
    await expect(LlamaDecoder.load(gpt2)).rejects.toThrow(
      new RangeError(`${gpt2}/config.json: architecture "GPT2LMHeadModel" is not supported; expected LlamaForCausalLM, Qwen2ForCausalLM or MistralForCausalLM (architectures[0] or model_type)`),
    );
    const sliding = await variant((d) => editConfig(d, (c) => Object.assign(c, { architectures: ['MistralForCausalLM'], sliding_window: 16 })));
    await expect(LlamaDecoder.load(sliding)).rejects.toThrow(
      new RangeError(`${sliding}/config.json: expected null (a sliding window is not supported; or at least max_position_embeddings, 2048) for sliding_window but received 16`),
    );
    const yarn = await variant((d) => editConfig(d, (c) => (c['rope_scaling'] = { rope_type: 'yarn', factor: 4 })));
    await expect(LlamaDecoder.load(yarn)).rejects.toThrow(
      new RangeError(`${yarn}/config.json: expected 'default', 'linear' or 'llama3' (dynamic, yarn and longrope are not supported) for rope_scaling.rope_type but received "yarn"`),
    );
    const gelu = await variant((d) => editConfig(d, (c) => (c['hidden_act'] = 'gelu')));
    await expect(LlamaDecoder.load(gelu)).rejects.toThrow(new RangeError(`${gelu}/config.json: expected 'silu' for hidden_act but received "gelu"`));
    const noLayers = await variant((d) => editConfig(d, (c) => delete c['num_hidden_layers']));
    await expect(LlamaDecoder.load(noLayers)).rejects.toThrow(new RangeError(`${noLayers}/config.json: expected a positive integer for num_hidden_layers but received undefined`));
  });

  it('names the file, the tensor and the expected shape for missing or mismatched tensors', async () => {
    const shapes = shapesOf(base.config as Record<string, number>);
    const missing = await variant((d) => {
      const w = { ...base.weights };
      delete w['model.layers.1.mlp.up_proj.weight'];
      writeWeights(d, w, shapes);
    });
    await expect(LlamaDecoder.load(missing)).rejects.toThrow(`${missing}/model.safetensors: missing tensor 'model.layers.1.mlp.up_proj.weight' (expected shape [128, 64])`);
    const narrower = await variant((d) => editConfig(d, (c) => (c['intermediate_size'] = 96)));
    await expect(LlamaDecoder.load(narrower)).rejects.toThrow(
      `${narrower}/model.safetensors: tensor 'model.layers.0.mlp.gate_proj.weight' has shape [128, 64], expected [96, 64]`,
    );
    const int8 = await variant((d) => {
      const w: Record<string, ArrayBufferView> = { ...base.weights };
      const s = { ...shapes };
      w['model.norm.weight'] = new Int8Array(64);
      writeFileSync(join(d, 'model.safetensors'), encodeSafetensors(Object.entries(w).map(([n, data]) => [n, { dtype: n === 'model.norm.weight' ? 'I8' : 'F32', shape: s[n]!, data }])));
    });
    await expect(LlamaDecoder.load(int8)).rejects.toThrow(`${int8}/model.safetensors: tensor 'model.norm.weight' is I8; F32, F16 and BF16 tensors are supported`);
    const none = await variant((d) => rmSync(join(d, 'model.safetensors')));
    await expect(LlamaDecoder.load(none)).rejects.toThrow(`${none}: no weights: expected model.safetensors or model.safetensors.index.json (a sharded model)`);
    const badShard = await variant(async (d) => {
      writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'model.norm.weight': 'model.safetensors', 'lm_head.weight': 'other.safetensors' } }));
    });
    await expect(LlamaDecoder.load(badShard)).rejects.toThrow(`${badShard}/model.safetensors.index.json: cannot open ${badShard}/other.safetensors: `);
  });

  it('refuses a head pattern whose shape is not the model\'s, naming both', async () => {
    const pattern = HeadPattern.allRetrieval(3, 2);
    await expect(LlamaDecoder.load(base.dir, { headPattern: pattern })).rejects.toThrow(
      new RangeError(`LlamaDecoder.load: options.headPattern has 3 layers × 2 KV heads but ${base.dir}/config.json has 2 × 2 (num_hidden_layers × num_key_value_heads)`),
    );
    const files = join(root, 'pattern-3x2');
    await HeadPattern.fromRatio([1, 2, 3, 4, 5, 6], { layers: 3, kvHeads: 2, retrievalRatio: 0.5, sink: 4, recent: 8 }).save(files);
    await expect(LlamaDecoder.load(base.dir, { headPattern: files })).rejects.toThrow(
      new RangeError(`LlamaDecoder.load: options.headPattern ${files}: Expected 2 layers (num_hidden_layers in config.json) but full_attention_heads.tsv has 3`),
    );
    await expect(LlamaDecoder.load(base.dir, { headPattern: 'x' as unknown as HeadPattern, threads: 0 })).rejects.toThrow(
      new RangeError('Expected integer in [1, 256] for options.threads but received 0 of type number'),
    );
    await expect(LlamaDecoder.load(base.dir, { headPattern: 3 as never })).rejects.toThrow(TypeError);
    await expect(LlamaDecoder.load(base.dir, { gpu: true } as never)).rejects.toThrow(TypeError);
    await expect(LlamaDecoder.load(join(root, 'nope'))).rejects.toThrow(`LlamaDecoder.load: model folder ${join(root, 'nope')} does not exist`);
  });

  it('loads a pattern from its files, window included', async () => {
    const files = join(root, 'pattern-2x2');
    await HeadPattern.fromRatio([4, 3, 2, 1], { layers: 2, kvHeads: 2, retrievalRatio: 0.5, sink: 4, recent: 8 }).save(files);
    const d = await LlamaDecoder.load(base.dir, { headPattern: files, threads: 1 });
    expect([d.sink, d.recent, d.headPattern.retrievalHeads(0), d.headPattern.retrievalHeads(1)]).toEqual([4, 8, [0, 1], []]);
    await d.close();
  });
});
