// Local decoding with OnnxCausalLM on models built by scripts/make-tiny-model.mjs (seeded random
// weights, so the text is noise but the work is a real LLaMA forward): greedy generation of
// NEW tokens after a PROMPT-token prompt with the KV cache, against recomputing the whole sequence
// for every token (no cache), and the prefill alone. One intra-op thread, so the numbers compare
// across machines with different core counts. Runs standalone or under bench/run.mjs.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';

import { makeTinyModel } from '../scripts/make-tiny-model.mjs';
import { measure } from './common.mjs';

const require = createRequire(import.meta.url);
if (!existsSync(new URL('../lib/index.js', import.meta.url))) {
  console.error('llm: lib/index.js missing: run `npm run build` first');
  process.exit(1);
}
const { OnnxCausalLM } = require('../lib/index.js');

const QUICK = process.argv.includes('--quick');
const PROMPT = 64;
const NEW = 64;
const TIMING = QUICK ? { warmup: 1, timeMs: 300, minRounds: 3 } : { warmup: 2, timeMs: 4000, minRounds: 8 };
const MODELS = [
  { name: 'tiny (2 layers, d=64)', options: {} },
  { name: 'small (4 layers, d=256)', options: { layers: 4, hidden: 256, heads: 8, kvHeads: 4, intermediate: 768 } },
];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const argmax = (x) => {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
};

const root = mkdtempSync(path.join(os.tmpdir(), 'capibara-bench-llm-'));
const rows = [];
try {
  for (const spec of MODELS) {
    const { dir, config } = await makeTinyModel(path.join(root, String(rows.length)), spec.options);
    // No end-of-sequence id: every run generates exactly NEW tokens.
    writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [] }));
    const model = await OnnxCausalLM.load(dir, { threads: 1 });
    const prompt = Array.from({ length: PROMPT }, (_, i) => (i * 7919) % config.vocab_size);
    const split = { prefillMs: [], decodeMs: [] };
    const cached = async () => {
      model.clearCache();
      const r = await model.generate(prompt, { maxTokens: NEW, temperature: 0 });
      if (r.tokens !== NEW) throw new Error(`llm: generated ${r.tokens} tokens, expected ${NEW}`);
      split.prefillMs.push(r.prefillMs);
      split.decodeMs.push(r.decodeMs);
    };
    // The same greedy tokens, each from a forward pass over the whole sequence so far.
    const uncached = async () => {
      const seq = [...prompt];
      for (let i = 0; i < NEW; i++) seq.push(argmax(await model.logits(seq, { reuseCache: false })));
    };
    const prefill = async () => {
      await model.logits(prompt, { reuseCache: false });
    };
    const t = await measure([['KV cache', cached, true], ['no cache', uncached, true], ['prefill', prefill, true]], TIMING);
    await model.close();
    const cachedMs = t['KV cache'].median;
    const prefillMs = median(split.prefillMs);
    const decodeMs = median(split.decodeMs);
    rows.push(
      { model: spec.name, what: `generate ${NEW} after ${PROMPT}, KV cache`, tokensPerSecond: (NEW * 1000) / cachedMs, ms: cachedMs, vsCache: 1, samples: t['KV cache'].samples },
      { model: spec.name, what: `generate ${NEW} after ${PROMPT}, no cache`, tokensPerSecond: (NEW * 1000) / t['no cache'].median, ms: t['no cache'].median, vsCache: t['no cache'].median / cachedMs, samples: t['no cache'].samples },
      { model: spec.name, what: `  prefill of ${PROMPT} (inside generate)`, tokensPerSecond: (PROMPT * 1000) / prefillMs, ms: prefillMs, vsCache: null, samples: split.prefillMs.length },
      { model: spec.name, what: `  decode of ${NEW} (inside generate)`, tokensPerSecond: (NEW * 1000) / decodeMs, ms: decodeMs, vsCache: null, samples: split.decodeMs.length },
      { model: spec.name, what: `prefill of ${PROMPT} alone`, tokensPerSecond: (PROMPT * 1000) / t['prefill'].median, ms: t['prefill'].median, vsCache: null, samples: t['prefill'].samples },
    );
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}

const result = {
  name: 'llm',
  title: `OnnxCausalLM (ONNX Runtime CPU, 1 thread): greedy decoding with and without the KV cache, prefill vs decode, median${QUICK ? ' (quick)' : ''}`,
  meta: { prompt: PROMPT, generated: NEW, threads: 1 },
  rows,
  table: rows.map((r) => ({
    model: r.model,
    what: r.what,
    'tokens/s': Math.round(r.tokensPerSecond).toLocaleString('en-US'),
    ms: r.ms.toFixed(2),
    'time vs KV cache': r.vsCache === null ? '' : `${r.vsCache.toFixed(2)}×`,
  })),
};
if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(result.table);
