import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../src/llm/completions-wire';

import { CompletionsHTTPError, type GenerateOptions, OpenAICompatibleGenerator } from '../src/index';
import { FakeCompletionsServer, chunks, completion, hang, json, sse, text } from './support/fake-completions-server';

let server: FakeCompletionsServer;
beforeAll(async () => {
  server = await FakeCompletionsServer.start();
});
afterAll(async () => {
  await server.close();
});

const gen = (extra: object = {}) => new OpenAICompatibleGenerator({ baseURL: server.url, model: 'm', ...extra });
const COMPLETIONS = () => `${server.url}/v1/completions`;

describe('generate', () => {
  it('streaming and non-streaming give the same text and tokens; requests carry the options', async () => {
    server.script(json(completion(' Paris is nice', 'length', 4)), sse(chunks([' Paris', ' is', ' nice'], 'length', 4)));
    const g = gen({ apiKey: 'k', headers: { 'X-Extra': '1' } });
    const opts: GenerateOptions = { maxTokens: 4, temperature: 0, topP: 0.9, seed: 7, stop: ['\n\n'] };
    const plain = await g.generate('The capital', opts);
    const pieces: string[] = [];
    const streamed = await g.generate([1, 2, 3], { ...opts, onToken: (p) => pieces.push(p) });
    expect(plain).toEqual({ text: ' Paris is nice', tokens: 4, finishReason: 'length' });
    expect(streamed).toEqual(plain);
    expect(pieces.join('')).toBe(' Paris is nice');
    const [a, b] = server.requests;
    expect(a!.url).toBe('/v1/completions');
    expect(a!.body).toEqual({ model: 'm', prompt: 'The capital', max_tokens: 4, stop: ['\n\n'], temperature: 0, top_p: 0.9, seed: 7 });
    expect(a!.headers['authorization']).toBe('Bearer k');
    expect(a!.headers['x-extra']).toBe('1');
    expect(b!.body).toEqual({ model: 'm', prompt: [1, 2, 3], max_tokens: 4, stop: ['\n\n'], temperature: 0, top_p: 0.9, seed: 7, stream: true, stream_options: { include_usage: true } });
  });

  it('a baseURL ending in /v1/ is normalised', () => {
    expect(new OpenAICompatibleGenerator({ baseURL: 'http://h:8000/v1/', model: 'm' }).baseURL).toBe('http://h:8000');
  });

  it('stop: the server reports the matched stop (vLLM stop_reason) → stop with stopSequence', async () => {
    server.script(json(completion(' 4', 'stop', 3, { stop_reason: '\n' })), sse(chunks([' ', '4'], 'stop', 3, { stop_reason: '\n' })));
    const g = gen();
    expect(await g.generate('Q', { maxTokens: 8, stop: ['\n'] })).toEqual({ text: ' 4', tokens: 3, finishReason: 'stop', stopSequence: '\n' });
    expect(await g.generate('Q', { maxTokens: 8, stop: ['\n'], onToken: () => {} })).toEqual({ text: ' 4', tokens: 3, finishReason: 'stop', stopSequence: '\n' });
  });

  it('stop: a stop string the server left in is cut, earliest match wins, held back from onToken', async () => {
    server.script(json(completion('abc</think>tail END', 'stop', 6)), sse(chunks(['abc<', '/thi', 'nk>tail', ' END'], 'stop', 6)));
    const g = gen();
    const o = { maxTokens: 8, stop: ['END', '</think>'] };
    expect(await g.generate('p', o)).toEqual({ text: 'abc', tokens: 6, finishReason: 'stop', stopSequence: '</think>' });
    const pieces: string[] = [];
    expect(await g.generate('p', { ...o, onToken: (p) => pieces.push(p) })).toEqual({ text: 'abc', tokens: 6, finishReason: 'stop', stopSequence: '</think>' });
    expect(pieces).toEqual(['abc']);
  });

  it('stop: the stop completed first wins when stops overlap, streaming or not (pieces = text)', async () => {
    server.script(json(completion('abcd', 'length', 4)), sse(chunks(['a', 'b', 'c', 'd'], 'length', 4)));
    const g = gen();
    const o = { maxTokens: 8, stop: ['abcd', 'c'] };
    expect(await g.generate('p', o)).toEqual({ text: 'ab', tokens: 4, finishReason: 'stop', stopSequence: 'c' });
    const pieces: string[] = [];
    expect(await g.generate('p', { ...o, onToken: (p) => pieces.push(p) })).toEqual({ text: 'ab', tokens: 4, finishReason: 'stop', stopSequence: 'c' });
    expect(pieces.join('')).toBe('ab');
  });

  it('held-back text that never completes a stop is released at the end; finish_reason stop without a matched stop is eos', async () => {
    server.script(sse(chunks(['ab', '</'], 'stop', 2)));
    const pieces: string[] = [];
    expect(await gen().generate('p', { maxTokens: 8, stop: ['</think>'], onToken: (p) => pieces.push(p) })).toEqual({ text: 'ab</', tokens: 2, finishReason: 'eos' });
    expect(pieces).toEqual(['ab', '</']);
  });

  it('no usage: the tokenizer counts the text plus a stop the server removed; without a tokenizer it rejects', async () => {
    server.script(json(completion('hello', 'stop', undefined, { stop_reason: '.' })));
    const chars = { countTokens: (t: string) => [...t].length };
    expect(await gen({ tokenizer: chars }).generate('p', { maxTokens: 10, stop: ['.'] })).toEqual({ text: 'hello', tokens: 6, finishReason: 'stop', stopSequence: '.' });
    await expect(gen().generate('p', { maxTokens: 10, stop: ['.'] })).rejects.toThrow(
      `POST ${COMPLETIONS()} sent no usage.completion_tokens and no tokenizer option was configured to count the output; pass a tokenizer to OpenAICompatibleGenerator or use a server that reports usage`,
    );
  });

  it('maxTokens 0 and an aborted signal resolve without a request', async () => {
    server.script(hang);
    expect(await gen().generate('p', { maxTokens: 0 })).toEqual({ text: '', tokens: 0, finishReason: 'length' });
    expect(await gen().generate('p', { maxTokens: 5, signal: AbortSignal.abort() })).toEqual({ text: '', tokens: 0, finishReason: 'abort' });
    expect(server.requests).toHaveLength(0);
  });
});

describe('logprobs', () => {
  const lp = (values: unknown[]) => ({ logprobs: { tokens: values.map(() => 't'), token_logprobs: values, top_logprobs: null, text_offset: [] } });

  it('asks for logprobs: 1 and reads token_logprobs, streaming (events concatenated) or not', async () => {
    server.script(
      json(completion(' Paris is', 'length', 3, lp([-0.5, -1.25, -0.125]))),
      sse([
        { choices: [{ index: 0, text: ' Paris', finish_reason: null, ...lp([-0.5]) }] },
        { choices: [{ index: 0, text: ' is', finish_reason: null, ...lp([-1.25, -0.125]) }] },
        { choices: [{ index: 0, text: '', finish_reason: 'length', logprobs: null }] },
        { choices: [], usage: { prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 } },
      ]),
    );
    const g = gen();
    const want = { text: ' Paris is', tokens: 3, finishReason: 'length', logprobs: [-0.5, -1.25, -0.125] };
    expect(await g.generate('p', { maxTokens: 3, logprobs: true })).toEqual(want);
    expect(await g.generate('p', { maxTokens: 3, logprobs: true, onToken: () => {} })).toEqual(want);
    expect(server.requests[0]!.body).toEqual({ model: 'm', prompt: 'p', max_tokens: 3, logprobs: 1 });
    expect(server.requests[1]!.body).toMatchObject({ logprobs: 1, stream: true });
  });

  it('leaves logprobs out when not asked, or when the server sends none', async () => {
    server.script(json(completion('a', 'length', 1, lp([-1]))), json(completion('a', 'length', 1, { logprobs: null })), json(completion('a', 'length', 1)));
    const g = gen();
    expect(await g.generate('p', { maxTokens: 1 })).toEqual({ text: 'a', tokens: 1, finishReason: 'length' });
    expect('logprobs' in server.requests[0]!.body).toBe(false);
    expect(await g.generate('p', { maxTokens: 1, logprobs: true })).toEqual({ text: 'a', tokens: 1, finishReason: 'length' });
    expect(await g.generate('p', { maxTokens: 1, logprobs: true })).toEqual({ text: 'a', tokens: 1, finishReason: 'length' });
  });

  it('keeps the log-probabilities that arrived before an abort', async () => {
    const controller = new AbortController();
    server.script(sse([{ choices: [{ index: 0, text: 'Hel', finish_reason: null, ...lp([-2]) }] }, 2000], 'hang'));
    const r = await gen().generate('p', { maxTokens: 10, logprobs: true, signal: controller.signal, onToken: () => controller.abort() });
    expect(r).toEqual({ text: 'Hel', tokens: 1, finishReason: 'abort', logprobs: [-2] });
  });

  it.each([
    ['logprobs not an object', { logprobs: 'x' }, "body choices[0].logprobs is 'x' of type string, expected an object or null"],
    ['token_logprobs missing', { logprobs: {} }, 'body choices[0].logprobs.token_logprobs is undefined, expected an array of numbers'],
    ['a null entry', lp([-1, null]), 'body choices[0].logprobs.token_logprobs[1] is null, expected a finite number <= 0'],
    ['a positive entry', lp([0.5]), 'body choices[0].logprobs.token_logprobs[0] is 0.5 of type number, expected a finite number <= 0'],
  ])('rejects a malformed answer: %s', async (_name, extra, what) => {
    server.script(json(completion('ab', 'length', 2, extra)));
    await expect(gen().generate('p', { maxTokens: 2, logprobs: true })).rejects.toThrow(`Malformed response from POST ${COMPLETIONS()}: ${what}`);
  });
});

describe('retries, timeouts, abort', () => {
  it('retries a 503 with Retry-After: 0, then succeeds', async () => {
    server.script(text('busy', 503, { 'retry-after': '0' }), json(completion('ok', 'length', 1)));
    expect(await gen().generate('p', { maxTokens: 1 })).toEqual({ text: 'ok', tokens: 1, finishReason: 'length' });
    expect(server.requests).toHaveLength(2);
  });

  it('retries a 429 with an HTTP-date Retry-After', async () => {
    const when = new Date(Date.now() + 1000).toUTCString();
    server.script(text('slow down', 429, { 'retry-after': when }), sse(chunks(['ok'], 'length', 1)));
    expect(await gen().generate('p', { maxTokens: 1, onToken: () => {} })).toEqual({ text: 'ok', tokens: 1, finishReason: 'length' });
    expect(server.requests).toHaveLength(2);
  });

  it('reads Retry-After as delay-seconds or an HTTP date, relative to the clock', () => {
    const now = Date.parse('Sun, 06 Dec 2026 20:00:00 GMT');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter('Sun, 06 Dec 2026 20:00:01 GMT', now)).toBe(1000);
    expect(parseRetryAfter('Sun, 06 Dec 2026 19:59:00 GMT', now)).toBe(0); // in the past: retry now
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it('gives up after maxRetries with a CompletionsHTTPError carrying status and body; 4xx is not retried', async () => {
    server.script(text('down', 502, { 'retry-after': '0' }));
    const err = await gen({ maxRetries: 1 }).generate('p', { maxTokens: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CompletionsHTTPError);
    expect(err).toMatchObject({ status: 502, body: 'down', message: `POST ${COMPLETIONS()} failed with HTTP 502 Bad Gateway: down` });
    expect(server.requests).toHaveLength(2);
    server.script(json({ error: 'bad' }, 400));
    await expect(gen().generate('p', { maxTokens: 1 })).rejects.toMatchObject({ status: 400, body: '{"error":"bad"}' });
    expect(server.requests).toHaveLength(1);
  });

  it('retries a dropped connection before any output', async () => {
    server.script((_r, res) => res.destroy(), json(completion('ok', 'length', 1)));
    // Retry-After absent: the first backoff is 500 ms.
    expect(await gen().generate('p', { maxTokens: 1 })).toEqual({ text: 'ok', tokens: 1, finishReason: 'length' });
    expect(server.requests).toHaveLength(2);
  });

  it('never retries after output was streamed', async () => {
    server.script(sse([...chunks(['a', 'b'], 'length').slice(0, 1), 10], 'destroy'), json(completion('x', 'length', 1)));
    const pieces: string[] = [];
    const err = (await gen().generate('p', { maxTokens: 5, onToken: (p) => pieces.push(p) }).catch((e: unknown) => e)) as Error;
    // The middle is undici's socket error ('other side closed').
    expect(err.message.startsWith(`POST ${COMPLETIONS()} failed: `)).toBe(true);
    expect(err.message.endsWith(' (after output was streamed, so not retried)')).toBe(true);
    expect(server.requests).toHaveLength(1);
    expect(pieces).toEqual(['a']);
  });

  it('times out each attempt', async () => {
    server.script(hang);
    await expect(gen({ timeoutMs: 100, maxRetries: 0 }).generate('p', { maxTokens: 1 })).rejects.toThrow(`POST ${COMPLETIONS()} timed out after 100 ms`);
    server.script(hang, json(completion('ok', 'length', 1)));
    expect(await gen({ timeoutMs: 100, maxRetries: 1 }).generate('p', { maxTokens: 1 })).toMatchObject({ text: 'ok' });
  }, 5000);

  it('abort mid-stream resolves with abort and the partial text', async () => {
    const controller = new AbortController();
    let sent = 0;
    server.script(sse([...chunks(['Hel', 'lo', ' wor'], 'length'), 2000], 'hang', () => void sent++));
    const pieces: string[] = [];
    const r = await gen().generate('p', {
      maxTokens: 10,
      signal: controller.signal,
      onToken: (p) => {
        pieces.push(p);
        if (pieces.length === 3) controller.abort();
      },
    });
    expect(r).toEqual({ text: 'Hello wor', tokens: 3, finishReason: 'abort' });
    expect(pieces.join('')).toBe('Hello wor');
    expect(sent).toBe(3);
  });

  it('abort of a JSON request resolves with abort and no text', async () => {
    server.script(hang);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    expect(await gen().generate('p', { maxTokens: 10, signal: controller.signal })).toEqual({ text: '', tokens: 0, finishReason: 'abort' });
  });
});

describe('malformed responses', () => {
  it.each([
    ['non-JSON body', text('<html>oops</html>'), "body is not JSON: '<html>oops</html>' of type string"],
    ['missing choices', json({ id: 'x' }), "body has no non-empty 'choices' array"],
    ['empty choices', json({ choices: [] }), "body has no non-empty 'choices' array"],
    ['text not a string', json({ choices: [{ text: 5, finish_reason: 'stop' }] }), 'body choices[0].text is 5 of type number, expected a string'],
    ['bad usage', json({ choices: [{ text: 'a', finish_reason: 'stop' }], usage: { completion_tokens: -1 } }), 'usage.completion_tokens is -1 of type number, expected an integer >= 0'],
    ['usage above max_tokens', json(completion('a', 'length', 9)), 'usage.completion_tokens is 9, more than max_tokens 5'],
  ])('%s (JSON)', async (_name, handler, what) => {
    server.script(handler);
    await expect(gen().generate('p', { maxTokens: 5 })).rejects.toThrow(`Malformed response from POST ${COMPLETIONS()}: ${what}`);
    expect(server.requests).toHaveLength(1);
  });

  it.each([
    ['event not JSON', sse(['data: {nope']), "stream event is not JSON: '{nope' of type string"],
    ['event without choices', sse([{ id: 1, usage: null }, { foo: 1 }]), 'stream ended with [DONE] before any choice had a finish_reason'],
    ['no finish_reason', sse(chunks(['a'], null as unknown as string, 1)), 'stream ended with [DONE] before any choice had a finish_reason'],
    ['error event', sse([{ error: { message: 'boom' } }]), 'stream event reports an error: {"message":"boom"}'],
  ])('%s (SSE)', async (_name, handler, what) => {
    server.script(handler);
    await expect(gen().generate('p', { maxTokens: 5, onToken: () => {} })).rejects.toThrow(`Malformed response from POST ${COMPLETIONS()}: ${what}`);
  });
});

describe('validation', () => {
  const base = { baseURL: 'http://127.0.0.1:1', model: 'm' };
  it.each([
    [undefined, TypeError, 'Expected an options object for options but received undefined'],
    [{ ...base, baseUrl: 'x' }, TypeError, "Unknown option 'baseUrl' in options (expected one of: baseURL, model, apiKey, headers, timeoutMs, maxRetries, tokenizer)"],
    [{ model: 'm' }, TypeError, 'Expected non-empty string for options.baseURL but received undefined'],
    [{ ...base, baseURL: '' }, RangeError, "Expected non-empty string for options.baseURL but received '' of type string"],
    [{ ...base, baseURL: 'not a url' }, RangeError, "Expected an http(s) URL for options.baseURL but received 'not a url' of type string"],
    [{ ...base, baseURL: 'ftp://h' }, RangeError, "Expected an http(s) URL for options.baseURL but received 'ftp://h' of type string"],
    [{ ...base, model: 3 }, TypeError, 'Expected non-empty string for options.model but received 3 of type number'],
    [{ ...base, apiKey: '' }, RangeError, "Expected non-empty string for options.apiKey but received '' of type string"],
    [{ ...base, headers: [] }, TypeError, 'Expected an object of string header values for options.headers but received Array of length 0'],
    [{ ...base, headers: { a: 1 } }, TypeError, "Expected string for options.headers['a'] but received 1 of type number"],
    [{ ...base, timeoutMs: 0 }, RangeError, 'Expected integer >= 1 for options.timeoutMs but received 0 of type number'],
    [{ ...base, timeoutMs: '5' }, TypeError, "Expected integer >= 1 for options.timeoutMs but received '5' of type string"],
    [{ ...base, maxRetries: -1 }, RangeError, 'Expected integer >= 0 for options.maxRetries but received -1 of type number'],
    [{ ...base, tokenizer: {} }, TypeError, 'Expected an object with a countTokens function for options.tokenizer but received object'],
    [{ ...base, tokenizer: { countTokens: () => 0, encode: 1 } }, TypeError, 'Expected function for options.tokenizer.encode but received 1 of type number'],
    [{ ...base, tokenizer: { countTokens: () => 0, decode: 'x' } }, TypeError, "Expected function for options.tokenizer.decode but received 'x' of type string"],
  ])('constructor %#', (opts, Kind, message) => {
    expect(() => new OpenAICompatibleGenerator(opts as never)).toThrow(new Kind(message));
    expect(() => new OpenAICompatibleGenerator(opts as never)).toThrow(Kind);
  });

  it.each([
    ['p', undefined, TypeError, 'Expected an options object for options but received undefined'],
    [5, { maxTokens: 1 }, TypeError, 'Expected string or array of token ids for prompt but received 5 of type number'],
    [[1, -1], { maxTokens: 1 }, RangeError, 'Expected integer >= 0 for prompt[1] but received -1 of type number'],
    ['p', { maxTokens: 1.5 }, RangeError, 'Expected integer >= 0 for options.maxTokens but received 1.5 of type number'],
    ['p', { maxTokens: 1, stop: 'x' }, TypeError, "Expected array of non-empty strings for options.stop but received 'x' of type string"],
    ['p', { maxTokens: 1, stop: [''] }, RangeError, "Expected non-empty string for options.stop[0] but received '' of type string"],
    ['p', { maxTokens: 1, temperature: -1 }, RangeError, 'Expected finite number >= 0 for options.temperature but received -1 of type number'],
    ['p', { maxTokens: 1, topP: 1.5 }, RangeError, 'Expected finite number in (0, 1] for options.topP but received 1.5 of type number'],
    ['p', { maxTokens: 1, topP: 0 }, RangeError, 'Expected finite number > 0 for options.topP but received 0 of type number'],
    ['p', { maxTokens: 1, seed: 0.5 }, RangeError, 'Expected integer >= 0 for options.seed but received 0.5 of type number'],
    ['p', { maxTokens: 1, signal: {} }, TypeError, 'Expected AbortSignal for options.signal but received object'],
    ['p', { maxTokens: 1, onToken: 1 }, TypeError, 'Expected function for options.onToken but received 1 of type number'],
    ['p', { maxTokens: 1, max_tokens: 1 }, TypeError, "Unknown option 'max_tokens' in options (expected one of: maxTokens, stop, temperature, topP, seed, signal, onToken, logprobs)"],
  ])('generate %#', async (prompt, opts, Kind, message) => {
    const g = new OpenAICompatibleGenerator(base);
    await expect(g.generate(prompt as never, opts as never)).rejects.toThrow(new Kind(message));
    await expect(g.generate(prompt as never, opts as never)).rejects.toThrow(Kind);
  });
});

describe('countTokens', () => {
  it('uses the tokenizer option (and exposes encode/decode)', async () => {
    server.script(hang);
    const g = gen({ tokenizer: { countTokens: (t: string) => t.length, encode: (t: string) => [...t].map((c) => c.charCodeAt(0)), decode: (ids: readonly number[]) => String.fromCharCode(...ids) } });
    expect(await g.countTokens('abcd')).toBe(4);
    expect(await g.encode!('ab')).toEqual([97, 98]);
    expect(await g.decode!([97, 98])).toBe('ab');
    expect(gen().encode).toBeUndefined();
    expect(server.requests).toHaveLength(0);
  });

  it('posts /tokenize and reads count (vLLM) or tokens (llama.cpp)', async () => {
    server.script(json({ count: 3, tokens: [1, 2, 3], max_model_len: 100 }), json({ tokens: [5, 6] }));
    const g = gen();
    expect(await g.countTokens('abc')).toBe(3);
    expect(await g.countTokens('de')).toBe(2);
    expect(server.requests[0]!.url).toBe('/tokenize');
    expect(server.requests[0]!.body).toEqual({ model: 'm', prompt: 'abc', content: 'abc', add_special_tokens: false });
  });

  it('reports a /tokenize the server lacks, and a malformed answer', async () => {
    server.script(json({ detail: 'Not Found' }, 404), json({ n: 1 }));
    await expect(gen().countTokens('a')).rejects.toThrow(`POST ${server.url}/tokenize failed with HTTP 404 Not Found: {"detail":"Not Found"}`);
    await expect(gen().countTokens('a')).rejects.toThrow(`Malformed response from POST ${server.url}/tokenize: expected an integer 'count' or a 'tokens' array`);
    await expect(gen().countTokens(1 as never)).rejects.toThrow(new TypeError('Expected string for text but received 1 of type number'));
  });
});
