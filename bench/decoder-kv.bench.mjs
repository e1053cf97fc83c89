// Compact KV caches in real decoding: LlamaDecoder with every head full, its KV cache stored as
// float16, bf16 or int8 (keys per channel, values per token), against float32 storage of the
// same model: top-1 agreement and mean KL(float32 ‖ compact) of the next-token distributions over
// the last 2,000 positions of a 6,096-token sequence (4K+ context), decode tokens/s at 16K (wall time
// of a 32-token greedy generate after the prompt is cached), and
// KV bytes per token. Models from scripts/make-tiny-model.mjs (seeded random weights), one
// thread. Runs standalone or under bench/run.mjs.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';

import { makeTinyHfModel } from '../scripts/make-tiny-model.mjs';
import { agreement, repeatTo, tokens } from './quality.mjs';

const require = createRequire(import.meta.url);
if (!existsSync(new URL('../lib/index.js', import.meta.url))) {
  console.error('decoder-kv: lib/index.js missing: run `npm run build` first');
  process.exit(1);
}
const { LlamaDecoder } = require('../lib/index.js');

const QUICK = process.argv.includes('--quick');
const SCORED = QUICK ? 200 : 2000;
const CONTEXT = QUICK ? 1024 : 4096;
const SPEED_CONTEXT = QUICK ? 2048 : 16384;
const DECODE = QUICK ? 8 : 32;
const STORAGES = ['float32', 'float16', 'bf16', 'int8'];
const MODELS = [
  { name: 'small (4 layers, d=256, 8/4 heads of 32)', options: { layers: 4, hidden: 256, heads: 8, kvHeads: 4, intermediate: 768 } },
  { name: 'wide (8 layers, d=512, 8/2 heads of 64)', options: { layers: 8, hidden: 512, heads: 8, kvHeads: 2, intermediate: 1536 } },
];
const TEXTS = '/usr/share/common-licenses';
const log = (s) => process.stderr.write(`decoder-kv: ${s}\n`);

const root = mkdtempSync(path.join(os.tmpdir(), 'capibara-bench-decoder-kv-'));
const rows = [];
try {
  for (const spec of MODELS) {
    const dir = path.join(root, String(MODELS.indexOf(spec)));
    await makeTinyHfModel(dir, { ...spec.options, maxPositions: SPEED_CONTEXT + DECODE + 64 });
    writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [] }));
    let reference;
    let text;
    for (const storage of STORAGES) {
      const d = await LlamaDecoder.load(dir, { threads: 1, storage });
      text ??= tokens(d, readFileSync(path.join(TEXTS, 'GFDL-1.3'), 'utf8') + readFileSync(path.join(TEXTS, 'LGPL-3'), 'utf8'), CONTEXT + SCORED);
      const logits = await d.logits(text, { lastPositions: SCORED, reuseCache: false });
      reference ??= logits;
      const q = agreement(reference, logits, d.info.vocabSize);
      // Decode speed at a long context: prefill once, then time DECODE greedy tokens.
      const prompt = repeatTo(text, SPEED_CONTEXT);
      await d.generate(prompt, { maxTokens: 1, temperature: 0 });
      const t0 = performance.now();
      const r = await d.generate(prompt, { maxTokens: DECODE, temperature: 0 });
      const seconds = (performance.now() - t0) / 1000;
      if (r.tokens !== DECODE) throw new Error(`decoder-kv: generated ${r.tokens} tokens, expected ${DECODE}`);
      const perToken = d.kvBytes().used / d.cachedTokens;
      rows.push({ model: spec.name, storage, top1: q.top1, kl: q.kl, tokensPerS: DECODE / seconds, kvBytesPerToken: perToken });
      log(`${spec.name} ${storage}: top-1 ${(q.top1 * 100).toFixed(1)} %, KL ${q.kl.toExponential(2)}, ${rows.at(-1).tokensPerS.toFixed(1)} tokens/s`);
      await d.close();
    }
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
const base = (r) => rows.find((x) => x.model === r.model && x.storage === 'float32');
const result = {
  name: 'decoder-kv',
  title: `Compact KV in LlamaDecoder (every head full, one thread): quality vs float32 KV over ${SCORED} positions after ${CONTEXT} tokens, decode at ${SPEED_CONTEXT}${QUICK ? ' (quick)' : ''}`,
  meta: { scored: SCORED, context: CONTEXT, speedContext: SPEED_CONTEXT },
  rows,
  table: rows.map((r) => ({
    model: r.model,
    'KV storage': r.storage,
    'top-1 vs float32': `${(r.top1 * 100).toFixed(2)} %`,
    'mean KL': r.kl.toExponential(2),
    'decode tokens/s': r.tokensPerS.toFixed(1),
    'vs float32': `${(r.tokensPerS / base(r).tokensPerS).toFixed(2)}×`,
    'KV B/token': Math.round(r.kvBytesPerToken).toLocaleString('en-US'),
  })),
};
if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(result.table);
