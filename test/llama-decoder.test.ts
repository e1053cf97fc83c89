/**
 * LlamaDecoder with every head full against OnnxCausalLM over the same weights (the tiny and the
 * small model): logits within 1e-4 at every one of 64 greedy steps, identical tokens, prefill
 * chunked or not; and the Generator contract (sampling, stops, streaming, abort, counts,
 * logprobs, prefix reuse, truncate) giving what OnnxCausalLM gives.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClosedError, DuoKVCache, LlamaDecoder, OnnxCausalLM } from '../src/index';
import { makeTinyHfModel, makeTinyModel } from '../scripts/make-tiny-model.mjs';

let root: string;
const SMALL = { layers: 4, hidden: 256, heads: 8, kvHeads: 4, intermediate: 768 };

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'capibara-llama-decoder-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Both layouts of one model in one folder, with no end-of-sequence id (every run goes to maxTokens). */
async function bothLayouts(name: string, options: Record<string, unknown>): Promise<string> {
  const dir = join(root, name);
  await makeTinyModel(dir, options);
  await makeTinyHfModel(dir, options);
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [] }));
  return dir;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.each([
  ['tiny', {}],
  ['small', SMALL],
])('%s model, every head full, against the whole-model ONNX run', (name, options) => {
  let dir: string;
  let whole: OnnxCausalLM;
  beforeAll(async () => {
    dir = await bothLayouts(name, options);
    whole = await OnnxCausalLM.load(dir, { threads: 1 });
  });
  afterAll(() => whole?.close());

  it.each([512, 7, 1])('logits within 1e-4 at each of 64 greedy steps and the same tokens (prefill chunk %i)', async (chunk) => {
    const decoder = await LlamaDecoder.load(dir, { threads: 1, prefillChunk: chunk });
    try {
      const seq = whole.encode('The capybara is the largest rodent in the world. It lives near rivers');
      const P = seq.length;
      let worst = 0;
      for (let step = 0; step < 64; step++) {
        const a = await decoder.logits(seq);
        const b = await whole.logits(seq);
        worst = Math.max(worst, maxAbsDiff(a, b));
        const next = b.indexOf(Math.max(...b));
        expect(a.indexOf(Math.max(...a))).toBe(next);
        seq.push(next);
      }
      expect(worst).toBeLessThan(1e-4);
      const prompt = seq.slice(0, P);
      decoder.clearCache();
      whole.clearCache();
      const r = await decoder.generate(prompt, { maxTokens: 64, temperature: 0 });
      const w = await whole.generate(prompt, { maxTokens: 64, temperature: 0 });
      expect(r.tokenIds).toEqual(w.tokenIds);
      expect(r.tokenIds).toEqual(seq.slice(P, P + 64));
      expect([r.tokens, r.finishReason, r.text]).toEqual([64, 'length', w.text]);
      expect(r.attentionMs).toBeGreaterThan(0);
      expect(r.denseMs).toBeGreaterThan(0);
    } finally {
      await decoder.close();
    }
  });
});

describe('the Generator contract', () => {
  let dir: string;
  let whole: OnnxCausalLM;
  let decoder: LlamaDecoder;
  const PROMPT = 'Before we answer a question, we should think';
  beforeAll(async () => {
    dir = await bothLayouts('contract', {});
    whole = await OnnxCausalLM.load(dir, { threads: 1 });
    decoder = await LlamaDecoder.load(dir, { threads: 1 });
  });
  afterAll(async () => {
    await whole?.close();
    await decoder?.close();
  });

  const strip = (r: Record<string, unknown>) => {
    const { prefillMs, decodeMs, attentionMs, denseMs, cachedTokens, logprobs, ...rest } = r;
    void [prefillMs, decodeMs, attentionMs, denseMs, cachedTokens, logprobs];
    return rest;
  };

  it('gives what OnnxCausalLM gives: greedy and seeded sampling, stop strings, counts', async () => {
    const greedy = await whole.generate(PROMPT, { maxTokens: 40, temperature: 0 });
    const stop = greedy.text.slice(10, 13);
    const cases = [
      { maxTokens: 40, temperature: 0 },
      { maxTokens: 40, temperature: 0.8, topP: 0.9, seed: 7 },
      { maxTokens: 40, temperature: 1.2, seed: 123456789 },
      { maxTokens: 40, temperature: 0, stop: [stop, 'zzz'] },
      { maxTokens: 0 },
    ];
    for (const options of cases) {
      whole.clearCache();
      decoder.clearCache();
      expect(strip(await decoder.generate(PROMPT, options) as never)).toEqual(strip(await whole.generate(PROMPT, options) as never));
    }
    const stopped = await decoder.generate(PROMPT, { maxTokens: 40, temperature: 0, stop: [stop] });
    expect([stopped.finishReason, stopped.stopSequence, stopped.text]).toEqual(['stop', stop, greedy.text.slice(0, greedy.text.indexOf(stop))]);
  });

  it('streams pieces that concatenate to the text, and reports logprobs', async () => {
    const pieces: string[] = [];
    const r = await decoder.generate(PROMPT, { maxTokens: 24, temperature: 0, logprobs: true, onToken: (p) => pieces.push(p) });
    expect(pieces.join('')).toBe(r.text);
    whole.clearCache();
    const w = await whole.generate(PROMPT, { maxTokens: 24, temperature: 0, logprobs: true });
    expect(r.logprobs).toHaveLength(24);
    expect(maxAbsDiff(r.logprobs!, w.logprobs!)).toBeLessThan(1e-4);
  });

  it('aborts between model runs, with what was generated', async () => {
    const run = async (model: LlamaDecoder | OnnxCausalLM) => {
      const controller = new AbortController();
      let seen = 0;
      model.clearCache();
      return model.generate(PROMPT, {
        maxTokens: 40, temperature: 0, signal: controller.signal,
        onToken: () => {
          if (++seen === 3) controller.abort();
        },
      });
    };
    const r = await run(decoder);
    expect(r.finishReason).toBe('abort');
    expect(r.tokens).toBe(r.tokenIds.length);
    expect(r.tokens).toBeLessThan(40);
    expect(strip(r as never)).toEqual(strip(await run(whole) as never));
    const pre = new AbortController();
    pre.abort();
    expect(await decoder.generate(PROMPT, { maxTokens: 4, signal: pre.signal })).toMatchObject({ finishReason: 'abort', tokens: 0 });
  });

  it('reuses the cached prefix and rolls back with truncate, giving a fresh run\'s tokens', async () => {
    decoder.clearCache();
    const first = await decoder.generate(PROMPT, { maxTokens: 16, temperature: 0 });
    const cont = [...first.promptTokenIds, ...first.tokenIds];
    expect(decoder.cachedTokens).toBe(cont.length - 1); // the last token is sampled, never run
    const next = await decoder.generate(cont, { maxTokens: 16, temperature: 0 });
    expect(next.cachedTokens).toBe(cont.length - 1);
    const fresh = await LlamaDecoder.load(dir, { threads: 1 });
    expect((await fresh.generate(cont, { maxTokens: 16, temperature: 0 })).tokenIds).toEqual(next.tokenIds);
    await fresh.close();
    // Diverging inside the cache: the common prefix is kept, the rest rolled back.
    const other = [...first.promptTokenIds, ...first.tokenIds.slice(0, 4), 42];
    const r = await decoder.generate(other, { maxTokens: 8, temperature: 0 });
    expect(r.cachedTokens).toBe(first.promptTokenIds.length + 4);
    whole.clearCache();
    expect(r.tokenIds).toEqual((await whole.generate(other, { maxTokens: 8, temperature: 0 })).tokenIds);
    await decoder.truncate(5);
    expect(decoder.cachedTokens).toBe(5);
    await expect(decoder.truncate(1000)).rejects.toThrow(new RangeError('Expected at most 5 tokens (the cached tokens) for tokens but received 1000'));
    const again = await decoder.generate(PROMPT, { maxTokens: 16, temperature: 0 });
    expect([again.cachedTokens, again.tokenIds]).toEqual([5, first.tokenIds]);
  });

  it('attends a long prefill chunk on a worker thread and decode steps inline, with the same logits', async () => {
    const ids = Array.from({ length: 1100 }, (_, i) => 5 + ((i * 37) % 300));
    const inline = await LlamaDecoder.load(dir, { threads: 1, prefillChunk: 100 });
    const chunked = await LlamaDecoder.load(dir, { threads: 1, prefillChunk: 1024 });
    const sync = vi.spyOn(DuoKVCache.prototype, 'attend');
    const async = vi.spyOn(DuoKVCache.prototype, 'attendAsync');
    try {
      const want = await inline.logits(ids, { lastPositions: 4 });
      expect([sync.mock.calls.length, async.mock.calls.length]).toEqual([11 * 2, 0]);
      sync.mockClear();
      // 1024 × 1024 query × key pairs per layer (2^20): a worker thread; the last 76 rows and a decode step: inline.
      const got = await chunked.logits(ids, { lastPositions: 4 });
      expect([sync.mock.calls.length, async.mock.calls.length]).toEqual([2, 2]);
      let m = 0;
      for (let i = 0; i < want.length; i++) m = Math.max(m, Math.abs(want[i]! - got[i]!));
      expect(m).toBeLessThan(1e-5);
      sync.mockClear();
      await chunked.generate([...ids, 9], { maxTokens: 2, temperature: 0 });
      expect([sync.mock.calls.length, async.mock.calls.length]).toEqual([4, 2]);
    } finally {
      sync.mockRestore();
      async.mockRestore();
      await inline.close();
      await chunked.close();
    }
  });

  it('checks its arguments with the shared messages, and refuses calls once closed', async () => {
    await expect(decoder.generate(PROMPT, { maxTokens: -1 })).rejects.toThrow(new RangeError('Expected integer >= 0 for options.maxTokens but received -1 of type number'));
    await expect(decoder.generate([1, 99999], { maxTokens: 1 })).rejects.toThrow(RangeError);
    await expect(decoder.logits([])).rejects.toThrow(new RangeError('Expected non-empty array of token ids for tokenIds but received Array of length 0'));
    await expect(decoder.logits([1, 2], { lastPositions: 3 })).rejects.toThrow(RangeError);
    expect(decoder.decode(decoder.encode('hello there'))).toBe('hello there');
    expect(decoder.countTokens('hello there')).toBe(whole.countTokens('hello there'));
    const d = await LlamaDecoder.load(dir, { threads: 1 });
    await d.close();
    await d.close();
    await expect(d.generate(PROMPT, { maxTokens: 1 })).rejects.toThrow(ClosedError);
  });
});
