// Think Twice multi-round thinking (MultiRoundThinking): each round re-answers the question seeing
// only the previous round's answer, until two rounds agree, the rounds or the token budget run
// out. Sessions are kept in SQLite, so a session can be resumed after a restart.
// Run locally (builds the tiny test model: random weights, so the text is noise and only the
// mechanics are real):   node examples/thinking.mjs
// Run against any OpenAI-compatible completions server with a reasoning model:
//   node examples/thinking.mjs <baseURL> <model> ["question"]
//   e.g. vllm serve Qwen/Qwen3-0.6B  then  node examples/thinking.mjs http://127.0.0.1:8000 Qwen/Qwen3-0.6B
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MultiRoundThinking, OnnxCausalLM, OpenAICompatibleGenerator, SqliteThinkingStore, ThinkingMode } from '@capibara/core';
import { makeTinyModel } from '@capibara/core/testing';

const [baseURL, modelName, question = 'How many times does the letter r occur in "strawberry"?'] = process.argv.slice(2);
if (baseURL !== undefined && modelName === undefined) {
  console.error('usage: node examples/thinking.mjs [<baseURL> <model> ["question"]]');
  process.exit(2);
}
const tmp = mkdtempSync(join(tmpdir(), 'capibara-thinking-example-'));

let generator;
let settings;
if (baseURL) {
  generator = new OpenAICompatibleGenerator({ baseURL, model: modelName, timeoutMs: 300_000 });
  settings = {
    // A Qwen3-style chat template; adapt it to your model. The thinking starts after <think>.
    template: (m) => `<|im_start|>user\n${m}<|im_end|>\n<|im_start|>assistant\n`,
    thinkingBudget: { maxThinkingTokens: 2048, answerMaxTokens: 64 },
    temperature: 0.6,
  };
} else {
  generator = await OnnxCausalLM.load((await makeTinyModel(join(tmp, 'tiny'))).dir, { threads: 2 });
  // The tiny model almost never writes '</think>', but often 'e': its thinking ends there. One-token
  // answers from greedy decoding, so rounds can agree (each reaches its 1-token cap, so ADAPTIVE's
  // 'cut-by-budget' rule picks SYSTEMATIC after the first round).
  settings = { thinkEnd: 'e', thinkingBudget: { maxThinkingTokens: 24, answerMaxTokens: 1 }, temperature: 0 };
}

const store = new SqliteThinkingStore({ path: join(tmp, 'thinking.db') });
const thinking = new MultiRoundThinking({ generator, store, maxRounds: 4, ...settings });
thinking.on('round', (_id, r) => {
  const lp = r.answerLogprob === undefined ? '' : `, answer log-prob ${r.answerLogprob.toFixed(2)}`;
  console.log(`round ${r.round} (${r.modeUsed}, ${r.adaptiveRule}): thought ${r.thinkingTokens} tokens${r.thinkingForcedEnd ? ' (cut at the cap)' : ''}, ` +
    `answered ${JSON.stringify(r.answer.trim())} in ${r.answerTokens}${lp}, ${r.durationMs.toFixed(0)} ms`);
});

const s = await thinking.runSession(question, { thinkingMode: ThinkingMode.ADAPTIVE, tokenBudget: baseURL ? 12_000 : 200 });
console.log(`stopped by ${s.stopReason} after ${s.rounds.length} rounds, ${s.tokensUsed} tokens`);
console.log(`final answer ${JSON.stringify(s.synthesis.finalAnswer)}: given by ${(s.synthesis.confidence * 100).toFixed(0)} % of the rounds` +
  (s.synthesis.answerLogprob === undefined ? '' : `, mean token log-probability ${s.synthesis.answerLogprob.toFixed(2)}`));
console.log('round 2 was sent:', JSON.stringify(s.rounds[1]?.prompt ?? '(no round 2)'));
console.log('metrics:', JSON.stringify(await thinking.getMetrics()));

await thinking.close();
await store.close();
if (!baseURL) await generator.close();
rmSync(tmp, { recursive: true, force: true });
