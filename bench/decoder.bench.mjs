// DuoAttention in real decoding: LlamaDecoder (dense parts in ONNX Runtime, attention on the split
// KV cache in the addon) against the whole-model OnnxCausalLM of the same weights, on models built
// by scripts/make-tiny-model.mjs (seeded random weights: the text is noise, the work is a real
// Llama forward). One thread everywhere. For each model and context length (4K, 16K, 32K tokens):
// decode tokens/s of (a) OnnxCausalLM, (b) LlamaDecoder with every head full, (c) Duo 50 % and
// (d) Duo 25 % retrieval heads (sink 64, recent 256), and (b8)–(d8) the same three with int8
// weights (MatMulNBits), KV bytes per token, and the share of model time spent in attention. Contenders run in rotating order within each round, so load from the
// rest of the machine hits them alike. Quality: heads calibrated on one text (GPL-3, through
// LlamaDecoder.calibrate), scored on another (GFDL-1.3 + LGPL-3): top-1 agreement and mean
// KL(full ‖ duo) of the next-token distributions over the last 2,000 positions of a 6,096-token
// sequence (4K+ context); the same for int8 and int4 weights against float32 weights, every head
// full. Runs standalone or under bench/run.mjs.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';

import { makeTinyHfModel, makeTinyModel } from '../scripts/make-tiny-model.mjs';
import { agreement, repeatTo, tokens } from './quality.mjs';

const require = createRequire(import.meta.url);
if (!existsSync(new URL('../lib/index.js', import.meta.url))) {
  console.error('decoder: lib/index.js missing: run `npm run build` first');
  process.exit(1);
}
const { HeadPattern, LlamaDecoder, OnnxCausalLM } = require('../lib/index.js');

const QUICK = process.argv.includes('--quick');
// --contexts=32768,16384 measures only those (the quality part still runs).
const CONTEXTS_ARG = process.argv.find((a) => a.startsWith('--contexts='));
const CONTEXTS = CONTEXTS_ARG ? CONTEXTS_ARG.slice(11).split(',').map(Number) : QUICK ? [1024, 2048] : [4096, 16384, 32768];
const DECODE = QUICK ? 8 : 32; // tokens timed per generate call
const ROUNDS = QUICK ? 1 : 11; // cheap next to the prefill, and this VM's speed drifts by the second
const SINK = 64;
const RECENT = 256;
const SCORED = QUICK ? 200 : 2000; // positions scored for quality
const QUALITY_CONTEXT = QUICK ? 1024 : 4096; // the first scored position sees this many tokens
const CALIBRATION_TOKENS = QUICK ? 1024 : 4096;
const MODELS = [
  { name: 'small (4 layers, d=256, 8/4 heads of 32)', options: { layers: 4, hidden: 256, heads: 8, kvHeads: 4, intermediate: 768 } },
  { name: 'wide (8 layers, d=512, 8/2 heads of 64)', options: { layers: 8, hidden: 512, heads: 8, kvHeads: 2, intermediate: 1536 } },
];
const TEXTS = '/usr/share/common-licenses';
// `base`: the contender whose tokens/s the "vs (b)" column divides by (the full decoder with the same weights).
const CONTENDERS = [
  { what: '(a) OnnxCausalLM' },
  { what: '(b) decoder, full', base: 1 },
  { what: '(c) Duo 50 %', ratio: 50, base: 1 },
  { what: '(d) Duo 25 %', ratio: 25, base: 1 },
  { what: '(b8) decoder, full, int8 weights', weights: 'int8', base: 4 },
  { what: '(c8) Duo 50 %, int8 weights', ratio: 50, weights: 'int8', base: 4 },
  { what: '(d8) Duo 25 %, int8 weights', ratio: 25, weights: 'int8', base: 4 },
];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const log = (s) => process.stderr.write(`decoder: ${s}\n`);

const root = mkdtempSync(path.join(os.tmpdir(), 'capibara-bench-decoder-'));
const rows = [];
try {
  for (const spec of MODELS) {
    const dir = path.join(root, String(MODELS.indexOf(spec)));
    const options = { ...spec.options, maxPositions: 40960 };
    await makeTinyModel(dir, options);
    await makeTinyHfModel(dir, options);
    // No end-of-sequence id: every run generates exactly what it is asked for.
    writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [] }));

    // Calibration on one text, with every head full.
    const full = await LlamaDecoder.load(dir, { threads: 1 });
    const { layers, kvHeads } = full.config;
    const calibrationText = tokens(full, readFileSync(path.join(TEXTS, 'GPL-3'), 'utf8'), CALIBRATION_TOKENS);
    let t0 = performance.now();
    const calibrated = await full.calibrate([calibrationText], { retrievalRatio: 0.5, sink: SINK, recent: RECENT, lastQueries: 512 });
    log(`${spec.name}: calibrated on ${CALIBRATION_TOKENS} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const patterns = {
      50: calibrated.pattern,
      25: HeadPattern.fromRatio(calibrated.scores, { layers, kvHeads, sink: SINK, recent: RECENT, retrievalRatio: 0.25 }),
    };

    // Quality on another text.
    const scoreText = tokens(full, readFileSync(path.join(TEXTS, 'GFDL-1.3'), 'utf8') + readFileSync(path.join(TEXTS, 'LGPL-3'), 'utf8'), QUALITY_CONTEXT + SCORED);
    const fullLogits = await full.logits(scoreText, { lastPositions: SCORED, reuseCache: false });
    await full.close();
    for (const ratio of [50, 25]) {
      const duo = await LlamaDecoder.load(dir, { threads: 1, headPattern: patterns[ratio], sink: SINK, recent: RECENT });
      const q = agreement(fullLogits, await duo.logits(scoreText, { lastPositions: SCORED }), duo.info.vocabSize);
      await duo.close();
      rows.push({ model: spec.name, context: `${QUALITY_CONTEXT}+`, what: `quality, Duo ${ratio} % vs full (${SCORED} positions)`, top1: q.top1, kl: q.kl });
      log(`${spec.name}: Duo ${ratio} % top-1 ${(q.top1 * 100).toFixed(1)} %, KL ${q.kl.toExponential(3)}`);
    }
    for (const weights of ['int8', 'int4']) {
      const quantized = await LlamaDecoder.load(dir, { threads: 1, weights });
      const q = agreement(fullLogits, await quantized.logits(scoreText, { lastPositions: SCORED }), quantized.info.vocabSize);
      await quantized.close();
      rows.push({ model: spec.name, context: `${QUALITY_CONTEXT}+`, what: `quality, ${weights} weights vs float32, every head full (${SCORED} positions)`, top1: q.top1, kl: q.kl });
      log(`${spec.name}: ${weights} weights top-1 ${(q.top1 * 100).toFixed(1)} %, KL ${q.kl.toExponential(3)}`);
    }

    for (const context of CONTEXTS) {
      const maxTokens = context + DECODE + 8;
      const prompt = repeatTo(scoreText.concat(calibrationText), context);
      const models = [];
      for (const c of CONTENDERS) {
        if (c.base === undefined) models.push(await OnnxCausalLM.load(dir, { threads: 1 }));
        else {
          const duo = c.ratio === undefined ? {} : { headPattern: patterns[c.ratio], sink: SINK, recent: RECENT };
          models.push(await LlamaDecoder.load(dir, { threads: 1, maxTokens, ...duo, ...(c.weights ? { weights: c.weights } : {}) }));
        }
      }
      const prefillS = [];
      for (const m of models) {
        t0 = performance.now();
        await m.generate(prompt, { maxTokens: 1, temperature: 0 });
        prefillS.push((performance.now() - t0) / 1000);
      }
      log(`${spec.name} @ ${context}: prefilled (${prefillS.map((s) => s.toFixed(1)).join(', ')} s)`);
      const speed = models.map(() => []);
      const share = models.map(() => []);
      for (let round = 0; round < ROUNDS; round++) {
        for (let j = 0; j < models.length; j++) {
          const c = (round + j) % models.length;
          // The cache holds the prompt and the last call's tokens: only the prompt's last token and the new ones run.
          const r = await models[c].generate(prompt, { maxTokens: DECODE + 1, temperature: 0 });
          if (r.tokens !== DECODE + 1 || r.cachedTokens !== context - 1) throw new Error(`decoder: ${CONTENDERS[c].what} generated ${r.tokens} tokens from ${r.cachedTokens} cached`);
          speed[c].push((DECODE * 1000) / r.decodeMs);
          if (r.attentionMs !== undefined) share[c].push(r.attentionMs / (r.attentionMs + r.denseMs));
        }
      }
      const tps = speed.map(median);
      const kvPerToken = models.map((m, c) =>
        c === 0 ? 2 * layers * kvHeads * full.config.headDim * 4 : m.kvBytes().used / m.cachedTokens,
      );
      for (let c = 0; c < models.length; c++) {
        rows.push({
          model: spec.name, context: String(context), what: CONTENDERS[c].what, tokensPerSecond: tps[c], vsA: tps[c] / tps[0], vsB: CONTENDERS[c].base === undefined ? tps[c] / tps[1] : tps[c] / tps[CONTENDERS[c].base],
          kvBytesPerToken: kvPerToken[c], attentionShare: c === 0 ? null : median(share[c]), prefillSeconds: prefillS[c], samples: speed[c].length,
        });
      }
      log(`${spec.name} @ ${context}: ${tps.map((x) => x.toFixed(1)).join(', ')} tokens/s`);
      for (const m of models) await m.close();
    }
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}

const result = {
  name: 'decoder',
  title: `LlamaDecoder (ORT dense + addon attention on DuoKVCache) vs whole-model OnnxCausalLM, 1 thread, decode of ${DECODE} tokens, median of ${ROUNDS}${QUICK ? ' (quick)' : ''}`,
  meta: { contexts: CONTEXTS, decode: DECODE, rounds: ROUNDS, sink: SINK, recent: RECENT, scored: SCORED, qualityContext: QUALITY_CONTEXT, threads: 1, calibration: 'GPL-3', scoring: 'GFDL-1.3 + LGPL-3' },
  rows,
  table: rows.map((r) => ({
    model: r.model.split(' (')[0],
    context: r.context,
    what: r.what,
    'tokens/s': r.tokensPerSecond === undefined ? '' : r.tokensPerSecond.toFixed(1),
    'vs (a)': r.vsA === undefined ? '' : `${r.vsA.toFixed(2)}×`,
    'vs (b)': r.vsB === undefined ? '' : `${r.vsB.toFixed(2)}×`,
    'KV B/token': r.kvBytesPerToken === undefined ? '' : Math.round(r.kvBytesPerToken).toLocaleString('en-US'),
    'attention share': r.attentionShare === undefined || r.attentionShare === null ? '' : `${(r.attentionShare * 100).toFixed(0)} %`,
    'prefill s': r.prefillSeconds === undefined ? '' : r.prefillSeconds.toFixed(1),
    'top-1': r.top1 === undefined ? '' : `${(r.top1 * 100).toFixed(1)} %`,
    'mean KL': r.kl === undefined ? '' : r.kl.toExponential(2),
  })),
};
if (process.env.CAPIBARA_BENCH_OUT) writeFileSync(process.env.CAPIBARA_BENCH_OUT, JSON.stringify(result));
else console.table(result.table);
