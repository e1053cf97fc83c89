import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OnnxCausalLM } from '../src/index';
import { makeTinyModel } from '../scripts/make-tiny-model.mjs';
import { buildModel } from '../scripts/onnx-graph.mjs';
import { referenceLogits } from './support/tiny-llama-reference';
import { Detokenizer } from '../src/llm/onnx/detokenizer';
import { Sampler } from '../src/llm/onnx/sampler';

let root: string;
let tiny: { dir: string; config: Record<string, unknown>; weights: Record<string, Float32Array> };
let model: OnnxCausalLM;
const PROMPT = 'The capybara is the largest rodent';

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'capibara-onnx-lm-'));
  tiny = await makeTinyModel(join(root, 'tiny'));
  model = await OnnxCausalLM.load(tiny.dir, { threads: 1 });
});

afterAll(async () => {
  await model?.close();
  rmSync(root, { recursive: true, force: true });
});

/** A copy of the tiny model with some files changed. */
function variant(name: string, edit: (dir: string) => void): string {
  const dir = join(root, name);
  cpSync(tiny.dir, dir, { recursive: true });
  edit(dir);
  return dir;
}

function editJSON(dir: string, file: string, edit: (json: Record<string, unknown>) => void) {
  const path = join(dir, file);
  const json = JSON.parse(readFileSync(path, 'utf8'));
  edit(json);
  writeFileSync(path, JSON.stringify(json));
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('OnnxCausalLM.load', () => {
  it('reads the model shape from the graph and config.json', () => {
    expect(model.info).toEqual({ vocabSize: tiny.config['vocab_size'], layers: 2, contextLength: 2048, eosTokenIds: [tiny.config['eos_token_id']], positionIds: true });
    expect(model.executionProviders).toEqual(['cpu']);
  });

  it('names the missing file, the unreadable JSON, the bad option', async () => {
    await expect(OnnxCausalLM.load(join(root, 'nope'))).rejects.toThrow(`OnnxCausalLM.load: model folder ${join(root, 'nope')} does not exist`);
    const noModel = variant('no-model', (d) => rmSync(join(d, 'model.onnx')));
    await expect(OnnxCausalLM.load(noModel)).rejects.toThrow(`OnnxCausalLM.load: no ONNX model in ${noModel}: looked for model.onnx, onnx/model.onnx`);
    const noTok = variant('no-tokenizer', (d) => rmSync(join(d, 'tokenizer.json')));
    await expect(OnnxCausalLM.load(noTok)).rejects.toThrow(
      `OnnxCausalLM.load: ${join(noTok, 'tokenizer.json')} not found; the model folder needs model.onnx, config.json and tokenizer.json`,
    );
    const badConfig = variant('bad-config', (d) => writeFileSync(join(d, 'config.json'), '{ "vocab_size": '));
    await expect(OnnxCausalLM.load(badConfig)).rejects.toThrow(`OnnxCausalLM.load: ${join(badConfig, 'config.json')} is not valid JSON: `);
    await expect(OnnxCausalLM.load(tiny.dir, { modelFile: 'onnx/model_q4.onnx' })).rejects.toThrow(
      `OnnxCausalLM.load: ${join(tiny.dir, 'onnx/model_q4.onnx')} not found (options.modelFile)`,
    );
    await expect(OnnxCausalLM.load(tiny.dir, { threads: 0 })).rejects.toThrow(new RangeError('Expected integer in [1, 256] for options.threads but received 0 of type number'));
    await expect(OnnxCausalLM.load(tiny.dir, { gpu: true } as never)).rejects.toThrow(TypeError);
    await expect(OnnxCausalLM.load('' as never)).rejects.toThrow(new RangeError('Expected non-empty string for dir but received \'\' of type string'));
  });

  it('finds onnx/model.onnx, the onnx-community layout', async () => {
    const dir = variant('subfolder', (d) => {
      cpSync(join(d, 'model.onnx'), join(d, 'onnx', 'model.onnx'), { recursive: true });
      rmSync(join(d, 'model.onnx'));
    });
    const m = await OnnxCausalLM.load(dir, { threads: 1 });
    expect(await m.logits(model.encode('hi'))).toEqual(await model.logits(model.encode('hi'), { reuseCache: false }));
    await m.close();
  });

  it('rejects graphs that are not decoders with a KV cache', async () => {
    const write = (name: string, g: object) => variant(name, (d) => writeFileSync(join(d, 'model.onnx'), buildModel(g)));
    const f = (name: string, type = 'float32') => ({ name, type, shape: [1, 'n'] });
    const wrong = write('wrong-names', { inputs: [f('x')], outputs: [f('y')], nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }] });
    await expect(OnnxCausalLM.load(wrong)).rejects.toThrow(
      `OnnxCausalLM.load: not a causal language model: expected an input 'input_ids' and an output 'logits' in ${join(wrong, 'model.onnx')} (inputs: x; outputs: y)`,
    );
    const noPast = write('no-past', {
      inputs: [f('input_ids', 'int64'), f('attention_mask', 'int64')],
      outputs: [f('logits', 'int64')],
      nodes: [{ op: 'Add', inputs: ['input_ids', 'attention_mask'], outputs: ['logits'] }],
    });
    await expect(OnnxCausalLM.load(noPast)).rejects.toThrow(
      /^OnnxCausalLM\.load: the model has no past_key_values inputs, so no KV cache: export it as a decoder with past \(Optimum task 'text-generation-with-past'\)/,
    );
  });

  it('falls back to the CPU with a warning when an execution provider is missing', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const m = await OnnxCausalLM.load(tiny.dir, { executionProviders: ['cuda'], threads: 1 });
      expect(m.executionProviders).toEqual(['cpu']);
      await m.close();
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.name)).toContain('OnnxCausalLMWarning');
      expect(warnings.find((w) => w.name === 'OnnxCausalLMWarning')!.message).toMatch(/^execution providers \[cuda\] are not available \(.*\); running .*model\.onnx on the CPU$/);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('OnnxCausalLM logits', () => {
  it('match a float64 reference of the model within 1e-4', async () => {
    const ids = model.encode('The capybara sleeps in the water to keep cool.');
    const ref = referenceLogits(tiny, ids);
    for (let n = 1; n <= ids.length; n++) {
      expect(maxAbsDiff(await model.logits(ids.slice(0, n)), ref[n - 1]!)).toBeLessThan(1e-4);
    }
  });

  it('through the KV cache equal a full recompute within 1e-4, one token at a time', async () => {
    const ids = model.encode('Before we answer a question, we should think about what the question is asking.');
    expect(ids.length).toBeGreaterThan(20);
    model.clearCache();
    for (let n = 1; n <= ids.length; n++) {
      const cached = await model.logits(ids.slice(0, n));
      const full = await model.logits(ids.slice(0, n), { reuseCache: false });
      expect(maxAbsDiff(cached, full)).toBeLessThan(1e-4);
      // Leave the cache at n tokens so the next iteration runs one new token.
    }
  });

  it('of a prompt longer than one prefill chunk (512 tokens) match the reference', async () => {
    const ids = Array.from({ length: 700 }, (_, i) => (i * 31 + 7) % model.info.vocabSize);
    const ref = referenceLogits(tiny, ids);
    expect(maxAbsDiff(await model.logits(ids, { reuseCache: false }), ref[699]!)).toBeLessThan(1e-4);
    expect(maxAbsDiff(await model.logits(ids.slice(0, 600)), ref[599]!)).toBeLessThan(1e-4);
  });

  it('after a cache truncated to a shared prefix equal a full recompute', async () => {
    const a = model.encode('The capybara is calm and it seems to get on');
    const b = [...a.slice(0, 6), ...model.encode(' with every other animal')];
    await model.logits(a);
    const viaPrefix = await model.logits(b);
    expect(maxAbsDiff(viaPrefix, await model.logits(b, { reuseCache: false }))).toBeLessThan(1e-4);
  });

  it('reject bad ids', async () => {
    const V = model.info.vocabSize;
    await expect(model.logits([])).rejects.toThrow(new RangeError('Expected non-empty array of token ids for tokenIds but received Array of length 0'));
    await expect(model.logits([1, V])).rejects.toThrow(new RangeError(`Expected integer in [0, ${V - 1}] for prompt[1] but received ${V} of type number`));
    await expect(model.logits([1], { cache: false } as never)).rejects.toThrow(TypeError);
  });
});

describe('OnnxCausalLM.generate', () => {
  it('greedy output is deterministic and follows the reference argmax', async () => {
    const a = await model.generate(PROMPT, { maxTokens: 12, temperature: 0 });
    model.clearCache();
    const b = await model.generate(PROMPT, { maxTokens: 12, temperature: 0 });
    expect(b.tokenIds).toEqual(a.tokenIds);
    expect(b.text).toBe(a.text);
    expect(a).toMatchObject({ tokens: 12, finishReason: 'length' });
    // Greedy = the reference's argmax at every step (the tiny model's logits have no near ties there).
    const prompt = [tiny.config['bos_token_id'] as number, ...model.encode(PROMPT)];
    const seq = [...prompt];
    for (let i = 0; i < 4; i++) {
      const row = referenceLogits(tiny, seq).at(-1)!;
      seq.push(row.indexOf(Math.max(...row)));
    }
    expect(a.tokenIds.slice(0, 4)).toEqual(seq.slice(prompt.length));
  });

  it('seeded sampling is reproducible; other seeds differ; a tiny topP is greedy', async () => {
    const opts = { maxTokens: 24, temperature: 1, topP: 0.95 };
    const a = await model.generate(PROMPT, { ...opts, seed: 7 });
    const b = await model.generate(PROMPT, { ...opts, seed: 7 });
    expect(b.tokenIds).toEqual(a.tokenIds);
    const others = await Promise.all([8, 9, 10].map((seed) => model.generate(PROMPT, { ...opts, seed })));
    expect(others.some((o) => o.tokenIds.join() !== a.tokenIds.join())).toBe(true);
    const greedy = await model.generate(PROMPT, { maxTokens: 24, temperature: 0 });
    expect((await model.generate(PROMPT, { maxTokens: 24, temperature: 1, topP: 1e-9, seed: 3 })).tokenIds).toEqual(greedy.tokenIds);
  });

  it('cuts exactly at a stop string, streaming the same text without it', async () => {
    const full = await model.generate(PROMPT, { maxTokens: 40, temperature: 0 });
    const printable = [...full.text.matchAll(/[ -~]{3}/g)].map((m) => m[0]).filter((s) => full.text.indexOf(s) > 0);
    expect(printable.length).toBeGreaterThan(0);
    for (const stop of printable.slice(0, 5)) {
      const pieces: string[] = [];
      const r = await model.generate(PROMPT, { maxTokens: 40, temperature: 0, stop: ['NEVER', stop], onToken: (p) => pieces.push(p) });
      expect(r.finishReason).toBe('stop');
      expect(r.stopSequence).toBe(stop);
      expect(r.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
      expect(pieces.join('')).toBe(r.text);
      // The tokens that spelled the stop are generated and counted; no token after it.
      expect(r.tokenIds).toEqual(full.tokenIds.slice(0, r.tokens));
      expect(model.decode(r.tokenIds.slice(0, -1))).not.toContain(stop);
      expect(model.decode(r.tokenIds)).toContain(stop);
    }
  });

  it('streams pieces that concatenate to the text, with ids for single-token pieces', async () => {
    const pieces: [string, number | undefined][] = [];
    const r = await model.generate(PROMPT, { maxTokens: 30, temperature: 0, onToken: (p, id) => pieces.push([p, id]) });
    expect(pieces.map(([p]) => p).join('')).toBe(r.text);
    for (const [p, id] of pieces) if (id !== undefined) expect(model.decode([id])).toBe(p);
    expect(r.tokens).toBe(r.tokenIds.length);
  });

  it('ends at the end-of-sequence id, counting it, leaving it out of the text', async () => {
    const greedy = await model.generate(PROMPT, { maxTokens: 10, temperature: 0 });
    const eos = greedy.tokenIds[5]!;
    const first = greedy.tokenIds.indexOf(eos);
    const dir = variant('eos', (d) => editJSON(d, 'generation_config.json', (j) => (j['eos_token_id'] = [9999, eos])));
    const m = await OnnxCausalLM.load(dir, { threads: 1 });
    const r = await m.generate(PROMPT, { maxTokens: 10, temperature: 0 });
    expect(m.info.eosTokenIds).toEqual([eos]);
    expect(r).toMatchObject({ finishReason: 'eos', tokens: first + 1, tokenIds: greedy.tokenIds.slice(0, first + 1) });
    expect(r.text).toBe(m.decode(greedy.tokenIds.slice(0, first)).replace(/<s>|<\/s>|<pad>/g, ''));
    await m.close();
  });

  it("stops at the context length with 'length', and rejects a longer prompt", async () => {
    const n = model.encode(PROMPT).length + 1; // + BOS
    const dir = variant('short-context', (d) => editJSON(d, 'config.json', (j) => (j['max_position_embeddings'] = n + 5)));
    const m = await OnnxCausalLM.load(dir, { threads: 1 });
    expect(await m.generate(PROMPT, { maxTokens: 100, temperature: 0 })).toMatchObject({ tokens: 5, finishReason: 'length' });
    await expect(m.generate(PROMPT.repeat(3), { maxTokens: 1 })).rejects.toThrow(RangeError);
    await m.close();
  });

  it('aborts within one token, keeping what was generated', async () => {
    const full = await model.generate(PROMPT, { maxTokens: 30, temperature: 0 });
    const controller = new AbortController();
    let seen = 0;
    const r = await model.generate(PROMPT, {
      maxTokens: 30,
      temperature: 0,
      signal: controller.signal,
      onToken: (_p, id) => {
        if (id !== undefined && ++seen === 3) controller.abort();
      },
    });
    expect(r.finishReason).toBe('abort');
    // The token whose text triggered the abort is the last one: no model run after the abort.
    expect(r.tokenIds).toEqual(full.tokenIds.slice(0, r.tokens));
    expect(model.decode(r.tokenIds.slice(-1))).toBe(r.text.slice(-model.decode(r.tokenIds.slice(-1)).length));
    expect(full.text.startsWith(r.text)).toBe(true);
    const pre = new AbortController();
    pre.abort();
    expect(await model.generate(PROMPT, { maxTokens: 5, signal: pre.signal })).toMatchObject({ text: '', tokens: 0, finishReason: 'abort' });
  });

  it('a continuation runs only its new tokens, and decodes as a fresh run does', async () => {
    const prompt = [tiny.config['bos_token_id'] as number, ...model.encode(PROMPT)];
    model.clearCache();
    const r1 = await model.generate(prompt, { maxTokens: 10, temperature: 0 });
    expect(r1.cachedTokens).toBe(0);
    expect(r1.promptTokenIds).toEqual(prompt);
    const next = [...prompt, ...r1.tokenIds, ...model.encode(' Then')];
    const r2 = await model.generate(next, { maxTokens: 10, temperature: 0 });
    // Everything but the last sampled token (never run) came from the cache.
    expect(r2.cachedTokens).toBe(prompt.length + r1.tokens - 1);
    expect(r2.promptTokens).toBe(next.length);
    model.clearCache();
    const fresh = await model.generate(next, { maxTokens: 10, temperature: 0 });
    expect(fresh.cachedTokens).toBe(0);
    expect(fresh.tokenIds).toEqual(r2.tokenIds);
    // The same prompt again: all but its last token is reused.
    expect((await model.generate(next, { maxTokens: 1 })).cachedTokens).toBe(next.length - 1);
    expect((await model.generate(PROMPT, { maxTokens: 1 })).promptTokenIds).toEqual(prompt); // text: BOS added
  });

  it('counts tokens exactly as the tokenizer does', async () => {
    const r = await model.generate(PROMPT, { maxTokens: 16, temperature: 0 });
    expect(r.tokens).toBe(16);
    expect(r.tokenIds).toHaveLength(16);
    expect(r.promptTokens).toBe(1 + model.countTokens(PROMPT));
    for (const text of ['', 'hello', '</think>', 'The capybara 🦫 est très calme.']) {
      expect(model.countTokens(text)).toBe(model.encode(text).length);
      expect(model.decode(model.encode(text))).toBe(text);
    }
    expect(model.countTokens('</think>')).toBe(1);
  });

  it('serves concurrent calls one at a time with the same results as sequential ones', async () => {
    const prompts = ['A capybara', 'The model reads', PROMPT];
    const seq = [];
    for (const p of prompts) seq.push((await model.generate(p, { maxTokens: 8, temperature: 0 })).tokenIds);
    const par = await Promise.all(prompts.map((p) => model.generate(p, { maxTokens: 8, temperature: 0 })));
    expect(par.map((r) => r.tokenIds)).toEqual(seq);
  });

  it('rejects bad options with the field named', async () => {
    await expect(model.generate(PROMPT, { maxTokens: -1 })).rejects.toThrow(new RangeError('Expected integer >= 0 for options.maxTokens but received -1 of type number'));
    await expect(model.generate(PROMPT, { maxTokens: 4, topP: 2 })).rejects.toThrow(new RangeError('Expected finite number in (0, 1] for options.topP but received 2 of type number'));
    await expect(model.generate(PROMPT, { maxTokens: 4, stop: [''] })).rejects.toThrow(RangeError);
    await expect(model.generate(42 as never, { maxTokens: 4 })).rejects.toThrow(new TypeError('Expected string or array of token ids for prompt but received 42 of type number'));
    await expect(model.generate('', { maxTokens: 4 })).resolves.toMatchObject({ promptTokens: 1 }); // BOS alone
    expect(await model.generate(PROMPT, { maxTokens: 0 })).toMatchObject({ text: '', tokens: 0, finishReason: 'length' });
  });

  it('keeps its context when the cache is cleared mid-generation', async () => {
    const want = await model.generate(PROMPT, { maxTokens: 16, temperature: 0 });
    let n = 0;
    const r = await model.generate(PROMPT, { maxTokens: 16, temperature: 0, onToken: () => void (++n % 3 === 0 && model.clearCache()) });
    expect(n).toBeGreaterThan(3);
    expect(r.tokenIds).toEqual(want.tokenIds);
  });

  it('stops at once when the prompt fills the context exactly', async () => {
    const dir = variant('full-context', (d) => editJSON(d, 'config.json', (j) => (j['max_position_embeddings'] = 8)));
    const m = await OnnxCausalLM.load(dir, { threads: 1 });
    const ids = Array.from({ length: 8 }, (_, i) => 100 + i);
    expect(await m.generate(ids, { maxTokens: 5 })).toMatchObject({ tokens: 0, finishReason: 'length' });
    expect(await m.generate(ids.slice(1), { maxTokens: 5 })).toMatchObject({ tokens: 1, finishReason: 'length' });
    await m.close();
  });

  it('rejects calls after close', async () => {
    const m = await OnnxCausalLM.load(tiny.dir, { threads: 1 });
    const pending = m.generate(PROMPT, { maxTokens: 4 });
    await m.close();
    expect((await pending).tokens).toBe(4);
    await expect(m.generate(PROMPT, { maxTokens: 4 })).rejects.toThrow('OnnxCausalLM is closed');
  });
});

describe('OnnxCausalLM unseeded sampling and log-probabilities', () => {
  /** Float64 log-softmax of a reference logit row at `id`, written for the test. */
  const refLogProb = (row: Float64Array, id: number) => {
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    return row[id]! - max - Math.log(sum);
  };

  it('samples without a seed (it threw: randomInt(2 ** 48) is out of range), each call with its own seed', async () => {
    const runs = [];
    for (let i = 0; i < 4; i++) runs.push(await model.generate(PROMPT, { maxTokens: 16, temperature: 0.7 }));
    for (const r of runs) {
      expect(r.tokens).toBeGreaterThan(0);
      expect(['length', 'eos']).toContain(r.finishReason); // a drawn token may be the EOS id
    }
    // 16 tokens drawn at temperature 0.7 from a random model: four equal runs would mean one seed.
    expect(new Set(runs.map((r) => r.tokenIds.join())).size).toBeGreaterThan(1);
    expect(new Set(Array.from({ length: 8 }, () => new Sampler(1, 1, undefined).pick(Float32Array.from({ length: 1000 }, () => 0)))).size).toBeGreaterThan(1);
    // A model whose generation_config.json samples by default: no option needed to hit the path.
    const dir = variant('do-sample', (d) => editJSON(d, 'generation_config.json', (j) => Object.assign(j, { do_sample: true, temperature: 0.8, top_p: 0.9 })));
    const m = await OnnxCausalLM.load(dir, { threads: 1 });
    expect((await m.generate(PROMPT, { maxTokens: 8 })).tokens).toBeGreaterThan(0);
    await m.close();
  });

  it('reports each token\'s log-probability at temperature 1, matching a float64 reference within 1e-4', async () => {
    const promptIds = [...(await model.generate(PROMPT, { maxTokens: 0 })).promptTokenIds];
    for (const opts of [{ temperature: 0 }, { temperature: 0.8, seed: 3 }, { temperature: 1.5, topP: 0.7, seed: 4 }]) {
      const r = await model.generate(PROMPT, { maxTokens: 12, logprobs: true, ...opts });
      expect(r.logprobs).toHaveLength(r.tokens);
      const rows = referenceLogits(tiny, [...promptIds, ...r.tokenIds.slice(0, -1)]).slice(promptIds.length - 1);
      r.tokenIds.forEach((id, k) => {
        expect(Math.abs(r.logprobs![k]! - refLogProb(rows[k]!, id)), `${JSON.stringify(opts)} token ${k}`).toBeLessThan(1e-4);
        expect(r.logprobs![k]!).toBeLessThan(0);
      });
      // The figure is the model's, not the sampler's: asking changes no token.
      expect((await model.generate(PROMPT, { maxTokens: 12, ...opts })).tokenIds).toEqual(r.tokenIds);
    }
  });

  it('gives one log-probability per counted token (stop and end-of-sequence tokens too), none unless asked', async () => {
    const full = await model.generate(PROMPT, { maxTokens: 30, temperature: 0, logprobs: true });
    const stop = full.text.slice(10, 12);
    const cut = await model.generate(PROMPT, { maxTokens: 30, temperature: 0, stop: [stop], logprobs: true });
    expect(cut.finishReason).toBe('stop');
    expect(cut.logprobs).toEqual(full.logprobs!.slice(0, cut.tokens));
    const eos = full.tokenIds[4]!;
    const dir = variant('eos-logprobs', (d) => editJSON(d, 'generation_config.json', (j) => (j['eos_token_id'] = eos)));
    const m = await OnnxCausalLM.load(dir, { threads: 1 });
    const ended = await m.generate(PROMPT, { maxTokens: 30, temperature: 0, logprobs: true });
    expect(ended.finishReason).toBe('eos');
    expect(ended.logprobs).toHaveLength(ended.tokens);
    await m.close();
    expect('logprobs' in (await model.generate(PROMPT, { maxTokens: 4 }))).toBe(false);
    expect((await model.generate(PROMPT, { maxTokens: 0, logprobs: true })).logprobs).toEqual([]);
    const pre = new AbortController();
    pre.abort();
    expect((await model.generate(PROMPT, { maxTokens: 4, logprobs: true, signal: pre.signal })).logprobs).toEqual([]);
    await expect(model.generate(PROMPT, { maxTokens: 4, logprobs: 1 as never })).rejects.toThrow(new TypeError('Expected boolean for options.logprobs but received 1 of type number'));
  });
});


describe('OnnxCausalLM internals', () => {
  it('emits a character split between the prompt and the output whole (no lone surrogate)', () => {
    const decode = (ids: number[]) => model.decode(ids); // the tiny tokenizer: ids 0..255 are bytes
    const d = new Detokenizer(decode, [0x61, 0xf0, 0x9f]); // 'a' + the first half of 😀
    expect(d.push(0x98)).toBe('');
    expect(d.push(0x80)).toBe('😀');
    expect(d.push(0x62)).toBe('b');
    const cjk = new Detokenizer(decode, [0xe4, 0xb8]); // first two bytes of 中
    expect(cjk.push(0xad) + cjk.push(0x61)).toBe('中a');
  });

  it('seeds with different high or low words give different streams; topP keeps the exact nucleus', () => {
    const logits = Float32Array.from({ length: 500 }, (_, i) => Math.sin(i * 12.9898) * 3);
    const stream = (seed: number) => {
      const s = new Sampler(1, 1, seed);
      return Array.from({ length: 20 }, () => s.pick(logits)).join();
    };
    expect(stream(0)).not.toBe(stream(2 ** 32 + 1));
    expect(stream(7)).not.toBe(stream(7 * 2 ** 32));
    expect(stream(5)).toBe(stream(5));
    // Only tokens of the nucleus are ever drawn: the smallest prefix (by probability) reaching topP.
    const p = Array.from(logits, (x) => Math.exp(x - Math.max(...logits)));
    const total = p.reduce((a, b) => a + b, 0);
    const order = p.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    const nucleus = new Set<number>();
    let mass = 0;
    for (const [x, i] of order) {
      if (mass >= 0.3 * total) break;
      nucleus.add(i);
      mass += x;
    }
    const s = new Sampler(1, 0.3, 9);
    const seen = new Set(Array.from({ length: 2000 }, () => s.pick(logits)));
    for (const id of seen) expect(nucleus.has(id)).toBe(true);
    expect(seen.size).toBe(nucleus.size);
  });
});
