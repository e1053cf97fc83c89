import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { Tokenizer } from '@huggingface/tokenizers' with { 'resolution-mode': 'import' };
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// @ts-expect-error plain ESM script without type declarations
import { makeTinyModel } from '../scripts/make-tiny-model.mjs';
import { type TinyLlama, type TinyLlamaConfig, referenceLogits } from './support/tiny-llama-reference';

type Config = TinyLlamaConfig & { bos_token_id: number; eos_token_id: number; pad_token_id: number };
type Generated = TinyLlama & { dir: string; config: Config };
type Feeds = Record<string, ort.Tensor>;

const TOL = 1e-4;
let root: string;
let base: Generated;
let session: ort.InferenceSession;
const sessions: ort.InferenceSession[] = [];

async function open(model: Generated): Promise<ort.InferenceSession> {
  const s = await ort.InferenceSession.create(join(model.dir, 'model.onnx'));
  sessions.push(s);
  return s;
}

const i64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0]!.length]);

function emptyPast(c: Config, batch: number): Feeds {
  const feeds: Feeds = {};
  for (let l = 0; l < c.num_hidden_layers; l++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [batch, c.num_key_value_heads, 0, c.head_dim]);
    }
  }
  return feeds;
}

/** present.* outputs renamed into the next call's past_key_values.* inputs. */
function pastFrom(out: ort.InferenceSession.OnnxValueMapType): Feeds {
  const feeds: Feeds = {};
  for (const [name, t] of Object.entries(out)) if (name.startsWith('present.')) feeds[name.replace('present.', 'past_key_values.')] = t as ort.Tensor;
  return feeds;
}

async function run(s: ort.InferenceSession, feeds: Feeds) {
  return s.run(Object.fromEntries(Object.entries(feeds).filter(([k]) => s.inputNames.includes(k))));
}

/** Row `b`, position `t` of a [B, S, V] logits tensor. */
function logitsAt(t: ort.Tensor, b: number, pos: number): Float32Array {
  const [, S, V] = t.dims as number[];
  const data = t.data as Float32Array;
  return data.subarray((b * S! + pos) * V!, (b * S! + pos + 1) * V!);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
// Spread over the whole vocabulary, specials included.
const IDS = range(0, 20).map((i) => (i * 97 + 11) % 357);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'capibara-tiny-'));
  base = await makeTinyModel(join(root, 'base'));
  session = await open(base);
});

afterAll(async () => {
  for (const s of sessions) await s.release();
  if (root) await rm(root, { recursive: true, force: true });
});

describe('make-tiny-model: model.onnx', () => {
  it('writes the Optimum decoder layout and config', async () => {
    const c = base.config;
    expect(c).toMatchObject({
      architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 357, hidden_size: 64, intermediate_size: 128,
      num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, max_position_embeddings: 2048,
      rms_norm_eps: 1e-5, rope_theta: 10000, bos_token_id: 352, eos_token_id: 353, pad_token_id: 354, tie_word_embeddings: false,
    });
    expect(JSON.parse(await readFile(join(base.dir, 'config.json'), 'utf8'))).toEqual(c);
    expect(JSON.parse(await readFile(join(base.dir, 'generation_config.json'), 'utf8'))).toEqual({ bos_token_id: 352, eos_token_id: 353, pad_token_id: 354, do_sample: false });
    const kv = ['past_key_values.0.key', 'past_key_values.0.value', 'past_key_values.1.key', 'past_key_values.1.value'];
    expect(session.inputNames).toEqual(['input_ids', 'attention_mask', 'position_ids', ...kv]);
    expect(session.outputNames).toEqual(['logits', ...kv.map((n) => n.replace('past_key_values', 'present'))]);
  });

  it('matches the float64 reference on a 20-token sequence', async () => {
    const out = await run(session, { input_ids: i64([IDS]), attention_mask: i64([IDS.map(() => 1)]), position_ids: i64([range(0, 20)]), ...emptyPast(base.config, 1) });
    expect(out.logits!.dims).toEqual([1, 20, 357]);
    const ref = referenceLogits(base, IDS);
    for (let t = 0; t < 20; t++) expect(maxAbsDiff(logitsAt(out.logits!, 0, t), ref[t]!), `position ${t}`).toBeLessThan(TOL);
  });

  it('gives the same logits in two steps through past_key_values', async () => {
    const ones = (n: number) => [range(0, n).map(() => 1)];
    const full = await run(session, { input_ids: i64([IDS]), attention_mask: i64(ones(20)), position_ids: i64([range(0, 20)]), ...emptyPast(base.config, 1) });
    const first = await run(session, { input_ids: i64([IDS.slice(0, 12)]), attention_mask: i64(ones(12)), position_ids: i64([range(0, 12)]), ...emptyPast(base.config, 1) });
    expect(first['present.0.key']!.dims).toEqual([1, 2, 12, 16]);
    const second = await run(session, { input_ids: i64([IDS.slice(12)]), attention_mask: i64(ones(20)), position_ids: i64([range(12, 8)]), ...pastFrom(first) });
    expect(second.logits!.dims).toEqual([1, 8, 357]);
    for (const name of ['present.0.key', 'present.0.value', 'present.1.key', 'present.1.value']) {
      expect(second[name]!.dims).toEqual([1, 2, 20, 16]);
      expect(maxAbsDiff(second[name]!.data as Float32Array, full[name]!.data as Float32Array), name).toBeLessThan(TOL);
    }
    for (let t = 0; t < 8; t++) expect(maxAbsDiff(logitsAt(second.logits!, 0, t), logitsAt(full.logits!, 0, 12 + t))).toBeLessThan(TOL);
  });

  it('ignores left padding, in prefill and in a decode step', async () => {
    const pad = base.config.pad_token_id;
    const short = IDS.slice(3, 17); // 14 tokens behind 6 pads
    const next = [42, 7];
    const out1 = await run(session, {
      input_ids: i64([IDS, [...Array(6).fill(pad), ...short]]),
      attention_mask: i64([IDS.map(() => 1), [...Array(6).fill(0), ...short.map(() => 1)]]),
      // transformers' convention: cumsum(mask) - 1, pads at 1.
      position_ids: i64([range(0, 20), [...Array(6).fill(1), ...range(0, 14)]]),
      ...emptyPast(base.config, 2),
    });
    expect((out1.logits!.data as Float32Array).every(Number.isFinite)).toBe(true);
    const out2 = await run(session, {
      input_ids: i64([[next[0]!], [next[1]!]]),
      attention_mask: i64([range(0, 21).map(() => 1), [...Array(6).fill(0), ...range(0, 15).map(() => 1)]]),
      position_ids: i64([[20], [14]]),
      ...pastFrom(out1),
    });
    const refLong = referenceLogits(base, [...IDS, next[0]!]);
    const refShort = referenceLogits(base, [...short, next[1]!]);
    for (let t = 0; t < 20; t++) expect(maxAbsDiff(logitsAt(out1.logits!, 0, t), refLong[t]!)).toBeLessThan(TOL);
    for (let t = 0; t < 14; t++) expect(maxAbsDiff(logitsAt(out1.logits!, 1, 6 + t), refShort[t]!)).toBeLessThan(TOL);
    expect(maxAbsDiff(logitsAt(out2.logits!, 0, 0), refLong[20]!)).toBeLessThan(TOL);
    expect(maxAbsDiff(logitsAt(out2.logits!, 1, 0), refShort[14]!)).toBeLessThan(TOL);
  });

  it('without position_ids derives positions from the past length', async () => {
    const model = await makeTinyModel(join(root, 'no-pos'), { positionIds: false });
    const s = await open(model);
    expect(s.inputNames).not.toContain('position_ids');
    const ref = referenceLogits(base, IDS);
    const first = await run(s, { input_ids: i64([IDS.slice(0, 12)]), attention_mask: i64([range(0, 12).map(() => 1)]), ...emptyPast(model.config, 1) });
    const second = await run(s, { input_ids: i64([IDS.slice(12)]), attention_mask: i64([IDS.map(() => 1)]), ...pastFrom(first) });
    for (let t = 0; t < 12; t++) expect(maxAbsDiff(logitsAt(first.logits!, 0, t), ref[t]!)).toBeLessThan(TOL);
    for (let t = 0; t < 8; t++) expect(maxAbsDiff(logitsAt(second.logits!, 0, t), ref[12 + t]!)).toBeLessThan(TOL);
  });

  it('matches the reference with other shapes (no GQA, one layer, 4:1 GQA)', async () => {
    for (const [i, options] of [
      { layers: 1, hidden: 32, heads: 4, kvHeads: 4, intermediate: 48, seed: 7 },
      { layers: 3, hidden: 64, heads: 8, kvHeads: 2, intermediate: 96, seed: 8 },
    ].entries()) {
      const model: Generated = await makeTinyModel(join(root, `shape-${i}`), options);
      const s = await open(model);
      const ids = IDS.slice(0, 9);
      const out = await run(s, { input_ids: i64([ids]), attention_mask: i64([ids.map(() => 1)]), position_ids: i64([range(0, 9)]), ...emptyPast(model.config, 1) });
      const ref = referenceLogits(model, ids);
      for (let t = 0; t < 9; t++) expect(maxAbsDiff(logitsAt(out.logits!, 0, t), ref[t]!)).toBeLessThan(TOL);
    }
  });

  it('is byte-identical for one seed and differs for another', async () => {
    const again = await makeTinyModel(join(root, 'again'));
    const other = await makeTinyModel(join(root, 'other'), { seed: 2 });
    const bytes = (m: Generated, f: string) => readFile(join(m.dir, f));
    for (const f of ['model.onnx', 'tokenizer.json', 'tokenizer_config.json', 'config.json', 'generation_config.json']) {
      expect((await bytes(again, f)).equals(await bytes(base, f)), f).toBe(true);
    }
    expect((await bytes(other, 'model.onnx')).equals(await bytes(base, 'model.onnx'))).toBe(false);
    expect((await bytes(other, 'tokenizer.json')).equals(await bytes(base, 'tokenizer.json'))).toBe(true);
  });

  it('rejects bad options with messages naming them', async () => {
    const dir = join(root, 'bad');
    await expect(makeTinyModel(dir, { heads: 3 })).rejects.toThrow('Expected hidden to be a multiple of 2 * heads (6) but received 64');
    await expect(makeTinyModel(dir, { kvHeads: 3 })).rejects.toThrow('Expected kvHeads to divide heads (4) but received 3');
    await expect(makeTinyModel(dir, { layers: 0 })).rejects.toThrow('Expected positive integer for layers but received 0');
  });
});

describe('make-tiny-model: tokenizer', () => {
  let tok: Tokenizer;
  beforeAll(async () => {
    // ESM-only package; this test file is typed as CommonJS like the rest of the project.
    const { Tokenizer } = await import('@huggingface/tokenizers');
    const read = async (f: string) => JSON.parse(await readFile(join(base.dir, f), 'utf8'));
    tok = new Tokenizer(await read('tokenizer.json'), await read('tokenizer_config.json'));
  });

  it('round-trips arbitrary UTF-8 text', () => {
    const texts = [
      'The capybara thinks before it answers the question.',
      'Emoji 🦫🧠👩🏽‍💻, accents éèçñ, CJK 水豚, Arabic كابيبارا, tabs\tand\nnewlines  ,  spaces ',
      "it's 42 + 0.5 = 42.5 ; don't  ...  ?!",
      ' leading space, trailing space ',
    ];
    for (const text of texts) {
      const { ids } = tok.encode(text, { add_special_tokens: false });
      expect(ids.every((id: number) => Number.isInteger(id) && id >= 0 && id < 352), text).toBe(true);
      expect(tok.decode(ids)).toBe(text);
    }
    // Merges were learnt: common words are single tokens.
    expect(tok.encode(' the answer', { add_special_tokens: false }).ids.length).toBe(2);
  });

  it('prepends <s> and keeps <think> / </think> as single tokens', () => {
    expect(tok.encode('Hi').ids[0]).toBe(352);
    const { ids } = tok.encode('<think>hmm</think>yes', { add_special_tokens: false });
    expect(ids[0]).toBe(355);
    expect(ids.filter((id: number) => id === 356)).toHaveLength(1);
    expect(tok.encode('</think>', { add_special_tokens: false }).ids).toEqual([356]);
    expect(tok.decode(ids)).toBe('<think>hmm</think>yes');
    expect(tok.decode([352, ...ids, 353], { skip_special_tokens: true })).toBe('<think>hmm</think>yes');
    expect([tok.token_to_id('<s>'), tok.token_to_id('</s>'), tok.token_to_id('<pad>')]).toEqual([352, 353, 354]);
  });
});
