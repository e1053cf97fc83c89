import { connect } from 'node:net';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BudgetForcing,
  ChatTemplate,
  type CompletionsServer,
  createCompletionsServer,
  createPipelineServer,
  MemAgent,
  METRICS,
  OptimizationPipeline,
  ResourceType,
  RewiringExperts,
} from '../src/index';
import { ScriptedGenerator, thinker } from './support/scripted-generator';

// The server through the official openai SDK, as most clients speak to it: chat and
// completions, streaming and not, errors, and /metrics read back as Prometheus exposition.
const closing: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const c of closing.splice(0).reverse()) await c.close();
});

const EXPERTS = [
  { id: 'sql', domain: 'sql', description: 'SQL queries, joins, indexes and query plans', keywords: ['sql', 'join', 'postgres', 'index'] },
  { id: 'python', domain: 'python', description: 'Python code, packages and performance', keywords: ['python', 'pip', 'numpy'] },
];

async function serve(server: CompletionsServer) {
  closing.push(server);
  const { url } = await server.listen(0);
  const sdk = (apiKey = 'none') => new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0 });
  return { url, sdk, server };
}

/** A pipeline of two scripted experts with every stage; `limit` tokens a day per user. */
function pipelineOf(limit = 10_000) {
  const sql = new ScriptedGenerator(() => 'Add an index.');
  const python = new ScriptedGenerator(() => 'Use numpy.');
  const memory = new MemAgent({ sweepIntervalMs: 0 });
  const budgets = new BudgetForcing({ budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit }], sweepIntervalMs: 60_000 });
  const router = new RewiringExperts({ experts: EXPERTS });
  const pipeline = new OptimizationPipeline({ experts: { sql, python }, router, memory, budgets });
  closing.push(memory, budgets, pipeline);
  return { pipeline, sql, python, memory, budgets };
}

/** Parses the Prometheus text format strictly enough to catch a malformed exposition. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') types.set(meta[2]!, meta[3]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line);
    expect(m, `not a sample line: ${line}`).not.toBeNull();
    const family = m![1]!.replace(/_(bucket|sum|count)$/, '');
    expect(types.has(m![1]!) || types.get(family) === 'histogram', `no TYPE for ${m![1]}`).toBe(true);
    samples.set(`${m![1]}${m![2] ?? ''}`, Number(m![3]));
  }
  return samples;
}

describe('chat completions through the openai SDK', () => {
  it('non-streaming: an OpenAI chat.completion with usage', async () => {
    const gen = new ScriptedGenerator(() => 'Hello, human.');
    const { sdk } = await serve(createCompletionsServer(gen, { model: 'tiny' }));
    const chat = await sdk().chat.completions.create({ model: 'tiny', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }], max_tokens: 20 });
    expect(chat.object).toBe('chat.completion');
    expect(chat.id.startsWith('chatcmpl-')).toBe(true);
    expect(chat.model).toBe('tiny');
    expect(chat.choices).toEqual([{ index: 0, message: { role: 'assistant', content: 'Hello, human.' }, logprobs: null, finish_reason: 'stop' }]);
    const prompt = 'system: Be brief.\nuser: Hi\nassistant:';
    expect(gen.calls[0]!.prompt).toBe(prompt);
    expect(chat.usage).toEqual({ prompt_tokens: prompt.length, completion_tokens: 13, total_tokens: prompt.length + 13 });
  });

  it('streaming: the role, a delta per piece, the finish chunk, the usage chunk', async () => {
    const gen = new ScriptedGenerator(() => 'abc');
    const { sdk } = await serve(createCompletionsServer(gen, { model: 'tiny', chatTemplate: new ChatTemplate('{% for m in messages %}[{{ m.content }}]{% endfor %}') }));
    const stream = await sdk().chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.map((c) => [c.object, c.choices.map((x) => [x.delta, x.finish_reason]), c.usage])).toEqual([
      ['chat.completion.chunk', [[{ role: 'assistant', content: '' }, null]], null],
      ['chat.completion.chunk', [[{ content: 'a' }, null]], null],
      ['chat.completion.chunk', [[{ content: 'b' }, null]], null],
      ['chat.completion.chunk', [[{ content: 'c' }, null]], null],
      ['chat.completion.chunk', [[{}, 'stop']], null],
      ['chat.completion.chunk', [], { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 }],
    ]);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(gen.calls[0]!.prompt).toBe('[x]');
  });

  it('max_tokens gives finish_reason length; logprobs in the chat format', async () => {
    const gen = new ScriptedGenerator(() => 'abcdef', { logprob: (_c, t) => -(t + 1) });
    const { sdk } = await serve(createCompletionsServer(gen, { model: 'tiny' }));
    const chat = await sdk().chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 2, logprobs: true });
    expect(chat.choices[0]).toMatchObject({ message: { content: 'ab' }, finish_reason: 'length' });
    expect(chat.choices[0]!.logprobs).toEqual({
      content: [
        { token: 'a', logprob: -1, bytes: [97], top_logprobs: [] },
        { token: 'b', logprob: -2, bytes: [98], top_logprobs: [] },
      ],
    });
  });

  it('errors arrive as the SDK’s APIError with OpenAI’s shape', async () => {
    const { sdk } = await serve(createCompletionsServer(new ScriptedGenerator(() => 'x'), { model: 'tiny' }));
    const err = async (body: object) => {
      try {
        await sdk().chat.completions.create(body as never);
      } catch (e) {
        const x = e as InstanceType<typeof OpenAI.APIError>;
        return [x.status, x.error];
      }
      throw new Error('expected an error');
    };
    expect(await err({ model: 'tiny', messages: [] })).toEqual([400, { message: 'Expected a non-empty array of messages for messages but received Array of length 0', type: 'invalid_request_error', param: 'messages', code: null }]);
    expect(await err({ model: 'tiny', messages: [{ role: 'tool', content: 'x' }] })).toEqual([
      400,
      { message: "Expected one of 'system', 'developer', 'user', 'assistant' for messages[0].role but received 'tool' of type string", type: 'invalid_request_error', param: 'messages', code: null },
    ]);
    expect(await err({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], temperature: 2.5 })).toEqual([
      400,
      { message: 'Expected finite number in [0, 2] for temperature but received 2.5 of type number', type: 'invalid_request_error', param: 'temperature', code: null },
    ]);
    expect(await err({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }] })).toEqual([
      400,
      { message: 'Expected null or [] for tools but received Array of length 1 (this server is tool-free)', type: 'invalid_request_error', param: 'tools', code: null },
    ]);
    expect(await err({ model: 'gpt-4', messages: [{ role: 'user', content: 'x' }] })).toEqual([
      404,
      { message: "The model 'gpt-4' does not exist; this server serves 'tiny'", type: 'invalid_request_error', param: 'model', code: 'model_not_found' },
    ]);
  });

  it('text parts are joined; developer is a system message', async () => {
    const gen = new ScriptedGenerator(() => 'ok');
    const { sdk } = await serve(createCompletionsServer(gen, { model: 'tiny' }));
    await sdk().chat.completions.create({
      model: 'tiny',
      messages: [
        { role: 'developer', content: 'Rules.' },
        { role: 'user', content: [{ type: 'text', text: 'Hel' }, { type: 'text', text: 'lo' }] },
      ],
    });
    expect(gen.calls[0]!.prompt).toBe('system: Rules.\nuser: Hello\nassistant:');
  });
});

describe('completions through the openai SDK', () => {
  it('non-streaming and streaming', async () => {
    const gen = new ScriptedGenerator(() => 'Paris. Then more.');
    const { sdk } = await serve(createCompletionsServer(gen, { model: 'tiny' }));
    const plain = await sdk().completions.create({ model: 'tiny', prompt: 'The capital of France is', max_tokens: 20, stop: ['.'] });
    expect(plain.choices).toEqual([{ index: 0, text: 'Paris', logprobs: null, finish_reason: 'stop', stop_reason: '.' }]);
    expect(plain.usage).toEqual({ prompt_tokens: 24, completion_tokens: 6, total_tokens: 30 });
    const stream = await sdk().completions.create({ model: 'tiny', prompt: 'The capital of France is', max_tokens: 3, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const c of stream) {
      text += c.choices[0]?.text ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect([text, finish]).toEqual(['Par', 'length']);
  });
});

describe('the pipeline behind the server', () => {
  it('API keys pick the user: budgets and memory are per user; the trace comes back when asked', async () => {
    const { pipeline, memory, budgets } = pipelineOf();
    const { sdk } = await serve(createPipelineServer(pipeline, { model: 'capibara', apiKeys: { 'sk-alice': 'alice', 'sk-bob': 'bob' } }));
    const chat = await sdk('sk-alice').chat.completions.create({
      model: 'capibara',
      messages: [{ role: 'user', content: 'My postgres join is slow' }],
      user: 'bob', // ignored: the key says alice
      // @ts-expect-error the capibara extension field, passed through as the SDK passes any extra body field
      capibara: { trace: true },
    });
    const runs = (chat as unknown as { capibara: { runs: Array<{ index: number; expert: string; trace: { stages: Array<{ stage: string; status: string }> } }> } }).capibara.runs;
    expect(runs.map((r) => [r.index, r.expert])).toEqual([[0, 'sql']]);
    // The answer leaves before the exchange is stored (memory.deferStore), so its trace says so.
    expect(runs[0]!.trace.stages.map((s) => `${s.stage}:${s.status}`)).toEqual(['routing:done', 'memory:done', 'budget:done', 'generation:done', 'store:deferred']);
    expect((await budgets.status('alice'))[0]!.committed).toBe(chat.usage!.total_tokens);
    expect((await budgets.status('bob'))[0]!.committed).toBe(0);
    await expect.poll(() => memory.getMetrics().items).toBe(1);
    const err = await sdk('sk-mallory').chat.completions.create({ model: 'capibara', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(401);
  });

  it('a denied budget is a 429 naming the budget; nothing is generated', async () => {
    const { pipeline, sql, python } = pipelineOf(20);
    const { sdk } = await serve(createPipelineServer(pipeline, { model: 'capibara' }));
    const err = (await sdk()
      .completions.create({ model: 'capibara', prompt: 'sql join', max_tokens: 100, user: 'carol' })
      .catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(err.status).toBe(429);
    expect(err.error).toMatchObject({ type: 'insufficient_quota', code: 'budget_exceeded', param: null });
    expect((err.error as { message: string }).message.startsWith("Budget denied for 'carol' (112 tokens asked): ")).toBe(true);
    expect([sql.calls.length, python.calls.length]).toEqual([0, 0]);
  });

  it('multi-round thinking through the extension field; the answer carries reasoning_content', async () => {
    const gen = new ScriptedGenerator(thinker(() => 'let me see</think>', ' 7'));
    const { sdk } = await serve(createCompletionsServer(gen, { model: 'tiny' }));
    const body = { model: 'tiny', messages: [{ role: 'user' as const, content: 'What is 3 + 4?' }], max_tokens: 200, capibara: { multi_round: { max_rounds: 3, answer_max_tokens: 4, max_thinking_tokens: 20 } } };
    const chat = await sdk().chat.completions.create(body as never);
    expect(chat.choices[0]!.message).toEqual({ role: 'assistant', content: '7', reasoning_content: 'let me see' });
    const stream = await sdk().chat.completions.create({ ...body, stream: true } as never);
    const deltas: unknown[] = [];
    for await (const c of stream as AsyncIterable<{ choices: Array<{ delta: unknown }> }>) deltas.push(...c.choices.map((x) => x.delta));
    expect(deltas).toEqual([{ role: 'assistant', content: '' }, { reasoning_content: 'let me see' }, { content: '7' }, {}]);
  });

  it('the extension field is checked key by key', async () => {
    const { sdk } = await serve(createCompletionsServer(new ScriptedGenerator(() => 'x'), { model: 'tiny' }));
    const err = (await sdk()
      .completions.create({ model: 'tiny', prompt: 'p', capibara: { thinking: { max_thinking_tokens: 0 } } } as never)
      .catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect([err.status, err.error]).toEqual([
      400,
      { message: 'Expected integer >= 1 for capibara.thinking.max_thinking_tokens but received 0 of type number', type: 'invalid_request_error', param: 'capibara', code: null },
    ]);
    const unknown = (await sdk()
      .completions.create({ model: 'tiny', prompt: 'p', capibara: { traces: true } } as never)
      .catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect((unknown.error as { message: string }).message).toBe("Unknown field 'traces' in capibara (expected one of: thinking, multi_round, session_id, memory, expert, priority, trace)");
  });
});

describe('limits', () => {
  it("max_tokens past the context, or prompt + max_tokens past it, is a 400 (vLLM's answer)", async () => {
    const { sdk } = await serve(createCompletionsServer(new ScriptedGenerator(() => 'x'), { model: 'tiny', contextLength: 32 }));
    const err = async (body: object, chat = false) => {
      const c = sdk();
      const e = (await (chat ? c.chat.completions.create(body as never) : c.completions.create(body as never)).catch((x: unknown) => x)) as InstanceType<typeof OpenAI.APIError>;
      return [e.status, (e.error as { message: string }).message];
    };
    expect(await err({ model: 'tiny', prompt: 'p', max_tokens: 33 })).toEqual([400, "max_tokens must be at most 32, this model's maximum context length, but the request asks for 33 completion tokens"]);
    expect(await err({ model: 'tiny', prompt: 'twenty characters...', max_tokens: 13 })).toEqual([
      400,
      "This model's maximum context length is 32 tokens. However, you requested 33 tokens (20 in the prompt, 13 in the completion). Please reduce the length of the prompt or completion.",
    ]);
    expect(await err({ model: 'tiny', messages: [{ role: 'user', content: 'hello' }], max_tokens: 30 }, true)).toEqual([
      400,
      "This model's maximum context length is 32 tokens. However, you requested 52 tokens (22 in the messages, 30 in the completion). Please reduce the length of the messages or completion.",
    ]);
    // Without max_tokens a chat gets what the context leaves.
    const chat = await sdk().chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hello' }] });
    expect(chat.usage).toEqual({ prompt_tokens: 22, completion_tokens: 1, total_tokens: 23 });
    const model = await sdk().models.retrieve('tiny');
    expect(model).toMatchObject({ id: 'tiny', object: 'model', owned_by: 'capibara', max_model_len: 32 });
  });

  it('a chat must fit every expert routing may pick, each with its own template and context', async () => {
    // sql renders a long system preamble into a 64-token context; python a bare one into 4,096.
    const sql = { generator: new ScriptedGenerator(() => 'x'), contextLength: 64, chatTemplate: new ChatTemplate(`{{ 'You are a careful SQL expert. ' }}{% for m in messages %}{{ m.content }}{% endfor %}`) };
    const python = { generator: new ScriptedGenerator(() => 'y'), contextLength: 4096, chatTemplate: new ChatTemplate('{% for m in messages %}{{ m.content }}{% endfor %}') };
    const router = new RewiringExperts({ experts: EXPERTS });
    const pipeline = new OptimizationPipeline({ experts: { sql, python }, router });
    closing.push(router, pipeline);
    const { sdk } = await serve(createPipelineServer(pipeline, { model: 'tiny' }));
    const ask = (body: object) => sdk().chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hello there' }], ...body } as never).catch((e: unknown) => e);
    const e = (await ask({ max_tokens: 30 })) as InstanceType<typeof OpenAI.APIError>;
    expect([e.status, (e.error as { message: string }).message]).toEqual([
      400,
      "This model's maximum context length is 64 tokens. However, you requested 71 tokens (41 in the messages, 30 in the completion). Please reduce the length of the messages or completion.",
    ]);
    // Named, the roomy expert takes it; unnamed without max_tokens, the tightest context bounds the answer.
    expect(await ask({ max_tokens: 30, capibara: { expert: 'python' } })).toMatchObject({ usage: { prompt_tokens: 11 } });
    expect(await ask({})).toMatchObject({ usage: { completion_tokens: 1 } });
  });

  it('GET /v1/models/{id}: the model, or 404', async () => {
    const { sdk, url } = await serve(createCompletionsServer(new ScriptedGenerator(() => 'x'), { model: 'org/tiny-1' }));
    expect(await sdk().models.retrieve('org/tiny-1')).toMatchObject({ id: 'org/tiny-1', object: 'model' });
    const list = await sdk().models.list();
    expect(list.data.map((m) => m.id)).toEqual(['org/tiny-1']);
    const res = await fetch(`${url}/v1/models/gpt-4`);
    expect([res.status, await res.json()]).toEqual([
      404,
      { error: { message: "The model 'gpt-4' does not exist; this server serves 'org/tiny-1'", type: 'invalid_request_error', param: 'model', code: 'model_not_found' } },
    ]);
  });
});

describe('GET /metrics', () => {
  it('is Prometheus exposition whose counters move with the requests sent', async () => {
    const { pipeline } = pipelineOf(200);
    const { url, sdk } = await serve(createPipelineServer(pipeline, { model: 'capibara', apiKey: 'k' }));
    const scrape = async () => {
      const res = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer k' } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      return parseExposition(await res.text());
    };
    const before = await scrape();
    // Every metric is declared from the start.
    const text = await (await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer k' } })).text();
    for (const m of METRICS) expect(text).toContain(`# TYPE ${m.name} ${m.type}`);
    expect(before.get('capibara_pipeline_requests_total{outcome="ok"}')).toBeUndefined();

    await sdk('k').chat.completions.create({ model: 'capibara', messages: [{ role: 'user', content: 'sql join' }], user: 'dave', max_tokens: 10 });
    await sdk('k').completions.create({ model: 'capibara', prompt: 'numpy python', user: 'dave', max_tokens: 10 });
    await sdk('k').completions.create({ model: 'capibara', prompt: 'sql', user: 'dave', max_tokens: 500 }).catch(() => undefined);
    const after = await scrape();
    expect(after.get('capibara_pipeline_requests_total{outcome="ok"}')).toBe(2);
    expect(after.get('capibara_pipeline_requests_total{outcome="refused"}')).toBe(1);
    expect(after.get('capibara_routing_decisions_total{expert="sql"}')).toBe(2);
    expect(after.get('capibara_routing_decisions_total{expert="python"}')).toBe(1);
    expect(after.get('capibara_budget_approvals_total{resource="tokens"}')).toBe(2);
    expect(after.get('capibara_budget_denials_total{resource="tokens"}')).toBe(1);
    expect(after.get('capibara_memory_stored_total')).toBe(2);
    expect(after.get('capibara_memory_items')).toBe(2);
    expect(after.get('capibara_llm_generated_tokens_total{expert="sql"}')).toBe(10);
    expect(after.get('capibara_llm_generated_tokens_total{expert="python"}')).toBe(10);
    expect(after.get('capibara_pipeline_stage_duration_seconds_count{stage="generation"}')).toBe(2);
    expect(after.get('capibara_http_requests_total{route="/v1/chat/completions",method="POST",status="200"}')).toBe(1);
    expect(after.get('capibara_http_requests_total{route="/v1/completions",method="POST",status="429"}')).toBe(1);
    expect(after.get('capibara_http_requests_total{route="/metrics",method="GET",status="200"}')).toBe(2);
    expect(after.get('capibara_server_generations_running')).toBe(0);
    // Behind the key, as every path but /health.
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
  });
});

describe('slow clients', () => {
  /** Sends `data` and never more; resolves with what the server answered once it closed the connection. */
  const hang = (url: string, data: string) =>
    new Promise<string>((resolve, reject) => {
      const { hostname, port } = new URL(url);
      const socket = connect(Number(port), hostname, () => socket.write(data));
      let got = '';
      socket.on('data', (c) => (got += c));
      socket.on('error', reject);
      socket.on('close', () => resolve(got));
    });

  it('headers not finished within headersTimeoutMs: 408 and the connection is closed', async () => {
    const { url } = await serve(createCompletionsServer(new ScriptedGenerator(() => 'x'), { model: 'tiny', headersTimeoutMs: 50, requestTimeoutMs: 100 }));
    const answer = await hang(url, 'GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    expect(answer.startsWith('HTTP/1.1 408 ')).toBe(true);
  });

  it('a body not finished within requestTimeoutMs: 408 and the connection is closed; no generation', async () => {
    const gen = new ScriptedGenerator(() => 'x');
    const { url } = await serve(createCompletionsServer(gen, { model: 'tiny', headersTimeoutMs: 50, requestTimeoutMs: 100 }));
    const answer = await hang(url, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt": "p"');
    expect(answer.startsWith('HTTP/1.1 408 ')).toBe(true);
    expect(gen.calls).toEqual([]);
  });

  it('requestTimeoutMs below headersTimeoutMs is refused', () => {
    expect(() => createCompletionsServer(new ScriptedGenerator(() => 'x'), { model: 'tiny', headersTimeoutMs: 500, requestTimeoutMs: 100 })).toThrow(
      new RangeError('Expected integer >= 500 for options.requestTimeoutMs but received 100 of type number'),
    );
  });
});
