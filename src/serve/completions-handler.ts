/**
 * Runs a checked completions request on a {@link Generator} and writes OpenAI's answer:
 * one JSON body, or server-sent events.
 * @module
 */
import type { ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { GenerateOptions, GenerateResult, Generator, GeneratorPrompt } from '../llm/index';
import * as v from '../validate';
import { type CompletionsRequest, HttpError } from './completions-request';

/** What every chunk or body names. */
interface Head {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
}

/** OpenAI's legacy completions `logprobs` object of one choice. */
interface Logprobs {
  tokens: string[] | null;
  token_logprobs: number[];
  top_logprobs: null;
  text_offset: null;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' };

export function sendJSON(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers }).end(text);
}

/** Writes one server-sent event; headers go out with the first, so a failure before any output is still a plain HTTP error. */
export function sendEvent(res: ServerResponse, data: unknown): void {
  if (res.destroyed || res.writableEnded) return;
  if (!res.headersSent) res.writeHead(200, SSE_HEADERS);
  res.write(`data: ${JSON.stringify(data)}\n\n`);
}

/**
 * Answers a checked request. `turn` waits for the generation slot and returns its release: each
 * prompt takes a turn of its own, so a batch interleaves with other requests.
 */
export async function complete(
  generator: Generator,
  model: string,
  r: CompletionsRequest,
  res: ServerResponse,
  signal: AbortSignal,
  turn: () => Promise<() => void>,
): Promise<void> {
  const head: Head = { id: `cmpl-${randomUUID().replace(/-/g, '')}`, object: 'text_completion', created: Math.floor(Date.now() / 1000), model };
  const usage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  const count = async (prompt: GeneratorPrompt, result: GenerateResult) => {
    // A backend that reports the prompt as it ran it (OnnxCausalLM: BOS included) is exact.
    const ran = (result as { promptTokens?: unknown }).promptTokens;
    usage.prompt_tokens += Number.isInteger(ran) && (ran as number) >= 0 ? (ran as number) : await promptTokens(generator, prompt);
    usage.completion_tokens += result.tokens;
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  };

  if (!r.stream) {
    const choices = [];
    for (const [index, prompt] of r.prompts.entries()) {
      const result = await generate(generator, prompt, r, signal, turn);
      choices.push({ index, text: result.text, logprobs: await logprobsOf(generator, r, result), ...ending(result) });
      await count(prompt, result);
    }
    sendJSON(res, 200, { ...head, choices, usage });
    return;
  }

  // OpenAI: with include_usage every chunk carries `usage: null`, and one last chunk the totals.
  const nullUsage = r.includeUsage ? { usage: null } : {};
  for (const [index, prompt] of r.prompts.entries()) {
    const onToken = (piece: string) => {
      if (piece !== '') sendEvent(res, { ...head, choices: [{ index, text: piece, logprobs: null, finish_reason: null }], ...nullUsage });
    };
    const result = await generate(generator, prompt, r, signal, turn, onToken);
    // Text events cannot carry their tokens' figures (a piece is not a token), so the choice's
    // last event carries them all: concatenated over the events, as OpenAI's are, they are the list.
    sendEvent(res, { ...head, choices: [{ index, text: '', logprobs: await logprobsOf(generator, r, result), ...ending(result) }], ...nullUsage });
    if (r.includeUsage) await count(prompt, result);
  }
  if (r.includeUsage) sendEvent(res, { ...head, choices: [], usage });
  if (!res.destroyed && !res.writableEnded) res.end('data: [DONE]\n\n');
}

/** OpenAI's finish_reason ('stop' covers eos), and vLLM's stop_reason: the matched stop string, else null. */
function ending(result: GenerateResult): { finish_reason: 'stop' | 'length'; stop_reason: string | null } {
  return { finish_reason: result.finishReason === 'length' ? 'length' : 'stop', stop_reason: result.stopSequence ?? null };
}

async function generate(
  generator: Generator,
  prompt: GeneratorPrompt,
  r: CompletionsRequest,
  signal: AbortSignal,
  turn: () => Promise<() => void>,
  onToken?: (piece: string) => void,
): Promise<GenerateResult> {
  const options: GenerateOptions = { maxTokens: r.maxTokens, signal };
  if (r.stop.length > 0) options.stop = r.stop;
  if (r.temperature !== undefined) options.temperature = r.temperature;
  if (r.topP !== undefined) options.topP = r.topP;
  if (r.seed !== undefined) options.seed = r.seed;
  if (r.logprobs) options.logprobs = true;
  let finished = false;
  // A generator must not call onToken after it resolved; if one does, the stream has moved on.
  if (onToken) options.onToken = (piece) => void (finished || onToken(piece));
  let result: GenerateResult;
  const release = await turn();
  try {
    result = await generator.generate(prompt, options);
  } catch (err) {
    // Fetch-style backends reject with the signal's reason on abort.
    if (signal.aborted) throw signal.reason;
    // Backends reject bad input (a token id past the vocabulary, a prompt longer than the context) with RangeError.
    if (err instanceof RangeError) throw new HttpError(400, err.message);
    throw new HttpError(500, `Generation failed: ${messageOf(err)}`);
  } finally {
    finished = true;
    release();
  }
  if (result.finishReason === 'abort') {
    if (signal.aborted) throw signal.reason;
    throw new HttpError(500, "Generation failed: the generator ended with finish reason 'abort' without being aborted");
  }
  return result;
}

/**
 * The choice's `logprobs`: null unless asked for, and null when the generator reported none.
 * `tokens` are the ids decoded one by one, when the generator has them and `decode`.
 */
async function logprobsOf(generator: Generator, r: CompletionsRequest, result: GenerateResult): Promise<Logprobs | null> {
  if (!r.logprobs || result.logprobs === undefined) return null;
  // JSON has no -Infinity (stringify writes null): vLLM's convention, -9999, stands for it.
  const values = result.logprobs.map((x) => (Number.isFinite(x) ? x : -9999));
  let tokens: string[] | null = null;
  const ids = result.tokenIds;
  if (ids !== undefined && ids.length === values.length && generator.decode) {
    try {
      tokens = await Promise.all(ids.map((id) => generator.decode!([id])));
    } catch (err) {
      throw new HttpError(500, `Decoding the generated tokens failed: ${messageOf(err)}`);
    }
  }
  return { tokens, token_logprobs: values, top_logprobs: null, text_offset: null };
}

async function promptTokens(generator: Generator, prompt: GeneratorPrompt): Promise<number> {
  if (typeof prompt !== 'string') return prompt.length;
  try {
    return v.integer('countTokens() result', await generator.countTokens(prompt), 0);
  } catch (err) {
    throw new HttpError(500, `Counting the prompt's tokens failed: ${messageOf(err)}`);
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
