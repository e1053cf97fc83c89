import { afterEach, describe, expect, it } from 'vitest';
import {
  BudgetForcing,
  BudgetRefusedError,
  type BudgetTrace,
  CapibaraMetrics,
  ChatTemplate,
  ClosedError,
  EnforcementLevel,
  type GenerateOptions,
  type GenerateResult,
  type Generator,
  type GeneratorPrompt,
  type GenerationTrace,
  MemAgent,
  type MemoryTrace,
  OptimizationPipeline,
  type PipelineTrace,
  ResourceType,
  RewiringExperts,
  type RoutingOutcome,
  type RoutingTrace,
  type StoreTrace,
} from '../src/index';
import { filler, ScriptedGenerator, thinker } from './support/scripted-generator';

// Everything a test opens is closed after it.
const closing: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const c of closing.splice(0).reverse()) await c.close();
});
const keep = <T extends { close(): unknown }>(x: T): T => (closing.push(x), x);

const stage = <S extends PipelineTrace['stages'][number]['stage']>(t: PipelineTrace, name: S) =>
  t.stages.find((s) => s.stage === name) as Extract<PipelineTrace['stages'][number], { stage: S }>;

const EXPERTS = [
  { id: 'sql', domain: 'sql', description: 'SQL queries, joins, indexes and query plans', keywords: ['sql', 'join', 'postgres', 'index'] },
  { id: 'python', domain: 'python', description: 'Python code, packages and performance', keywords: ['python', 'pip', 'numpy'] },
];

function parts(limit = 10_000) {
  const memory = keep(new MemAgent({ sweepIntervalMs: 0 }));
  const budgets = keep(new BudgetForcing({ budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit }], sweepIntervalMs: 60_000 }));
  return { memory, budgets };
}

/** A generator that fails every call, as an unreachable backend does. */
class FailingGenerator implements Generator {
  calls = 0;
  async generate(): Promise<GenerateResult> {
    this.calls++;
    throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
  }
  countTokens(text: string): number {
    return Array.from(text).length;
  }
}

describe('a run through every stage', () => {
  it('routes, retrieves, reserves, generates, commits and stores; the trace lists every stage in order', async () => {
    const sql = new ScriptedGenerator(() => 'Add an index on orders.user_id.');
    const python = new ScriptedGenerator(() => 'Use numpy.');
    const { memory, budgets } = parts();
    const router = new RewiringExperts({ experts: EXPERTS });
    const pipeline = keep(new OptimizationPipeline({ experts: { sql, python }, router, memory, budgets }));
    const traces: PipelineTrace[] = [];
    pipeline.on('trace', (t: PipelineTrace) => traces.push(t));

    const r = await pipeline.run({ prompt: 'My Postgres join is slow', user: 'alice', maxTokens: 40 });
    expect(r).toMatchObject({ text: 'Add an index on orders.user_id.', tokens: 31, finishReason: 'eos', expertId: 'sql', promptTokens: 24 });
    expect(r.trace.stages.map((s) => [s.stage, s.status])).toEqual([
      ['routing', 'done'],
      ['memory', 'done'],
      ['budget', 'done'],
      ['generation', 'done'],
      ['store', 'deferred'],
    ]);
    expect(stage(r.trace, 'routing')).toMatchObject({ chosen: 'sql', expertId: 'sql', attempts: [{ expertId: 'sql', success: true }] });
    expect(stage(r.trace, 'memory')).toMatchObject({ scope: { userId: 'alice' }, items: 0, tokens: 0, ids: [] });
    // Reserved: the prompt (24 tokens), 4 for special tokens the backend may add, and max_tokens;
    // committed: the prompt plus what was generated.
    expect(stage(r.trace, 'budget')).toMatchObject({ requesterId: 'alice', reserved: 24 + 4 + 40, committed: 24 + 31 });
    expect(stage(r.trace, 'generation')).toMatchObject({ mode: 'plain', expertId: 'sql', calls: 1, promptTokens: 24, tokens: 31, finishReason: 'eos' });
    // The store runs after the answer: the run resolved first; `stored` settles with its stage.
    expect(traces).toEqual([]);
    const settled = await r.stored;
    expect(settled).toMatchObject({ stage: 'store', status: 'done' });
    const stored = settled.memoryId!;
    expect(memory.getMemory(stored)).toMatchObject({ content: 'User: My Postgres join is slow\nAssistant: Add an index on orders.user_id.', type: 'episodic', tags: ['exchange'], scope: { userId: 'alice' } });
    const [status] = await budgets.status('alice');
    expect([status!.committed, status!.reserved]).toEqual([55, 0]);
    // The trace event comes once the run has settled, with the store stage settled.
    expect(traces).toEqual([{ ...r.trace, stages: [...r.trace.stages.slice(0, 4), settled] }]);
    expect(r.trace.outcome).toBe('ok');
    expect(r.trace.overheadMs).toBeGreaterThanOrEqual(0);
    expect(router.getMetrics()).toMatchObject({ totalRouted: 1, outcomes: 1, successRate: 1 });
  });

  it("the user's next request retrieves the stored exchange; another user's never does", async () => {
    const gen = new ScriptedGenerator(() => 'Noted.');
    const { memory } = parts();
    const pipeline = keep(new OptimizationPipeline({ experts: { local: gen }, memory }));
    await pipeline.run({ prompt: 'My favourite database is Postgres', user: 'alice', maxTokens: 8 });

    const again = await pipeline.run({ messages: [{ role: 'user', content: 'Which database do I like?' }], user: 'alice', maxTokens: 8 });
    const m = stage(again.trace, 'memory');
    expect([m.status, m.items]).toEqual(['done', 1]);
    // The block is the system message of the chat (the fallback template writes `role: content`).
    expect(gen.calls[1]!.prompt).toBe(
      'system: Relevant memory:\n- User: My favourite database is Postgres Assistant: Noted.\nuser: Which database do I like?\nassistant:',
    );

    const other = await pipeline.run({ prompt: 'Which database do I like?', user: 'bob', maxTokens: 8 });
    expect(stage(other.trace, 'memory')).toMatchObject({ status: 'done', items: 0, scope: { userId: 'bob' } });
    expect(gen.calls[2]!.prompt).toBe('Which database do I like?');
    // Nobody named: memory is neither read nor written.
    const anonymous = await pipeline.run({ prompt: 'Which database do I like?', maxTokens: 8 });
    expect(stage(anonymous.trace, 'memory')).toMatchObject({ status: 'skipped', reason: 'no user: memory is kept per user' });
    expect(stage(anonymous.trace, 'store')).toMatchObject({ status: 'skipped', reason: 'no user: memory is kept per user' });
    expect(gen.calls[3]!.prompt).toBe('Which database do I like?');
    expect((await anonymous.stored).status).toBe('skipped');
    await Promise.all([again.stored, other.stored]);
    expect(memory.getMetrics().items).toBe(3);
  });

  it('a text prompt follows the memory block; session scope reads only that session', async () => {
    const gen = new ScriptedGenerator(() => 'ok');
    const { memory } = parts();
    const pipeline = keep(new OptimizationPipeline({ experts: { local: gen }, memory: { agent: memory, scope: 'session' } }));
    await pipeline.run({ prompt: 'remember teal', user: 'alice', sessionId: 's1', maxTokens: 2 });
    await pipeline.run({ prompt: 'remember teal', user: 'alice', sessionId: 's2', maxTokens: 2 });
    const r = await pipeline.run({ prompt: 'what colour?', user: 'alice', sessionId: 's1', maxTokens: 2 });
    expect(stage(r.trace, 'memory')).toMatchObject({ items: 1, scope: { userId: 'alice', sessionId: 's1' } });
    expect(gen.calls[2]!.prompt).toBe('Relevant memory:\n- User: remember teal Assistant: ok\n\nwhat colour?');
    const none = await pipeline.run({ prompt: 'what colour?', user: 'alice', maxTokens: 2 });
    expect(stage(none.trace, 'memory')).toMatchObject({ status: 'skipped', reason: 'no session: memory is kept per session' });
  });

  it('stages without a part are skipped and say why', async () => {
    const pipeline = keep(new OptimizationPipeline({ experts: { local: new ScriptedGenerator(() => 'x') } }));
    const r = await pipeline.run({ prompt: [1, 2, 3], maxTokens: 1 });
    expect(r.trace.stages.map((s) => [s.stage, s.status, s.reason])).toEqual([
      ['routing', 'skipped', 'no router'],
      ['memory', 'skipped', 'no memory stage'],
      ['budget', 'skipped', undefined],
      ['generation', 'done', undefined],
      ['store', 'skipped', 'no memory stage'],
    ]);
    expect(r.promptTokens).toBe(3);
  });
});

describe('the store after the answer', () => {
  /** Holds every storeMemory call of `memory` until the returned function is called. */
  function holdStores(memory: MemAgent): () => void {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const store = memory.storeMemory.bind(memory);
    memory.storeMemory = async (...args: Parameters<MemAgent['storeMemory']>) => {
      await held;
      return store(...args);
    };
    return release;
  }

  it("resolves before the store; the same user's next run waits for it, another user's does not", async () => {
    const gen = new ScriptedGenerator(() => 'Noted.');
    const { memory } = parts();
    const pipeline = keep(new OptimizationPipeline({ experts: { local: gen }, memory }));
    const release = holdStores(memory);
    const first = await pipeline.run({ prompt: 'My favourite database is Postgres', user: 'alice', maxTokens: 8 });
    expect(stage(first.trace, 'store')).toEqual({ stage: 'store', status: 'deferred', ms: 0 });
    expect(memory.getMetrics().items).toBe(0);
    // Bob is not held by Alice's store.
    const bob = await pipeline.run({ prompt: 'Which database do I like?', user: 'bob', maxTokens: 8 });
    expect(stage(bob.trace, 'memory')).toMatchObject({ status: 'done', items: 0 });
    // Alice's next run waits in its memory stage until her exchange is stored, then retrieves it.
    const again = pipeline.run({ prompt: 'Which database do I like?', user: 'alice', maxTokens: 8 });
    await new Promise((r) => setTimeout(r, 20));
    expect(gen.calls.length).toBe(2);
    release();
    const r = await again;
    expect(stage(r.trace, 'memory')).toMatchObject({ status: 'done', items: 1 });
    expect(gen.calls[2]!.prompt).toBe('Relevant memory:\n- User: My favourite database is Postgres Assistant: Noted.\n\nWhich database do I like?');
    expect((await first.stored).status).toBe('done');
  });

  it('a failed store: `stored` and the trace event say why, the error goes to the error listeners, the answer stands', async () => {
    const { memory } = parts();
    const pipeline = keep(new OptimizationPipeline({ experts: { local: new ScriptedGenerator(() => 'ok') }, memory }));
    const boom = new Error('disk full');
    memory.storeMemory = () => Promise.reject(boom);
    const errors: unknown[] = [];
    const traces: PipelineTrace[] = [];
    pipeline.on('error', (e: unknown) => errors.push(e));
    pipeline.on('trace', (t: PipelineTrace) => traces.push(t));
    const r = await pipeline.run({ prompt: 'hi', user: 'alice', maxTokens: 2 });
    expect(r.text).toBe('ok');
    expect(await r.stored).toMatchObject({ status: 'failed', reason: 'disk full' });
    expect(errors).toEqual([boom]);
    expect(stage(traces[0]!, 'store')).toMatchObject({ status: 'failed', reason: 'disk full' });
    expect(pipeline.getMetrics()).toMatchObject({ ok: 1, failed: 0 });
  });

  it('close() waits for the stores in progress', async () => {
    const { memory } = parts();
    const pipeline = new OptimizationPipeline({ experts: { local: new ScriptedGenerator(() => 'ok') }, memory });
    const release = holdStores(memory);
    const r = await pipeline.run({ prompt: 'hi', user: 'alice', maxTokens: 2 });
    let closed = false;
    const closing = pipeline.close().then(() => (closed = true));
    await new Promise((res) => setTimeout(res, 20));
    expect(closed).toBe(false);
    release();
    await closing;
    expect((await r.stored).status).toBe('done');
    expect(memory.getMetrics().items).toBe(1);
  });

  it('deferStore: false stores before the run resolves', async () => {
    const { memory } = parts();
    const pipeline = keep(new OptimizationPipeline({ experts: { local: new ScriptedGenerator(() => 'ok') }, memory: { agent: memory, deferStore: false } }));
    const traces: PipelineTrace[] = [];
    pipeline.on('trace', (t: PipelineTrace) => traces.push(t));
    const r = await pipeline.run({ prompt: 'hi', user: 'alice', maxTokens: 2 });
    expect(stage(r.trace, 'store').status).toBe('done');
    expect(memory.getMetrics().items).toBe(1);
    expect(traces).toEqual([r.trace]);
    expect(await r.stored).toEqual(stage(r.trace, 'store'));
  });
});

describe('failures', () => {
  it('a failing expert: the fallback answers and both outcomes are recorded with the router', async () => {
    const sql = keep({ gen: new FailingGenerator(), close() {} }).gen;
    const python = new ScriptedGenerator(() => 'fallback answer');
    const { budgets } = parts();
    const router = new RewiringExperts({ experts: EXPERTS });
    const outcomes: Array<RoutingOutcome & { expertId: string }> = [];
    router.on('outcome', (_id: string, o: RoutingOutcome & { expertId: string }) => outcomes.push(o));
    const pipeline = keep(new OptimizationPipeline({ experts: { sql, python }, router, budgets }));
    const r = await pipeline.run({ prompt: 'slow sql join on postgres', user: 'alice', maxTokens: 20 });
    expect([r.text, r.expertId]).toEqual(['fallback answer', 'python']);
    const routing = stage(r.trace, 'routing');
    expect(routing).toMatchObject({ status: 'done', chosen: 'sql', expertId: 'python' });
    expect(routing.attempts.map((a) => [a.expertId, a.success, a.error])).toEqual([
      ['sql', false, 'connect ECONNREFUSED 127.0.0.1:9'],
      ['python', true, undefined],
    ]);
    expect(outcomes.map((o) => [o.expertId, o.success])).toEqual([
      ['sql', false],
      ['python', true],
    ]);
    expect(sql.calls).toBe(1);
    // One reservation for the request, committed once with what was generated.
    expect(stage(r.trace, 'budget')).toMatchObject({ status: 'done', committed: 25 + 15 });
  });

  it('every expert failing: the run fails, the reservation is released, nothing is stored', async () => {
    const { memory, budgets } = parts();
    const router = new RewiringExperts({ experts: EXPERTS });
    const pipeline = keep(new OptimizationPipeline({ experts: { sql: new FailingGenerator(), python: new FailingGenerator() }, router, memory, budgets }));
    let trace: PipelineTrace | undefined;
    pipeline.on('trace', (t: PipelineTrace) => (trace = t));
    await expect(pipeline.run({ prompt: 'sql join', user: 'alice', maxTokens: 5 })).rejects.toThrow(
      'RewiringExperts.routeWithFallback: every expert tried failed (sql: connect ECONNREFUSED 127.0.0.1:9; python: connect ECONNREFUSED 127.0.0.1:9)',
    );
    expect(trace!.outcome).toBe('failed');
    expect(stage(trace!, 'routing').status).toBe('failed');
    expect(stage(trace!, 'budget')).toMatchObject({ status: 'done', released: true });
    expect(stage(trace!, 'generation').status).toBe('failed');
    expect(stage(trace!, 'store')).toMatchObject({ status: 'skipped', reason: 'failed: nothing to store' });
    const [status] = await budgets.status('alice');
    expect([status!.committed, status!.reserved]).toEqual([0, 0]);
    expect(memory.getMetrics().items).toBe(0);
  });

  it('a denied budget: a clear refusal, nothing generated, nothing reserved afterwards', async () => {
    const gen = new ScriptedGenerator(() => 'never');
    const { memory, budgets } = parts(50);
    const pipeline = keep(new OptimizationPipeline({ experts: { local: gen }, memory, budgets }));
    let trace: PipelineTrace | undefined;
    pipeline.on('trace', (t: PipelineTrace) => (trace = t));
    const run = pipeline.run({ prompt: 'a prompt of 24 tokens...', user: 'alice', maxTokens: 40 });
    await expect(run).rejects.toBeInstanceOf(BudgetRefusedError);
    const err = (await run.catch((e: unknown) => e)) as BudgetRefusedError;
    expect(err.message.startsWith("Budget denied for 'alice' (68 tokens asked): ")).toBe(true);
    expect(err.decision.approved).toBe(false);
    expect([err.requesterId, err.amount]).toEqual(['alice', 68]);
    expect(gen.calls).toEqual([]);
    expect(trace!.outcome).toBe('refused');
    expect(stage(trace!, 'budget')).toMatchObject({ status: 'denied', reserved: 68, reason: err.decision.message });
    expect(stage(trace!, 'generation')).toMatchObject({ status: 'skipped', reason: 'refused before generation' });
    expect(stage(trace!, 'store')).toMatchObject({ status: 'skipped', reason: 'refused: nothing to store' });
    const [status] = await budgets.status('alice');
    expect([status!.committed, status!.reserved]).toEqual([0, 0]);
    expect(memory.getMetrics().items).toBe(0);
    // The same user within budget is served.
    await expect(pipeline.run({ prompt: 'short', user: 'alice', maxTokens: 5 })).resolves.toMatchObject({ text: 'never' });
  });

  it('an abort mid-generation: the run rejects with the reason and the reservation is released', async () => {
    const controller = new AbortController();
    const gen = new ScriptedGenerator(() => 'a long answer', { beforeToken: (_call, token) => void (token === 3 && controller.abort(new Error('client left'))) });
    const { budgets } = parts();
    const pipeline = keep(new OptimizationPipeline({ experts: { local: gen }, budgets }));
    let trace: PipelineTrace | undefined;
    pipeline.on('trace', (t: PipelineTrace) => (trace = t));
    await expect(pipeline.run({ prompt: 'hello', user: 'alice', maxTokens: 20 }, { signal: controller.signal })).rejects.toThrow('client left');
    expect(trace!.outcome).toBe('aborted');
    expect(stage(trace!, 'budget')).toMatchObject({ status: 'done', reserved: 29, released: true });
    expect(stage(trace!, 'budget').committed).toBeUndefined();
    const [status] = await budgets.status('alice');
    expect([status!.committed, status!.reserved]).toEqual([0, 0]);
    expect(gen.calls[0]!.options.signal!.aborted).toBe(true);
  });

  it('an expert failing after streaming began is not handed to another expert', async () => {
    let calls = 0;
    const sql: Generator = {
      async generate(_p: GeneratorPrompt, o: GenerateOptions) {
        calls++;
        o.onToken?.('partial ');
        throw new Error('connection reset');
      },
      countTokens: (t: string) => t.length,
    };
    const python = new ScriptedGenerator(() => 'other');
    const pipeline = keep(new OptimizationPipeline({ experts: { sql, python }, router: new RewiringExperts({ experts: EXPERTS }) }));
    const pieces: string[] = [];
    await expect(pipeline.run({ prompt: 'sql join index', maxTokens: 5 }, { onToken: (p) => pieces.push(p) })).rejects.toThrow('connection reset');
    expect([calls, python.calls.length, pieces]).toEqual([1, 0, ['partial ']]);
  });

  it("a turn that cannot be had fails the run and is not held against the expert", async () => {
    const router = new RewiringExperts({ experts: EXPERTS });
    const pipeline = keep(new OptimizationPipeline({ experts: { sql: new ScriptedGenerator(() => 'x'), python: new ScriptedGenerator(() => 'y') }, router }));
    const busy = new Error('busy');
    await expect(pipeline.run({ prompt: 'sql join', maxTokens: 1 }, { turn: () => Promise.reject(busy) })).rejects.toBe(busy);
    expect(router.getMetrics()).toMatchObject({ totalRouted: 1, outcomes: 0 });
  });

  it('turns wrap every generate call', async () => {
    const events: string[] = [];
    const gen = new ScriptedGenerator(() => 'ab');
    const pipeline = keep(new OptimizationPipeline({ experts: { local: gen } }));
    const turn = async (id: string) => {
      events.push(`enter ${id} (calls so far ${gen.calls.length})`);
      return () => events.push(`leave ${id} (calls so far ${gen.calls.length})`);
    };
    await pipeline.run({ prompt: 'p', maxTokens: 2 }, { turn });
    expect(events).toEqual(['enter local (calls so far 0)', 'leave local (calls so far 1)']);
  });

  it('close() aborts runs in flight with ClosedError; later runs are refused', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const gen = new ScriptedGenerator(() => 'xyz', { beforeToken: (_c, t) => (t === 1 ? held : undefined) });
    const pipeline = new OptimizationPipeline({ experts: { local: gen } });
    const run = pipeline.run({ prompt: 'p', maxTokens: 3 });
    await expect.poll(() => gen.calls.length).toBe(1);
    const closed = pipeline.close();
    release();
    await expect(run).rejects.toBeInstanceOf(ClosedError);
    await closed;
    expect(pipeline.getMetrics()).toMatchObject({ runs: 1, aborted: 1, ok: 0 });
    await expect(pipeline.run({ prompt: 'p' })).rejects.toThrow('OptimizationPipeline is closed');
  });
});

describe('thinking', () => {
  it('s1 bounds: thinking then the answer; the budget covers and commits every token', async () => {
    const gen = new ScriptedGenerator(thinker((round) => `${filler(6, round)}</think>`));
    const { budgets } = parts();
    const pipeline = keep(new OptimizationPipeline({ experts: { local: gen }, budgets }));
    const r = await pipeline.run({ prompt: 'Q?', user: 'alice', maxTokens: 5, thinking: { minThinkingTokens: 16, maxThinkingTokens: 40 } });
    expect(r.text).toBe(' 42');
    expect(r.thinking).toBe('aaaaaaWaitbbbbbb');
    const g = stage(r.trace, 'generation') as GenerationTrace;
    // Thinking: 6 + 8 (the suppressed </think> is charged) + 4 ('Wait', appended) + 6 + 8.
    expect(g).toMatchObject({ mode: 'thinking', calls: 3, thinkingTokens: 32 });
    // Generated: both thinking calls and the 3 answer tokens; 'Wait' was appended, not generated.
    expect(r.tokens).toBe(14 + 14 + 3);
    expect(g.tokens).toBe(r.tokens);
    const b = stage(r.trace, 'budget') as BudgetTrace;
    expect(b.reserved).toBe(2 + 4 + 40 + 5);
    expect(b.committed).toBe(2 + r.tokens);
  });

  it('multi-round: a Think Twice session whose budget is maxTokens; the trace has rounds, confidence and modes', async () => {
    const gen = new ScriptedGenerator(thinker(() => 'hmm</think>', ' 7'));
    const pipeline = keep(new OptimizationPipeline({ experts: { local: gen } }));
    const r = await pipeline.run({ prompt: 'What is 3 + 4?', maxTokens: 200, multiRound: { maxRounds: 3, maxThinkingTokens: 20, answerMaxTokens: 4 } });
    expect(r.text).toBe('7');
    const g = stage(r.trace, 'generation') as GenerationTrace;
    expect(g).toMatchObject({ mode: 'multi-round', rounds: 2, stopReason: 'agreement', confidence: 1, modes: { none: 2 } });
    expect(g.tokens).toBe(r.tokens);
    expect(gen.calls[0]!.prompt).toBe('What is 3 + 4?\n<think>');
  });
});

describe('chat templates', () => {
  it('renders the expert template; a BOS the template writes first is left to the backend', () => {
    const t = ChatTemplate.fromTokenizerConfig({
      bos_token: '<s>',
      eos_token: { content: '</s>' },
      chat_template: "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
    });
    expect(t.render([{ role: 'user', content: 'Hi' }])).toBe('<|user|>Hi</s><|assistant|>');
    expect(t.render([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: false })).toBe('<|user|>Hi</s>');
    expect(t.isFallback).toBe(false);
    expect(ChatTemplate.fromTokenizerConfig({}).isFallback).toBe(true);
    expect(ChatTemplate.fromTokenizerConfig({ chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'default', template: 'D' }] }).render([{ role: 'user', content: '' }])).toBe('D');
  });

  it('refuses bad messages and templates, naming the field', () => {
    const t = new ChatTemplate(ChatTemplate.FALLBACK_SOURCE);
    expect(() => t.render([])).toThrow(new RangeError('Expected a non-empty array of messages for messages but received Array of length 0'));
    expect(() => t.render([{ role: 'tool', content: 'x' }] as never)).toThrow(new RangeError("Expected one of 'system', 'user', 'assistant' for messages[0].role but received 'tool' of type string"));
    expect(() => new ChatTemplate('{% for %}')).toThrow(SyntaxError);
    expect(() => new ChatTemplate("{{ raise_exception('no system role') }}").render([{ role: 'system', content: 'x' }])).toThrow(
      'The chat template failed to render: no system role',
    );
  });
});

describe('checks', () => {
  const gen = new ScriptedGenerator(() => 'x');
  it.each<[unknown, Error]>([
    [undefined, new TypeError('Expected an options object for options but received undefined')],
    [{ experts: {} }, new RangeError('Expected at least one expert for options.experts but received object')],
    [{ experts: { a: {} } }, new TypeError('Expected a Generator (an object with generate and countTokens methods) for options.experts.a.generator but received undefined')],
    [{ experts: { a: gen }, memroy: {} }, new TypeError("Unknown option 'memroy' in options (expected one of: experts, router, memory, budgets, thinking, defaults, metrics)")],
    [{ experts: { a: gen }, defaults: { expert: 'b' } }, new RangeError("Expected one of 'a' for options.defaults.expert but received 'b' of type string")],
    [{ experts: { a: gen }, defaults: { temperature: 3 } }, new RangeError('Expected finite number in [0, 2] for options.defaults.temperature but received 3 of type number')],
    [{ experts: { a: gen }, memory: { contextTokens: 5 } }, new TypeError('Expected a MemAgent for options.memory.agent but received undefined')],
    [{ experts: { python: gen }, router: new RewiringExperts({ experts: EXPERTS }) }, new RangeError("Expected every expert of options.router to be a key of options.experts but 'sql' is not (experts: 'python')")],
  ])('options %#', (options, error) => {
    expect(() => new OptimizationPipeline(options as never)).toThrow(error);
  });

  it.each<[unknown, Error]>([
    [{}, new TypeError('Expected exactly one of request.prompt and request.messages but received neither')],
    [{ prompt: 'a', messages: [] }, new TypeError('Expected exactly one of request.prompt and request.messages but received both')],
    [{ prompt: 'a', maxTokens: -1 }, new RangeError('Expected integer >= 0 for request.maxTokens but received -1 of type number')],
    [{ prompt: 'a', temperature: 2.5 }, new RangeError('Expected finite number in [0, 2] for request.temperature but received 2.5 of type number')],
    [{ prompt: 'a', expert: 'b' }, new RangeError("Expected one of 'a' for request.expert but received 'b' of type string")],
    [{ prompt: [1, 2], thinking: {} }, new TypeError('Expected a text prompt or messages for request.thinking but received token ids in request.prompt')],
    [{ prompt: 'a', maxTokens: 0, multiRound: {} }, new RangeError('Expected integer >= 1 with request.multiRound for request.maxTokens but received 0 of type number')],
    [{ prompt: 'a', thinking: { maxThinkingTokens: 5, minThinkingTokens: 6 } }, new RangeError('Expected integer in [0, 5] for request.thinking.minThinkingTokens but received 6 of type number')],
    [{ messages: [{ role: 'user' }] }, new TypeError('Expected string for request.messages[0].content but received undefined')],
    [{ prompt: 'a', usr: 'x' }, new TypeError("Unknown option 'usr' in request (expected one of: prompt, messages, user, sessionId, maxTokens, stop, temperature, topP, seed, logprobs, thinking, multiRound, memory, expert, routingContext, priority)")],
  ])('request %#', async (request, error) => {
    const pipeline = keep(new OptimizationPipeline({ experts: { a: gen } }));
    await expect(pipeline.run(request as never)).rejects.toThrow(error);
  });
});

describe('metrics', () => {
  it('pipeline.metrics records every run, and the parts through their events', async () => {
    const metrics = keep(new CapibaraMetrics());
    const { memory, budgets } = parts(100);
    const router = new RewiringExperts({ experts: EXPERTS });
    const pipeline = keep(
      new OptimizationPipeline({ experts: { sql: new FailingGenerator(), python: new ScriptedGenerator(() => 'ok') }, router, memory, budgets, metrics }),
    );
    expect(pipeline.metrics).toBe(metrics);
    await pipeline.run({ prompt: 'sql join', user: 'u', maxTokens: 5 });
    await pipeline.run({ prompt: 'sql join', user: 'u', maxTokens: 500 }).catch(() => undefined);
    const text = await metrics.metrics();
    const value = (line: string) => Number(text.split('\n').find((l) => l.startsWith(`${line} `))?.split(' ')[1]);
    expect(value('capibara_pipeline_requests_total{outcome="ok"}')).toBe(1);
    expect(value('capibara_pipeline_requests_total{outcome="refused"}')).toBe(1);
    expect(value('capibara_routing_fallbacks_total{expert="python"}')).toBe(1);
    expect(value('capibara_routing_outcomes_total{expert="sql",result="failure"}')).toBe(1);
    expect(value('capibara_routing_outcomes_total{expert="python",result="success"}')).toBe(1);
    expect(value('capibara_budget_approvals_total{resource="tokens"}')).toBe(1);
    expect(value('capibara_budget_denials_total{resource="tokens"}')).toBe(1);
    expect(value('capibara_budget_committed_tokens_total')).toBe(8 + 2);
    expect(value('capibara_memory_stored_total')).toBe(1);
    expect(value('capibara_memory_items')).toBe(1);
    expect(value('capibara_llm_generated_tokens_total{expert="python"}')).toBe(2);
    expect(value('capibara_pipeline_stages_total{stage="budget",status="denied"}')).toBe(1);
    expect(value('capibara_memory_searches_total{cache="miss"}')).toBe(2);
  });
});
