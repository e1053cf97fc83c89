// A local decoder run by ONNX Runtime, continued from its KV cache, then served over HTTP as an
// OpenAI-compatible server and read back with the client. It builds the tiny test model
// (seeded random weights: the text is noise, the mechanics are real); point it at any
// onnx-community export folder to run a real model.
// Run: node examples/local-model.mjs [modelDir]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCompletionsServer, OnnxCausalLM, OpenAICompatibleGenerator } from '@capibara/core';
import { makeTinyModel } from '@capibara/core/testing';

// The tiny model goes into a temporary folder, removed at the end; a model folder given is only read.
const tmp = process.argv[2] ? undefined : mkdtempSync(join(tmpdir(), 'capibara-example-'));
const dir = process.argv[2] ?? (await makeTinyModel(join(tmp, 'tiny'))).dir;
const model = await OnnxCausalLM.load(dir, { threads: 2 });
console.log(`loaded ${dir}: vocabulary ${model.info.vocabSize}, ${model.info.layers} layers, on ${model.executionProviders.join(', ')}`);

const prompt = 'The capybara is';
const first = await model.generate(prompt, {
  maxTokens: 24,
  temperature: 0.8,
  seed: 3,
  onToken: (piece) => process.stdout.write(piece),
});
console.log(`\n-> ${first.tokens} tokens (${first.finishReason}); prefill ${first.prefillMs.toFixed(1)} ms, decode ${first.decodeMs.toFixed(1)} ms`);

// A continuation: the prompt + output are in the KV cache, so only the new tokens are run. Token
// ids continue exactly; text is re-tokenized, which may split the output differently.
const next = await model.generate([...first.promptTokenIds, ...first.tokenIds, ...model.encode(' And then')], { maxTokens: 16, temperature: 0 });
console.log(`continuation: ${next.cachedTokens} of ${next.promptTokens} prompt tokens came from the cache`);

// The same model behind an OpenAI-compatible server, read with the client over real HTTP.
const server = createCompletionsServer(model, { model: 'tiny' });
const { url } = await server.listen(0);
const client = new OpenAICompatibleGenerator({ baseURL: url, model: 'tiny' });
const viaHttp = await client.generate(prompt, { maxTokens: 24, temperature: 0.8, seed: 3 });
console.log(`via ${url}: the same text as in process: ${viaHttp.text === first.text} (${viaHttp.tokens} tokens)`);
await server.close();
await model.close();
if (tmp) rmSync(tmp, { recursive: true, force: true });
