// s1 budget forcing against any OpenAI-compatible completions server (vLLM, SGLang, llama.cpp's
// server, Ollama): the model's thinking is kept within [min, max] tokens, then it must answer.
// Run: node examples/thinking-budget.mjs <baseURL> <model> ["question"]
//   e.g. vllm serve Qwen/Qwen3-0.6B  then  node examples/thinking-budget.mjs http://127.0.0.1:8000 Qwen/Qwen3-0.6B
import { forceThinkingBudget, OpenAICompatibleGenerator } from '@capibara/core';

const [baseURL, model, question = 'How many times does the letter r occur in "strawberry"?'] = process.argv.slice(2);
if (!baseURL || !model) {
  console.error('usage: node examples/thinking-budget.mjs <baseURL> <model> ["question"]');
  process.exit(2);
}

const generator = new OpenAICompatibleGenerator({ baseURL, model, timeoutMs: 120_000 });
// A Qwen3-style chat template; adapt it to your model. The thinking starts after <think>.
const prompt = `<|im_start|>user\n${question}<|im_end|>\n<|im_start|>assistant\n`;

for (const [min, max] of [[0, 64], [256, 512]]) {
  const r = await forceThinkingBudget(generator, prompt, {
    minThinkingTokens: min,
    maxThinkingTokens: max,
    answerMaxTokens: 64,
    temperature: 0,
    onRound: (round) => process.stderr.write(`  ${round.kind}: ${round.tokens} tokens${round.finishReason ? ` (${round.finishReason})` : ''}\n`),
  });
  console.log(`budget [${min}, ${max}]: thought ${r.thinkingTokens} tokens, ${r.continuationsUsed} "Wait"s, end forced: ${r.forcedEnd}`);
  console.log(`  answer: ${r.answer.trim()}`);
}
