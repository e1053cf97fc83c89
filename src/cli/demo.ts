/**
 * `capibara demo`: the pipeline end to end on embedded defaults — two experts on the tiny local
 * model, memory in a temporary SQLite file, in-process budgets — or on a config file; prints
 * each request's answer and trace as it comes, then the metrics it moved.
 * @module
 * @internal
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BudgetForcing, ResourceType } from '../budget/index';
import { RewiringExperts } from '../experts/routing/index';
import { OnnxCausalLM } from '../llm/index';
import { MemAgent } from '../memory/index';
import { CapibaraMetrics } from '../metrics/index';
import { BudgetRefusedError, buildPipeline, ChatTemplate, loadPipelineConfig, OptimizationPipeline, type PipelineRequest, type PipelineTrace } from '../pipeline/index';
import { ThinkingMode } from '../thinking/index';
import { int, ms, tinyModel, UsageError } from './args';

/** The options of `capibara demo`. */
export interface DemoFlags {
  config?: string;
  maxTokens?: string;
  json?: boolean;
}

/** The requests the demo sends, in order, with what each shows. */
function script(maxTokens: number): Array<{ what: string; request: PipelineRequest }> {
  const chat = (content: string) => [{ role: 'user' as const, content }];
  return [
    { what: 'alice asks a SQL question (routed to the sql expert)', request: { messages: chat('My Postgres join on orders is slow; which index helps?'), user: 'alice', maxTokens } },
    { what: "alice asks again: her first exchange comes back from memory", request: { messages: chat('Which index did we talk about for the slow join?'), user: 'alice', maxTokens } },
    { what: "bob asks the same: alice's memory is never his", request: { messages: chat('Which index did we talk about for the slow join?'), user: 'bob', maxTokens } },
    { what: 'carol says hello (routed to the general expert)', request: { prompt: 'Hello! Tell me about capybaras.', user: 'carol', maxTokens } },
    { what: 'dave asks for s1 thinking bounds: 8 to 24 thinking tokens', request: { prompt: 'How many legs do two capybaras have?', user: 'dave', maxTokens, thinking: { minThinkingTokens: 8, maxThinkingTokens: 24 } } },
    {
      what: 'erin asks for multi-round thinking (Think Twice, at most 3 rounds)',
      request: { prompt: 'What is 17 x 23?', user: 'erin', maxTokens: 120, multiRound: { maxRounds: 3, thinkingMode: ThinkingMode.ADAPTIVE, maxThinkingTokens: 16, answerMaxTokens: 8 } },
    },
    { what: 'frank asks for more than his daily budget: refused before anything is generated', request: { prompt: 'Write a long essay.', user: 'frank', maxTokens: 4000 } },
  ];
}

/** Builds the demo's pipeline (or the config's), runs the script, prints as it goes. */
export async function demo(f: DemoFlags, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const maxTokens = int('--max-tokens', f.maxTokens, 1, 4096) ?? 16;
  const metrics = new CapibaraMetrics();
  const closers: Array<() => Promise<void> | void> = [];
  let pipeline: OptimizationPipeline;
  const say = (s: string) => out.write(`${s}\n`);
  try {
    if (f.config !== undefined) {
      let loaded;
      try {
        loaded = await loadPipelineConfig(f.config);
      } catch (err) {
        if (err instanceof TypeError || err instanceof RangeError) throw new UsageError(`--config ${f.config}: ${err.message}`);
        throw err;
      }
      const built = await buildPipeline(loaded.config, { baseDir: loaded.baseDir, metrics });
      closers.push(() => built.close());
      pipeline = built.pipeline;
      say(`capibara demo: the pipeline of ${f.config} (experts: ${pipeline.expertIds.join(', ')})`);
    } else {
      const { dir, modelDir } = await tinyModel('capibara-demo-');
      closers.push(() => rmSync(dir, { recursive: true, force: true }));
      const [sqlModel, generalModel] = await Promise.all([OnnxCausalLM.load(modelDir, { threads: 1 }), OnnxCausalLM.load(modelDir, { threads: 1 })]);
      closers.push(() => sqlModel.close(), () => generalModel.close());
      const memory = new MemAgent({ path: join(dir, 'memory.db'), tokenizer: sqlModel, sweepIntervalMs: 0 });
      closers.push(() => memory.close());
      const budgets = new BudgetForcing({ budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 2_000 }] });
      closers.push(() => budgets.close());
      const router = new RewiringExperts({
        experts: [
          { id: 'sql', domain: 'sql', description: 'SQL queries, joins, indexes and query plans', keywords: ['sql', 'postgres', 'join', 'index'] },
          { id: 'general', domain: 'general', description: 'Greetings, animals, arithmetic and everything else', keywords: ['hello', 'capybara', 'legs'] },
        ],
      });
      closers.push(() => router.close());
      const chatTemplate = ChatTemplate.fromModelDir(modelDir);
      pipeline = new OptimizationPipeline({
        experts: { sql: { generator: sqlModel, chatTemplate }, general: { generator: generalModel, chatTemplate } },
        router,
        memory,
        budgets,
        metrics,
        defaults: { temperature: 0 },
      });
      say('capibara demo: two experts on the tiny local model (random weights: its text is noise; the stages are real),');
      say(`  memory in ${join(dir, 'memory.db')}, budgets in this process (2,000 tokens a day per user)`);
    }
    closers.push(() => pipeline.close());
    for (const [i, { what, request }] of script(maxTokens).entries()) {
      say(`\n[${i + 1}] ${what}`);
      let trace: PipelineTrace | undefined;
      const onTrace = (t: PipelineTrace) => (trace = t);
      pipeline.on('trace', onTrace);
      try {
        const r = await pipeline.run(request);
        say(`    answer by ${r.expertId}: ${JSON.stringify(r.text.length > 80 ? `${r.text.slice(0, 80)}…` : r.text)} (${r.tokens} tokens, ${r.finishReason})`);
        // The exchange is stored after the answer: the 'trace' event comes once that is done.
        await r.stored;
      } catch (err) {
        say(`    ${err instanceof BudgetRefusedError ? 'refused' : 'failed'}: ${(err as Error).message}`);
      } finally {
        pipeline.off('trace', onTrace);
      }
      if (trace === undefined) continue;
      if (f.json) say(JSON.stringify(trace));
      else for (const s of trace.stages) say(`    ${s.stage.padEnd(10)} ${s.status.padEnd(7)} ${ms(s.ms).padStart(9)}  ${describeStage(s)}`);
      say(`    total ${ms(trace.totalMs)}, of which generation ${ms(trace.generationMs)}; the stages added ${ms(trace.overheadMs)}`);
    }
    const m = pipeline.getMetrics();
    say(`\ncapibara demo: ${m.ok} answered, ${m.refused} refused, ${m.failed} failed; mean overhead of the stages ${ms(m.meanOverheadMs)} per answered request`);
    const text = await metrics.metrics();
    const shown = text.split('\n').filter((l) => /^capibara_(pipeline_requests_total|routing_decisions_total|memory_stored_total|memory_retrieved_items_total|budget_(approvals|denials)_total|budget_committed_tokens_total|thinking_sessions_total|llm_generated_tokens_total)/.test(l));
    say('Prometheus metrics moved (GET /metrics on capibara serve):');
    for (const l of shown) say(`  ${l}`);
    return 0;
  } finally {
    for (const c of closers.reverse()) await c();
  }
}

function describeStage(s: PipelineTrace['stages'][number]): string {
  if (s.status === 'skipped' || s.status === 'failed' || s.status === 'denied') return s.reason ?? '';
  switch (s.stage) {
    case 'routing':
      return `chose ${s.chosen}${s.expertId !== s.chosen ? `, answered by ${s.expertId}` : ''} (${s.strategy})`;
    case 'memory':
      return `${s.items} memories, ${s.tokens} tokens${s.cacheHit ? ' (cached)' : ''}`;
    case 'budget':
      return `${s.requesterId}: reserved ${s.reserved}, ${s.committed !== undefined ? `committed ${s.committed}` : s.released ? 'released' : ''}`;
    case 'generation':
      if (s.mode === 'multi-round') return `${s.expertId}: ${s.rounds} rounds, stopped by ${s.stopReason}, confidence ${s.confidence?.toFixed(2)}, ${s.tokens} tokens`;
      if (s.mode === 'thinking') return `${s.expertId}: ${s.thinkingTokens} thinking tokens, ${s.tokens} tokens in ${s.calls} calls`;
      return `${s.expertId}: ${s.promptTokens} prompt tokens, ${s.tokens} generated`;
    case 'store':
      return `memory ${s.memoryId}`;
    default:
      return '';
  }
}
