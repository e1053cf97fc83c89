// DuoAttention in real decoding: a Llama-family model folder run by LlamaDecoder (dense layers in
// ONNX Runtime, attention in the addon on the split KV cache). Calibrate the heads on the model
// itself, save the pattern, then generate with half the KV heads streaming and int8 weights.
// It builds the tiny test model in the Hugging Face layout (seeded random weights: the text is
// noise, the mechanics are real); point it at a Llama / Qwen2 / Mistral folder to run a real model.
// Run: node examples/duo-generation.mjs [modelDir]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaDecoder } from '@capibara/core';
import { makeTinyHfModel } from '@capibara/core/testing';

const tmp = mkdtempSync(join(tmpdir(), 'capibara-example-'));
const dir = process.argv[2] ?? (await makeTinyHfModel(join(tmp, 'tiny'))).dir;
try {
  // 1. Calibrate with every head full: prefill a text, score how much each KV head loses when it
  //    keeps only sink + recent tokens, keep the best half as retrieval heads.
  const full = await LlamaDecoder.load(dir, { threads: 2 });
  const text = full.encode('The capybara is the largest living rodent. '.repeat(40));
  const { pattern } = await full.calibrate([text], { retrievalRatio: 0.5, sink: 16, recent: 64 });
  await pattern.save(join(tmp, 'pattern'));
  await full.close();
  console.log(`calibrated: ${pattern.retrievalCount} of ${pattern.layers * pattern.kvHeads} KV heads keep every token`);

  // 2. Generate with the saved pattern and int8 weights.
  const duo = await LlamaDecoder.load(dir, { headPattern: join(tmp, 'pattern'), weights: 'int8', threads: 2 });
  const prompt = [...text, ...duo.encode(' Where does it live?')];
  const r = await duo.generate(prompt, { maxTokens: 24, temperature: 0 });
  const { used, full: fullBytes } = duo.kvBytes();
  console.log(`${r.tokens} tokens (${r.finishReason}); attention ${r.attentionMs.toFixed(1)} ms, dense layers ${r.denseMs.toFixed(1)} ms`);
  console.log(`KV cache: ${used} bytes, ${((used / fullBytes) * 100).toFixed(0)} % of a cache with every head full`);

  // 3. A prompt that continues the last one runs only its new tokens.
  const next = await duo.generate([...prompt, ...r.tokenIds], { maxTokens: 8, temperature: 0 });
  console.log(`continuation: ${next.cachedTokens} of ${next.promptTokens} prompt tokens came from the cache`);
  await duo.close();
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
