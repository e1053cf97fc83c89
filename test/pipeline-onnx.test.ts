import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BudgetForcing,
  ChatTemplate,
  MemAgent,
  OnnxCausalLM,
  OptimizationPipeline,
  type PipelineTrace,
  ResourceType,
  RewiringExperts,
} from '../src/index';
import { makeTinyModel } from '../scripts/make-tiny-model.mjs';

// The pipeline end to end on the tiny ONNX model: two experts (the same local model twice,
// each with its own KV cache), memory in a SQLite file, in-process budgets.
let dir: string;
let modelDir: string;
let a: OnnxCausalLM;
let b: OnnxCausalLM;
let memory: MemAgent;
let budgets: BudgetForcing;
let pipeline: OptimizationPipeline;

const TEMPLATE = "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}</s>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'capibara-pipeline-onnx-'));
  ({ dir: modelDir } = await makeTinyModel(join(dir, 'tiny')));
  const configPath = join(modelDir, 'tokenizer_config.json');
  writeFileSync(configPath, JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), chat_template: TEMPLATE }));
  [a, b] = await Promise.all([OnnxCausalLM.load(modelDir, { threads: 1 }), OnnxCausalLM.load(modelDir, { threads: 1 })]);
  memory = new MemAgent({ path: join(dir, 'memory.db'), tokenizer: a, sweepIntervalMs: 0 });
  budgets = new BudgetForcing({ budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 5_000 }], sweepIntervalMs: 60_000 });
  const chatTemplate = ChatTemplate.fromModelDir(modelDir);
  const router = new RewiringExperts({
    experts: [
      { id: 'sql', domain: 'sql', description: 'SQL queries, joins and indexes', keywords: ['sql', 'join', 'index'] },
      { id: 'general', domain: 'general', description: 'Everything else: greetings, small talk, animals', keywords: ['hello', 'capybara'] },
    ],
  });
  pipeline = new OptimizationPipeline({ experts: { sql: { generator: a, chatTemplate }, general: { generator: b, chatTemplate } }, router, memory, budgets });
}, 60_000);

afterAll(async () => {
  await pipeline?.close();
  await memory?.close();
  await budgets?.close();
  await a?.close();
  await b?.close();
  rmSync(dir, { recursive: true, force: true });
});

const stage = (t: PipelineTrace, name: string) => t.stages.find((s) => s.stage === name) as PipelineTrace['stages'][number] & Record<string, unknown>;

describe('the pipeline on the tiny ONNX model', () => {
  it('every stage runs; the budget is committed with the model’s exact counts; the exchange is stored', async () => {
    const r = await pipeline.run({ messages: [{ role: 'user', content: 'my sql join is slow' }], user: 'alice', maxTokens: 12, temperature: 0 });
    expect(r.trace.stages.map((s) => [s.stage, s.status])).toEqual([
      ['routing', 'done'],
      ['memory', 'done'],
      ['budget', 'done'],
      ['generation', 'done'],
      ['store', 'deferred'],
    ]);
    expect(r.expertId).toBe('sql');
    // The same prompt run directly: the pipeline adds nothing to what the model sees or says.
    const prompt = ChatTemplate.fromModelDir(modelDir).render([{ role: 'user', content: 'my sql join is slow' }]);
    expect(prompt).toBe('<|user|>\nmy sql join is slow</s>\n<|assistant|>\n');
    const direct = await a.generate(prompt, { maxTokens: 12, temperature: 0 });
    expect([r.text, r.tokens, r.finishReason, r.promptTokens]).toEqual([direct.text, direct.tokens, direct.finishReason, direct.promptTokens]);
    expect(stage(r.trace, 'budget')).toMatchObject({ committed: direct.promptTokens + direct.tokens });
    const [status] = await budgets.status('alice');
    expect([status!.committed, status!.reserved]).toEqual([direct.promptTokens + direct.tokens, 0]);
    const stored = await r.stored;
    expect(stored.status).toBe('done');
    expect(memory.getMemory(stored.memoryId!)?.content).toBe(`User: my sql join is slow\nAssistant: ${r.text}`);
  });

  it("the next request of the same user retrieves it into the prompt; another user's never", async () => {
    const again = await pipeline.run({ messages: [{ role: 'user', content: 'why is my sql join slow?' }], user: 'alice', maxTokens: 4, temperature: 0 });
    const m = stage(again.trace, 'memory');
    expect(m['items']).toBeGreaterThanOrEqual(1);
    const stored = memory.getMemory((m['ids'] as string[])[0]!)!;
    expect(stored.scope).toEqual({ userId: 'alice' });
    // The prompt the model ran had the memory block as its system message.
    expect(again.promptTokens).toBeGreaterThan(a.countTokens(`<|user|>\nwhy is my sql join slow?</s>\n<|assistant|>\n`) + 10);

    const bob = await pipeline.run({ messages: [{ role: 'user', content: 'why is my sql join slow?' }], user: 'bob', maxTokens: 4, temperature: 0 });
    expect(stage(bob.trace, 'memory')).toMatchObject({ status: 'done', items: 0, ids: [] });
    expect(bob.promptTokens).toBe(a.countTokens(`<|user|>\nwhy is my sql join slow?</s>\n<|assistant|>\n`) + 1);
  });

  it('tokenizes the prompt once: the reservation counts the ids the model is handed, and the answer is the one the text gives', async () => {
    // Expert 'sql' has run a text prompt (the first test): the BOS it adds is known, so from now
    // on the prompt encoded for the reservation goes to the model as ids.
    const template = ChatTemplate.fromModelDir(modelDir);
    for (const content of ['add an index to my sql join', 'sql join order and index choice']) {
      // Both runs from an empty KV cache: a reused prefix changes the logits' last bits.
      a.clearCache();
      const r = await pipeline.run({ messages: [{ role: 'user', content }], user: 'dan', maxTokens: 10, temperature: 0, logprobs: true, memory: false });
      expect(r.expertId).toBe('sql');
      const g = stage(r.trace, 'generation');
      expect(g['encodeMs']).toBeGreaterThan(0);
      const prompt = template.render([{ role: 'user', content }]);
      a.clearCache();
      const direct = await a.generate(prompt, { maxTokens: 10, temperature: 0, logprobs: true });
      expect([r.text, r.tokenIds, r.logprobs, r.promptTokens, r.finishReason]).toEqual([direct.text, direct.tokenIds, direct.logprobs, direct.promptTokens, direct.finishReason]);
      // Reserved: the prompt's tokens by encode(), 4 for special tokens, max_tokens; charged: what the model ran.
      expect(stage(r.trace, 'budget')).toMatchObject({ reserved: a.countTokens(prompt) + 4 + 10, committed: direct.promptTokens + direct.tokens });
      expect(direct.promptTokens).toBeLessThanOrEqual(a.countTokens(prompt) + 4);
    }
  });

  it('routes another query to the other expert, and s1 thinking runs on the model', async () => {
    const r = await pipeline.run({ prompt: 'hello capybara', user: 'carol', maxTokens: 4, temperature: 0, thinking: { maxThinkingTokens: 8 } });
    expect(r.expertId).toBe('general');
    expect(stage(r.trace, 'generation')).toMatchObject({ mode: 'thinking', status: 'done' });
    expect(stage(r.trace, 'generation')['thinkingTokens']).toBeLessThanOrEqual(8);
    expect(stage(r.trace, 'budget')['reserved']).toBe(b.countTokens('hello capybara') + 4 + 8 + 4);
  });
});
