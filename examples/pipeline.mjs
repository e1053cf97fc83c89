// The serving pipeline: two experts routed by RewiringExperts, per-user memory (MemAgent in a
// SQLite file), per-user token budgets (BudgetForcing), multi-round thinking on request, all
// behind an OpenAI-compatible server with Prometheus metrics. Builds the tiny test model (random
// weights: the text is noise, the stages are real) and talks to the server over HTTP.
//   node examples/pipeline.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BudgetForcing, CapibaraMetrics, ChatTemplate, createPipelineServer, MemAgent, OnnxCausalLM, OptimizationPipeline, ResourceType, RewiringExperts,
} from '@capibara/core';
import { makeTinyModel } from '@capibara/core/testing';

const tmp = mkdtempSync(join(tmpdir(), 'capibara-pipeline-example-'));
const { dir } = await makeTinyModel(join(tmp, 'tiny'));
const [sqlModel, generalModel] = await Promise.all([OnnxCausalLM.load(dir, { threads: 1 }), OnnxCausalLM.load(dir, { threads: 1 })]);
const chatTemplate = ChatTemplate.fromModelDir(dir);

const metrics = new CapibaraMetrics({ defaultMetrics: true });
const memory = new MemAgent({ path: join(tmp, 'memory.db'), tokenizer: sqlModel });
const budgets = new BudgetForcing({ budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 5_000 }] });
const router = new RewiringExperts({
  experts: [
    { id: 'sql', domain: 'sql', description: 'SQL queries, joins and indexes', keywords: ['sql', 'join', 'index'] },
    { id: 'general', domain: 'general', description: 'Everything else', keywords: ['hello', 'capybara'] },
  ],
});
const pipeline = new OptimizationPipeline({
  experts: { sql: { generator: sqlModel, chatTemplate }, general: { generator: generalModel, chatTemplate } },
  router,
  memory,
  budgets,
  metrics,
  defaults: { maxTokens: 16, temperature: 0 },
});

// In the library: one call, with the trace of every stage.
const r = await pipeline.run({ messages: [{ role: 'user', content: 'My SQL join is slow' }], user: 'alice' });
console.log(`library: ${r.expertId} answered ${JSON.stringify(r.text)}`);
for (const s of r.trace.stages) console.log(`  ${s.stage.padEnd(10)} ${s.status.padEnd(7)} ${s.ms.toFixed(2)} ms ${s.reason ?? ''}`);

// Over HTTP: the API key says who asks (budget and memory scope).
const server = createPipelineServer(pipeline, { model: 'capibara', apiKeys: { 'sk-alice': 'alice' } });
const { url } = await server.listen(0);
const post = (path, body) =>
  fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-alice' }, body: JSON.stringify(body) }).then((x) => x.json());
const chat = await post('/v1/chat/completions', {
  model: 'capibara',
  messages: [{ role: 'user', content: 'Which index did we discuss for the slow join?' }],
  capibara: { trace: true, multi_round: { max_rounds: 2, max_thinking_tokens: 8, answer_max_tokens: 4 } },
  max_tokens: 64,
});
console.log(`\nHTTP: ${JSON.stringify(chat.choices[0].message)}`);
console.log('  stages:', chat.capibara.runs[0].trace.stages.map((s) => `${s.stage}:${s.status}`).join(' '));
const exposition = await (await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer sk-alice' } })).text();
console.log(`\n${exposition.split('\n').filter((l) => l.startsWith('capibara_pipeline_requests_total') || l.startsWith('capibara_memory_retrieved_items_total')).join('\n')}`);

await server.close();
await pipeline.close();
await Promise.all([memory.close(), budgets.close(), router.close(), sqlModel.close(), generalModel.close()]);
rmSync(tmp, { recursive: true, force: true });
