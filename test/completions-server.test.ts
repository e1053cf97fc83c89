import { connect } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';

import {
  type CompletionsServer,
  type CompletionsServerOptions,
  type GenerateOptions,
  type Generator,
  type GeneratorPrompt,
  OpenAICompatibleGenerator,
  createCompletionsServer,
} from '../src/index';
import { type Script, ScriptedGenerator, type ScriptedGeneratorOptions } from './support/scripted-generator';

// Bodies must say they are JSON (415 otherwise).
const JSON_TYPE = { 'content-type': 'application/json' };

// Every server a test starts is closed after it, whatever the test did.
const servers: CompletionsServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const MODEL = 'tiny';

async function start(generator: Generator, options: Partial<CompletionsServerOptions> = {}) {
  const server = createCompletionsServer(generator, { model: MODEL, ...options });
  servers.push(server);
  const { url } = await server.listen(0);
  const client = (extra: object = {}) => new OpenAICompatibleGenerator({ baseURL: url, model: MODEL, maxRetries: 0, ...extra });
  const post = (body: unknown, init: RequestInit = {}) =>
    fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), ...init });
  return { server, url, client, post };
}

function scripted(script: Script | string, opts: ScriptedGeneratorOptions = {}): ScriptedGenerator {
  return new ScriptedGenerator(typeof script === 'string' ? () => script : script, opts);
}

/** Resolves when `signal` aborts. */
const untilAborted = (signal: AbortSignal | undefined) =>
  new Promise<void>((resolve) => (signal!.aborted ? resolve() : signal!.addEventListener('abort', () => resolve(), { once: true })));

/** The `data:` payloads of a server-sent-event body, JSON-parsed except `[DONE]`. */
function events(body: string): unknown[] {
  expect(body.endsWith('\n\n')).toBe(true);
  return body
    .split('\n\n')
    .filter((e) => e !== '')
    .map((e) => {
      expect(e.startsWith('data: ')).toBe(true);
      const data = e.slice(6);
      return data === '[DONE]' ? data : JSON.parse(data);
    });
}

const badRequest = (message: string, param: string | null) => ({ error: { message, type: 'invalid_request_error', param, code: null } });

describe('through the real client', () => {
  const SCRIPT = 'Paris is nice. Really nice.';
  it.each<[string, GeneratorPrompt, GenerateOptions]>([
    ['stop string', 'The capital of France?', { maxTokens: 40, stop: ['.'] }],
    ['earliest of several stops, one spanning tokens', 'Q', { maxTokens: 40, stop: ['Really', 's n'] }],
    ['eos', 'Q', { maxTokens: 40 }],
    ['length', 'Q', { maxTokens: 5, stop: ['.'] }],
    ['token-id prompt and sampling fields', [81, 63], { maxTokens: 40, stop: ['y'], temperature: 0.5, topP: 0.9, seed: 7 }],
  ])('%s: streaming and non-streaming give what the generator gives', async (_name, prompt, options) => {
    const gen = scripted(SCRIPT);
    const { client } = await start(gen);
    const { tokenIds: _ids, ...direct } = await scripted(SCRIPT).generate(prompt, options);
    const plain = await client().generate(prompt, options);
    const pieces: string[] = [];
    const streamed = await client().generate(prompt, { ...options, onToken: (p) => pieces.push(p) });
    expect(plain).toEqual(direct);
    expect(streamed).toEqual(direct);
    expect(pieces.join('')).toBe(direct.text);
    // The server passed the request's options on, with its own abort signal.
    const seen = gen.calls[0]!;
    expect(seen.prompt).toBe(typeof prompt === 'string' ? prompt : String.fromCodePoint(...prompt));
    const { signal, ...rest } = seen.options;
    expect(rest).toEqual(options);
    expect(signal).toBeInstanceOf(AbortSignal);
  });

  it('countTokens goes through POST /tokenize', async () => {
    const { client, url } = await start(scripted(''));
    expect(await client().countTokens('héllo 🦫')).toBe(7);
    const res = await fetch(`${url}/tokenize`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ prompt: 'ab' }) });
    expect(await res.json()).toEqual({ count: 2, tokens: [97, 98] });
    const llamaCpp = await fetch(`${url}/tokenize`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ content: 'abc' }) });
    expect(await llamaCpp.json()).toEqual({ count: 3, tokens: [97, 98, 99] });
    const special = await fetch(`${url}/tokenize`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ prompt: 'a', add_special_tokens: true }) });
    expect([special.status, await special.json()]).toEqual([
      400,
      badRequest('Expected false for add_special_tokens but received true of type boolean (tokens are counted without special tokens)', 'add_special_tokens'),
    ]);
    const none = await fetch(`${url}/tokenize`, { method: 'POST', headers: JSON_TYPE, body: '{}' });
    expect(await none.json()).toEqual(badRequest('Expected string for prompt but received undefined', 'prompt'));
  });

  it('aborting the client aborts the generation on the server', async () => {
    let gen: ScriptedGenerator;
    let sawAbort!: Promise<void>;
    gen = scripted('abcdef', {
      // Token 1 waits until the server aborts the generation, so only 'a' goes out.
      beforeToken: (call, token) => (token === 1 ? (sawAbort = untilAborted(gen.calls[call]!.options.signal)) : undefined),
    });
    const { client, server } = await start(gen);
    const controller = new AbortController();
    const r = await client().generate('p', { maxTokens: 10, signal: controller.signal, onToken: () => controller.abort() });
    expect(r).toEqual({ text: 'a', tokens: 1, finishReason: 'abort' });
    await sawAbort;
    expect(gen.calls[0]!.options.signal!.aborted).toBe(true);
    await vi.waitFor(() => expect(server.running).toBe(0));
  });

  it('a client timeout aborts the generation on the server', async () => {
    let gen: ScriptedGenerator;
    let sawAbort!: Promise<void>;
    gen = scripted('abc', { beforeToken: (call) => (sawAbort = untilAborted(gen.calls[call]!.options.signal)) });
    const { client, url } = await start(gen);
    await expect(client({ timeoutMs: 200 }).generate('p', { maxTokens: 3 })).rejects.toThrow(`POST ${url}/v1/completions timed out after 200 ms`);
    await sawAbort;
    expect(gen.calls).toHaveLength(1);
  });

  it('a generator error is a 500, or an error event mid-stream', async () => {
    const failing: Generator = {
      async generate(_p, o) {
        o.onToken?.('partial');
        throw new Error('boom');
      },
      countTokens: () => 0,
    };
    const { client, url } = await start(failing);
    await expect(client().generate('p', { maxTokens: 3 })).rejects.toMatchObject({
      status: 500,
      body: JSON.stringify({ error: { message: 'Generation failed: boom', type: 'server_error', param: null, code: null } }),
    });
    const pieces: string[] = [];
    await expect(client().generate('p', { maxTokens: 3, onToken: (p) => pieces.push(p) })).rejects.toThrow(
      `Malformed response from POST ${url}/v1/completions: stream event reports an error: {"message":"Generation failed: boom","type":"server_error","param":null,"code":null}`,
    );
    expect(pieces).toEqual(['partial']);
  });

  it('a bad prompt count from countTokens is a 500', async () => {
    const gen = scripted('ok');
    gen.countTokens = () => -1;
    const { post } = await start(gen);
    const res = await post({ prompt: 'p' });
    expect([res.status, await res.json()]).toEqual([
      500,
      { error: { message: "Generation failed: Counting the prompt's tokens failed: Expected integer >= 0 for countTokens() result but received -1 of type number", type: 'server_error', param: null, code: null } },
    ]);
  });

  it("a generator's RangeError (bad input it caught) is a 400", async () => {
    const { post } = await start(scripted('x'));
    // The scripted tokenizer's ids are code points: 2^21 is none.
    const res = await post({ prompt: [2 ** 21], stream: true });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual(badRequest('Invalid code point 2097152', null));
  });
});

describe('load shedding', () => {
  it('one generation at a time; past maxQueue a 503 with Retry-After: 1, which the client retries', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const gen = scripted((p) => p.toUpperCase(), {
      beforeToken: (call, token) => {
        if (call !== 0 || token !== 0) return undefined;
        started();
        return gate;
      },
    });
    const { client, server, post } = await start(gen, { maxQueue: 1 });
    let refused = 0;
    server.httpServer.on('request', (_req, res) =>
      res.on('finish', () => {
        // The retrying client's first attempt was refused: let the queue drain.
        if (res.statusCode === 503 && ++refused === 2) open();
      }),
    );
    const a = client().generate('a', { maxTokens: 5 });
    await running;
    const b = client().generate('b', { maxTokens: 5, onToken: () => {} });
    await vi.waitFor(() => expect(server.waiting).toBe(1));
    expect(server.running).toBe(1);

    const res = await post({ prompt: 'c' });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toEqual({
      error: { message: 'The server is busy: 1 generation running and 1 waiting (maxQueue 1); retry later', type: 'server_error', param: null, code: null },
    });

    const d = client({ maxRetries: 2 }).generate('d', { maxTokens: 5 });
    expect(await Promise.all([a, b, d])).toEqual([
      { text: 'A', tokens: 1, finishReason: 'eos' },
      { text: 'B', tokens: 1, finishReason: 'eos' },
      { text: 'D', tokens: 1, finishReason: 'eos' },
    ]);
    expect(refused).toBe(2);
    expect(gen.calls.map((c) => c.prompt)).toEqual(['a', 'b', 'd']);
    expect([server.running, server.waiting]).toEqual([0, 0]);
  });

  it('a client that leaves the queue is never generated for', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const gen = scripted('x', { beforeToken: (call, token) => (call === 0 && token === 0 ? gate : undefined) });
    const { client, server } = await start(gen);
    const a = client().generate('a', { maxTokens: 1 });
    await vi.waitFor(() => expect(server.running).toBe(1));
    const controller = new AbortController();
    const b = client().generate('b', { maxTokens: 1, signal: controller.signal });
    await vi.waitFor(() => expect(server.waiting).toBe(1));
    controller.abort();
    expect(await b).toEqual({ text: '', tokens: 0, finishReason: 'abort' });
    await vi.waitFor(() => expect(server.waiting).toBe(0));
    open();
    expect(await a).toEqual({ text: 'x', tokens: 1, finishReason: 'length' });
    expect(gen.calls.map((c) => c.prompt)).toEqual(['a']);
  });

  it('close() aborts generations in flight, ends their streams and closes idle connections', async () => {
    let gen: ScriptedGenerator;
    let sawAbort!: Promise<void>;
    gen = scripted('abc', { beforeToken: (call, token) => (token === 1 ? (sawAbort = untilAborted(gen.calls[call]!.options.signal)) : undefined) });
    const { client, server, url } = await start(gen);
    // An idle keep-alive connection from an earlier request must not hold close() up.
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const pieces: string[] = [];
    const streaming = client().generate('p', { maxTokens: 3, onToken: (p) => pieces.push(p) });
    await vi.waitFor(() => expect(pieces).toEqual(['a']));
    await server.close();
    await sawAbort;
    await expect(streaming).rejects.toThrow(
      `Malformed response from POST ${url}/v1/completions: stream event reports an error: {"message":"The server is shutting down","type":"server_error","param":null,"code":null}`,
    );
    expect(server.url).toBeUndefined();
    await expect(fetch(`${url}/health`)).rejects.toThrow('fetch failed');
  });
});

describe('wire format', () => {
  const gen = () => scripted((p) => (p === 'ab' ? 'xy' : `<${p}>`));

  it('a JSON completion', async () => {
    const { post } = await start(gen());
    const res = await post({ model: MODEL, prompt: 'ab', max_tokens: 5, stop: 'y' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as { id: string; created: number };
    expect(body.id).toMatch(/^cmpl-[0-9a-f]{32}$/);
    expect(Math.abs(body.created - Date.now() / 1000)).toBeLessThan(60);
    expect(body).toEqual({
      id: body.id,
      object: 'text_completion',
      created: body.created,
      model: MODEL,
      choices: [{ index: 0, text: 'x', logprobs: null, finish_reason: 'stop', stop_reason: 'y' }],
      usage: { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 },
    });
  });

  it('a stream with usage: a chunk per piece, the finish chunk, the usage chunk, [DONE]', async () => {
    const { post } = await start(gen());
    const res = await post({ prompt: 'ab', max_tokens: 5, stream: true, stream_options: { include_usage: true } });
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const ev = events(await res.text()) as { id: string; created: number }[];
    const head = { id: ev[0]!.id, object: 'text_completion', created: ev[0]!.created, model: MODEL };
    expect(ev).toEqual([
      { ...head, choices: [{ index: 0, text: 'x', logprobs: null, finish_reason: null }], usage: null },
      { ...head, choices: [{ index: 0, text: 'y', logprobs: null, finish_reason: null }], usage: null },
      { ...head, choices: [{ index: 0, text: '', logprobs: null, finish_reason: 'stop', stop_reason: null }], usage: null },
      { ...head, choices: [], usage: { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 } },
      '[DONE]',
    ]);
  });

  it('batches of texts and of token ids are generated one after another as indexed choices', async () => {
    const { post } = await start(gen());
    const res = await post({ prompt: ['ab', 'c'], max_tokens: 3 });
    const body = (await res.json()) as { choices: unknown; usage: unknown };
    expect(body.choices).toEqual([
      { index: 0, text: 'xy', logprobs: null, finish_reason: 'stop', stop_reason: null },
      { index: 1, text: '<c>', logprobs: null, finish_reason: 'length', stop_reason: null },
    ]);
    expect(body.usage).toEqual({ prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });

    const streamed = await post({ prompt: [[97, 98], [99]], max_tokens: 3, stream: true });
    const ev = events(await streamed.text()) as { choices: unknown[]; usage?: unknown }[];
    expect(ev.map((e) => (e === ('[DONE]' as unknown) ? e : e.choices))).toEqual([
      [{ index: 0, text: 'x', logprobs: null, finish_reason: null }],
      [{ index: 0, text: 'y', logprobs: null, finish_reason: null }],
      [{ index: 0, text: '', logprobs: null, finish_reason: 'stop', stop_reason: null }],
      [{ index: 1, text: '<', logprobs: null, finish_reason: null }],
      [{ index: 1, text: 'c', logprobs: null, finish_reason: null }],
      [{ index: 1, text: '>', logprobs: null, finish_reason: null }],
      [{ index: 1, text: '', logprobs: null, finish_reason: 'length', stop_reason: null }],
      '[DONE]',
    ]);
    expect(ev.some((e) => typeof e === 'object' && 'usage' in e)).toBe(false);
  });

  it('max_tokens defaults to 16; null and neutral values of unsupported fields are accepted', async () => {
    const g = scripted('z'.repeat(40));
    const { post } = await start(g);
    const res = await post({
      prompt: 'p', max_tokens: null, stop: null, temperature: null, n: 1, best_of: null, echo: false, logprobs: null,
      suffix: null, presence_penalty: 0, frequency_penalty: 0, logit_bias: {}, user: 'u', stream: false, stream_options: null,
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { usage: unknown }).usage).toEqual({ prompt_tokens: 1, completion_tokens: 16, total_tokens: 17 });
    expect(g.calls[0]!.options.maxTokens).toBe(16);
  });

  it('logprobs 0 or 1: the sampled tokens\' log-probabilities in OpenAI\'s format, streaming in the finish event', async () => {
    // One token per character; token k of call c has log-probability -(k + 1) / 4 - c.
    const g = scripted((p) => (p === 'ab' ? 'xyz' : 'q'), { logprob: (call, k) => -(k + 1) / 4 - call });
    const { post, client } = await start(g);
    const body = (await (await post({ prompt: 'ab', max_tokens: 5, stop: 'z', logprobs: 1 })).json()) as { choices: unknown[] };
    // The stop string's token is generated and counted, so it has its figure too.
    expect(body.choices).toEqual([{ index: 0, text: 'xy', logprobs: { tokens: ['x', 'y', 'z'], token_logprobs: [-0.25, -0.5, -0.75], top_logprobs: null, text_offset: null }, finish_reason: 'stop', stop_reason: 'z' }]);
    expect(g.calls[0]!.options.logprobs).toBe(true);

    const ev = events(await (await post({ prompt: ['ab', 'c'], max_tokens: 5, logprobs: 0, stream: true })).text()) as { choices: unknown[] }[];
    expect(ev.slice(0, -1).map((e) => e.choices[0])).toEqual([
      { index: 0, text: 'x', logprobs: null, finish_reason: null },
      { index: 0, text: 'y', logprobs: null, finish_reason: null },
      { index: 0, text: 'z', logprobs: null, finish_reason: null },
      { index: 0, text: '', logprobs: { tokens: ['x', 'y', 'z'], token_logprobs: [-1.25, -1.5, -1.75], top_logprobs: null, text_offset: null }, finish_reason: 'stop', stop_reason: null },
      { index: 1, text: 'q', logprobs: null, finish_reason: null },
      { index: 1, text: '', logprobs: { tokens: ['q'], token_logprobs: [-2.25], top_logprobs: null, text_offset: null }, finish_reason: 'stop', stop_reason: null },
    ]);

    // The real client reads them back, streaming or not.
    const want = { text: 'xyz', tokens: 3, finishReason: 'eos', logprobs: [-3.25, -3.5, -3.75] };
    expect(await client().generate('ab', { maxTokens: 5, logprobs: true })).toEqual(want);
    expect(await client().generate('ab', { maxTokens: 5, logprobs: true, onToken: () => {} })).toEqual({ ...want, logprobs: [-4.25, -4.5, -4.75] });
  });

  it('logprobs: null when the generator reports none; tokens null when it cannot decode; -Infinity as -9999', async () => {
    const { post } = await start(scripted('ab'));
    const choice = async (r: Response) => ((await r.json()) as { choices: Array<{ logprobs: unknown }> }).choices[0]!.logprobs;
    expect(await choice(await post({ prompt: 'p', logprobs: 1 }))).toBeNull();
    const inf: Generator = { generate: async () => ({ text: 'a', tokens: 1, finishReason: 'eos', logprobs: [-Infinity] }), countTokens: () => 1 };
    const second = await start(inf);
    expect(await choice(await second.post({ prompt: 'p', logprobs: 1 }))).toEqual({ tokens: null, token_logprobs: [-9999], top_logprobs: null, text_offset: null });
  });

  it('GET /v1/models and /health', async () => {
    const { url } = await start(scripted(''));
    const models = await fetch(`${url}/v1/models`);
    const body = (await models.json()) as { data: { created: number }[] };
    expect(body).toEqual({ object: 'list', data: [{ id: MODEL, object: 'model', created: body.data[0]!.created, owned_by: 'capibara' }] });
    const health = await fetch(`${url}/health?probe=1`);
    expect([health.status, await health.text()]).toEqual([200, '']);
  });
});

describe('errors', () => {
  const PROMPT = 'non-empty string, non-empty array of token ids, or a non-empty array of those';
  const FIELDS = 'model, prompt, max_tokens, temperature, top_p, seed, stop, stream, stream_options, logprobs, n, best_of, echo, suffix, presence_penalty, frequency_penalty, logit_bias, user, capibara';
  const jsonError = (text: string) => {
    try {
      JSON.parse(text);
    } catch (err) {
      return (err as Error).message;
    }
    throw new Error('valid JSON');
  };

  it.each<[string | object, string, string | null]>([
    ['{"prompt": ', `The request body is not valid JSON: ${jsonError('{"prompt": ')}`, null],
    ['', `The request body is not valid JSON: ${jsonError('')}`, null],
    ['[1]', 'Expected a JSON object for the request body but received Array of length 1', null],
    [{ prompt: 'p', foo: 1 }, `Unknown field 'foo' in the request body (supported: ${FIELDS})`, 'foo'],
    [{ model: 5, prompt: 'p' }, 'Expected non-empty string for model but received 5 of type number', 'model'],
    [{}, `Expected ${PROMPT} for prompt but received undefined`, 'prompt'],
    [{ prompt: '' }, `Expected ${PROMPT} for prompt but received '' of type string`, 'prompt'],
    [{ prompt: [] }, `Expected ${PROMPT} for prompt but received Array of length 0`, 'prompt'],
    [{ prompt: 7 }, `Expected ${PROMPT} for prompt but received 7 of type number`, 'prompt'],
    [{ prompt: [1, 1.5] }, 'Expected integer >= 0 for prompt[1] but received 1.5 of type number', 'prompt'],
    [{ prompt: [1, 'a'] }, "Expected integer >= 0 for prompt[1] but received 'a' of type string", 'prompt'],
    [{ prompt: ['a', ''] }, "Expected non-empty string or non-empty array of token ids for prompt[1] but received '' of type string", 'prompt'],
    [{ prompt: [[1], [-1]] }, 'Expected integer >= 0 for prompt[1][0] but received -1 of type number', 'prompt'],
    [{ prompt: [{}] }, 'Expected non-empty string or non-empty array of token ids for prompt[0] but received object', 'prompt'],
    [{ prompt: 'p', max_tokens: -1 }, 'Expected integer >= 0 for max_tokens but received -1 of type number', 'max_tokens'],
    [{ prompt: 'p', max_tokens: '5' }, "Expected integer >= 0 for max_tokens but received '5' of type string", 'max_tokens'],
    [{ prompt: 'p', temperature: -0.5 }, 'Expected finite number >= 0 for temperature but received -0.5 of type number', 'temperature'],
    [{ prompt: 'p', top_p: 1.5 }, 'Expected finite number in (0, 1] for top_p but received 1.5 of type number', 'top_p'],
    [{ prompt: 'p', top_p: 0 }, 'Expected finite number > 0 for top_p but received 0 of type number', 'top_p'],
    [{ prompt: 'p', seed: 1.5 }, 'Expected integer >= 0 for seed but received 1.5 of type number', 'seed'],
    [{ prompt: 'p', stop: 5 }, 'Expected non-empty string or array of non-empty strings for stop but received 5 of type number', 'stop'],
    [{ prompt: 'p', stop: '' }, "Expected non-empty string for stop but received '' of type string", 'stop'],
    [{ prompt: 'p', stop: ['a', ''] }, "Expected non-empty string for stop[1] but received '' of type string", 'stop'],
    [{ prompt: 'p', stream: 'yes' }, "Expected boolean for stream but received 'yes' of type string", 'stream'],
    [{ prompt: 'p', stream_options: { include_usage: true } }, 'stream_options is only allowed when stream is true', 'stream_options'],
    [{ prompt: 'p', stream: true, stream_options: [] }, 'Expected an object for stream_options but received Array of length 0', 'stream_options'],
    [{ prompt: 'p', stream: true, stream_options: { usage: true } }, "Unknown option 'usage' in stream_options (expected one of: include_usage)", 'stream_options'],
    [{ prompt: 'p', stream: true, stream_options: { include_usage: 1 } }, 'Expected boolean for stream_options.include_usage but received 1 of type number', 'stream_options'],
    [{ prompt: 'p', n: 2 }, 'Expected 1 for n but received 2 of type number (one choice per prompt is supported)', 'n'],
    [{ prompt: 'p', best_of: 3 }, 'Expected 1 for best_of but received 3 of type number (one choice per prompt is supported)', 'best_of'],
    [{ prompt: 'p', echo: true }, 'Expected false for echo but received true of type boolean (echoing the prompt is not supported)', 'echo'],
    [{ prompt: 'p', logprobs: 2 }, "Expected null, 0 or 1 for logprobs but received 2 of type number (only the sampled tokens' log-probabilities are reported, no alternatives)", 'logprobs'],
    [{ prompt: 'p', logprobs: true }, 'Expected null, 0 or 1 for logprobs but received true of type boolean', 'logprobs'],
    [{ prompt: 'p', suffix: 'x' }, "Expected null for suffix but received 'x' of type string (suffixes are not supported)", 'suffix'],
    [{ prompt: 'p', presence_penalty: 0.5 }, 'Expected 0 for presence_penalty but received 0.5 of type number (penalties are not supported)', 'presence_penalty'],
    [{ prompt: 'p', frequency_penalty: 1 }, 'Expected 0 for frequency_penalty but received 1 of type number (penalties are not supported)', 'frequency_penalty'],
    [{ prompt: 'p', logit_bias: { 5: 1 } }, 'Expected null or {} for logit_bias but received object (logit bias is not supported)', 'logit_bias'],
    [{ prompt: 'p', user: 5 }, 'Expected string for user but received 5 of type number', 'user'],
  ])('400 for %j', async (body, message, param) => {
    const gen = scripted('x');
    const { post } = await start(gen);
    const res = await post(body);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual(badRequest(message, param));
    expect(gen.calls).toHaveLength(0);
  });

  it('404 for an unknown model and an unknown path; 405 for a wrong method', async () => {
    const { post, url } = await start(scripted('x'));
    const model = await post({ model: 'gpt-4', prompt: 'p' });
    expect([model.status, await model.json()]).toEqual([
      404,
      { error: { message: "The model 'gpt-4' does not exist; this server serves 'tiny'", type: 'invalid_request_error', param: 'model', code: 'model_not_found' } },
    ]);
    const path = await fetch(`${url}/v1/embeddings`, { method: 'POST', headers: JSON_TYPE, body: '{}' });
    expect([path.status, await path.json()]).toEqual([
      404,
      {
        error: {
          message:
            'Unknown path /v1/embeddings (this server has POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /v1/models/{id}, POST /tokenize, GET /metrics, GET /health)',
          type: 'invalid_request_error',
          param: null,
          code: 'not_found',
        },
      },
    ]);
    const method = await fetch(`${url}/v1/completions`);
    expect([method.status, method.headers.get('allow'), await method.json()]).toEqual([
      405,
      'POST',
      { error: { message: 'Method GET is not allowed on /v1/completions (allowed: POST)', type: 'invalid_request_error', param: null, code: null } },
    ]);
    const del = await fetch(`${url}/v1/models`, { method: 'DELETE' });
    expect([del.status, del.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
  });

  it('413 for a body over maxBodyBytes, by Content-Length or as it streams in', async () => {
    const gen = scripted('x');
    const { post } = await start(gen, { maxBodyBytes: 100 });
    const tooLarge = { error: { message: 'The request body is larger than 100 bytes', type: 'invalid_request_error', param: null, code: null } };
    const sized = await post({ prompt: 'p'.repeat(200) });
    expect([sized.status, await sized.json()]).toEqual([413, tooLarge]);
    // Chunked: no Content-Length, so the limit is met while reading.
    const chunk = new TextEncoder().encode(`{"prompt": "${'p'.repeat(80)}`);
    const body = new ReadableStream({
      start(c) {
        c.enqueue(chunk);
        c.enqueue(chunk);
        c.close();
      },
    });
    const streamed = await post(undefined, { body, duplex: 'half' } as RequestInit);
    expect([streamed.status, await streamed.json()]).toEqual([413, tooLarge]);
    expect((await post({ prompt: 'p' })).status).toBe(200);
    expect(gen.calls).toHaveLength(1);
  });

  it('401 without the API key, or with a wrong one; /health needs none', async () => {
    const { url, client, post } = await start(scripted('ok'), { apiKey: 's3cret' });
    const missing = await post({ prompt: 'p' });
    expect([missing.status, missing.headers.get('www-authenticate'), await missing.json()]).toEqual([
      401,
      'Bearer',
      { error: { message: "Missing API key: send it as 'Authorization: Bearer <key>'", type: 'invalid_request_error', param: null, code: null } },
    ]);
    const wrong = await fetch(`${url}/v1/models`, { headers: { authorization: 'Bearer s3cre' } });
    expect([wrong.status, await wrong.json()]).toEqual([
      401,
      { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } },
    ]);
    await expect(client().generate('p', { maxTokens: 2 })).rejects.toMatchObject({ status: 401 });
    expect(await client({ apiKey: 's3cret' }).generate('p', { maxTokens: 2 })).toEqual({ text: 'ok', tokens: 2, finishReason: 'length' });
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it('survives garbage: a malformed request line, a dropped upload, then still serves', async () => {
    const { url, client } = await start(scripted('ok'));
    const { port } = new URL(url);
    const reply = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write('NOT HTTP\r\n\r\n'));
      let got = '';
      socket.on('data', (d) => (got += d.toString()));
      socket.on('close', () => resolve(got));
    });
    expect(reply.startsWith('HTTP/1.1 400 Bad Request')).toBe(true);
    await new Promise<void>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"prompt"');
        socket.destroy();
        resolve();
      });
    });
    expect(await client().generate('p', { maxTokens: 1 })).toEqual({ text: 'o', tokens: 1, finishReason: 'length' });
  });
});

describe('createCompletionsServer and listen', () => {
  const gen = scripted('');
  it.each<[unknown, unknown, string]>([
    [{}, { model: 'm' }, 'Expected a Generator (an object with generate and countTokens methods) for generator but received object'],
    [gen, undefined, 'Expected an options object for options but received undefined'],
    [gen, { model: '' }, "Expected non-empty string for options.model but received '' of type string"],
    [gen, { model: 'm', apiKey: 5 }, 'Expected non-empty string for options.apiKey but received 5 of type number'],
    [gen, { model: 'm', maxQueue: -1 }, 'Expected integer >= 0 for options.maxQueue but received -1 of type number'],
    [gen, { model: 'm', maxBodyBytes: 0 }, 'Expected integer >= 1 for options.maxBodyBytes but received 0 of type number'],
    [gen, { model: 'm', max_queue: 1 }, "Unknown option 'max_queue' in options (expected one of: model, apiKey, maxQueue, maxBodyBytes, maxPromptsPerRequest, maxTokensPerRequest, apiKeys, contextLength, headersTimeoutMs, requestTimeoutMs, chatTemplate, metrics)"],
  ])('rejects options %#', (g, opts, message) => {
    expect(() => createCompletionsServer(g as Generator, opts as CompletionsServerOptions)).toThrow(message);
  });

  it('close() before listen resolves; so does a second close()', async () => {
    const server = createCompletionsServer(gen, { model: 'm' });
    await server.close();
    await server.close();
    await expect(server.listen(0)).rejects.toThrow('CompletionsServer.listen: the server is closed');
  });

  it('listen checks its arguments and refuses a second listen or one after close', async () => {
    const server = createCompletionsServer(gen, { model: 'm' });
    servers.push(server);
    expect(server.url).toBeUndefined();
    await expect(server.listen(70000)).rejects.toThrow(new RangeError('Expected integer in [0, 65535] for port but received 70000 of type number'));
    const { url } = await server.listen(0);
    expect(url).toBe(server.url);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await expect(server.listen(0)).rejects.toThrow(`CompletionsServer.listen: already listening on ${url}`);
    const other = createCompletionsServer(gen, { model: 'm' });
    await expect(other.listen(Number(new URL(url).port))).rejects.toThrow('EADDRINUSE');
    await server.close();
    await expect(server.listen(0)).rejects.toThrow('CompletionsServer.listen: the server is closed');
    await other.close();
  });
});

describe('fairness and hostile requests', () => {
  it('refuses more prompts or more tokens than one request may ask for', async () => {
    const { post } = await start(scripted('x'), { maxPromptsPerRequest: 2, maxTokensPerRequest: 10 });
    const many = await post({ prompt: ['a', 'b', 'c'], max_tokens: 1 });
    expect([many.status, await many.json()]).toEqual([
      400,
      badRequest("Expected at most 2 prompts (this server's maxPromptsPerRequest) for prompt but received Array of length 3", 'prompt'),
    ]);
    const greedy = await post({ prompt: ['a', 'b'], max_tokens: 6 });
    expect([greedy.status, await greedy.json()]).toEqual([
      400,
      badRequest('The request asks for up to 2 prompts × max_tokens 6 = 12 tokens; this server allows 10 per request (maxTokensPerRequest)', 'max_tokens'),
    ]);
    const huge = await post({ prompt: 'a', max_tokens: 1e9 });
    expect((await huge.json()).error.message).toBe('The request asks for up to max_tokens 1000000000 tokens; this server allows 10 per request (maxTokensPerRequest)');
    expect((await post({ prompt: ['a', 'b'], max_tokens: 5 })).status).toBe(200);
  });

  it('refuses a body that does not say it is JSON with 415 (a web page cannot send application/json without CORS)', async () => {
    const { url } = await start(scripted('x'));
    for (const type of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: type === undefined ? {} : { 'content-type': type }, body: '{"prompt":"a"}' });
      expect(res.status).toBe(415);
      expect((await res.json()).error).toMatchObject({ code: 'unsupported_media_type', message: `Expected Content-Type application/json but received ${type === undefined ? 'text/plain' : type.split(';')[0]}` });
    }
    const ok = await fetch(`${url}/tokenize`, { method: 'POST', headers: { 'content-type': 'Application/JSON; charset=utf-8' }, body: '{"prompt":"a"}' });
    expect(ok.status).toBe(200);
  });

  it('gives each prompt its own turn, so a batch interleaves with a request that came later', async () => {
    // Each generation holds its turn until the test lets it finish: the order of calls is the order of turns.
    const held: Array<() => void> = [];
    const gen = scripted('xy', { beforeToken: (_call, token) => (token === 0 ? new Promise<void>((r) => held.push(r)) : undefined) });
    const { post, server } = await start(gen);
    const batch = post({ prompt: ['b1', 'b2', 'b3'], max_tokens: 2 });
    await vi.waitFor(() => expect(held).toHaveLength(1)); // b1 runs
    const single = post({ prompt: 's', max_tokens: 2 });
    await vi.waitFor(() => expect(server.waiting).toBe(1)); // s waits behind b1
    // Let each held generation go, one at a time, and see who runs next.
    for (let i = 1; i <= 4; i++) {
      held[i - 1]!();
      await vi.waitFor(() => expect(held.length).toBe(Math.min(i + 1, 4)));
    }
    await Promise.all([batch, single]);
    expect(gen.calls.map((c) => c.prompt)).toEqual(['b1', 's', 'b2', 'b3']);
  });
});
