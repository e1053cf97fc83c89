/**
 * Runs a checked completions request through the {@link OptimizationPipeline} and writes
 * OpenAI's answer: one JSON body, or server-sent events. Also what the chat handler shares:
 * running one pipeline request with the server's turns, and the JSON and event writers.
 * @module
 */
import type { ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { BudgetRefusedError, type OptimizationPipeline, type PipelineRequest, type PipelineResult } from '../pipeline/index';
import type { CompletionsRequest } from './completions-request';
import { HttpError } from './errors';
import type { Extension } from './extension';

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

/** OpenAI's `usage`. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** How one request runs its generations: the pipeline, the client's signal, the server's turns and who asks. */
export interface RunContext {
  pipeline: OptimizationPipeline;
  signal: AbortSignal;
  /** Waits for the expert's generation slot (503 when the line is full) and returns its release. */
  turn: (expertId: string) => Promise<() => void>;
  /** The budget and memory scope: the API key's user, else the body's `user`. */
  user: string | undefined;
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

/** Ends an event stream with `[DONE]`. */
export function endEvents(res: ServerResponse): void {
  if (!res.destroyed && !res.writableEnded) res.end('data: [DONE]\n\n');
}

/** The pipeline fields a body's own fields and its `capibara` extension ask for. */
export function pipelineFields(e: Extension, user: string | undefined): Partial<PipelineRequest> {
  const r: Partial<PipelineRequest> = {};
  if (user !== undefined) r.user = user;
  if (e.sessionId !== undefined) r.sessionId = e.sessionId;
  if (e.memory !== undefined) r.memory = e.memory;
  if (e.expert !== undefined) r.expert = e.expert;
  if (e.priority !== undefined) r.priority = e.priority;
  if (e.thinking !== undefined) r.thinking = e.thinking;
  if (e.multiRound !== undefined) r.multiRound = e.multiRound;
  return r;
}

/**
 * Runs one pipeline request, mapping what can go wrong to an HTTP answer: a budget denial →
 * 429 `budget_exceeded`; a RangeError (bad input a backend caught) → 400; anything else → 500;
 * abort → the signal's reason.
 */
export async function runOne(ctx: RunContext, request: PipelineRequest, onToken?: (piece: string, tokenId?: number) => void): Promise<PipelineResult> {
  try {
    return await ctx.pipeline.run(request, { signal: ctx.signal, turn: ctx.turn, ...(onToken ? { onToken } : {}) });
  } catch (err) {
    // Fetch-style backends reject with the signal's reason on abort.
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (err instanceof HttpError) throw err;
    if (err instanceof BudgetRefusedError) throw new HttpError(429, err.message, null, 'budget_exceeded', {}, 'insufficient_quota');
    if (err instanceof RangeError) throw new HttpError(400, err.message);
    throw new HttpError(500, `Generation failed: ${messageOf(err)}`);
  }
}

/** The `capibara` field of an answer: the expert and trace of each run, when the request asked for traces. */
export function traceField(e: Extension, results: ReadonlyArray<PipelineResult | undefined>): { capibara?: unknown } {
  if (!e.trace) return {};
  return { capibara: { runs: results.map((r, index) => (r === undefined ? null : { index, expert: r.expertId, trace: r.trace })) } };
}

/** Answers a checked completions request: each prompt is one pipeline run, with a turn of its own. */
export async function complete(ctx: RunContext, model: string, r: CompletionsRequest, res: ServerResponse): Promise<void> {
  const head: Head = { id: `cmpl-${randomUUID().replace(/-/g, '')}`, object: 'text_completion', created: Math.floor(Date.now() / 1000), model };
  const usage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  const count = (result: PipelineResult) => {
    usage.prompt_tokens += result.promptTokens;
    usage.completion_tokens += result.tokens;
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  };
  const request = (prompt: CompletionsRequest['prompts'][number]): PipelineRequest => {
    const p: PipelineRequest = { prompt, maxTokens: r.maxTokens, ...pipelineFields(r.extension, ctx.user) };
    if (r.stop.length > 0) p.stop = r.stop;
    if (r.temperature !== undefined) p.temperature = r.temperature;
    if (r.topP !== undefined) p.topP = r.topP;
    if (r.seed !== undefined) p.seed = r.seed;
    if (r.logprobs) p.logprobs = true;
    return p;
  };
  const results: PipelineResult[] = [];

  if (!r.stream) {
    const choices = [];
    for (const [index, prompt] of r.prompts.entries()) {
      const result = await runOne(ctx, request(prompt));
      results.push(result);
      choices.push({ index, text: result.text, logprobs: await logprobsOf(ctx, r.logprobs, result), ...ending(result) });
      count(result);
    }
    sendJSON(res, 200, { ...head, choices, usage, ...traceField(r.extension, results) });
    return;
  }

  // OpenAI: with include_usage every chunk carries `usage: null`, and one last chunk the totals.
  const nullUsage = r.includeUsage ? { usage: null } : {};
  for (const [index, prompt] of r.prompts.entries()) {
    const onToken = (piece: string) => {
      if (piece !== '') sendEvent(res, { ...head, choices: [{ index, text: piece, logprobs: null, finish_reason: null }], ...nullUsage });
    };
    const result = await runOne(ctx, request(prompt), onToken);
    results.push(result);
    // Text events cannot carry their tokens' figures (a piece is not a token), so the choice's
    // last event carries them all: concatenated over the events, as OpenAI's are, they are the list.
    const trace = traceField(r.extension, [result]);
    sendEvent(res, { ...head, choices: [{ index, text: '', logprobs: await logprobsOf(ctx, r.logprobs, result), ...ending(result) }], ...nullUsage, ...trace });
    count(result);
  }
  if (r.includeUsage) sendEvent(res, { ...head, choices: [], usage });
  endEvents(res);
}

/** OpenAI's finish_reason ('stop' covers eos), and vLLM's stop_reason: the matched stop string, else null. */
export function ending(result: PipelineResult): { finish_reason: 'stop' | 'length'; stop_reason: string | null } {
  return { finish_reason: result.finishReason === 'length' ? 'length' : 'stop', stop_reason: result.stopSequence ?? null };
}

/**
 * The generated tokens' log-probabilities and texts: null unless asked for, and null when the
 * generator reported none. Texts are the ids decoded one by one, when the expert's generator
 * has them and `decode` (else null). JSON has no -Infinity: vLLM's -9999 stands for it.
 */
export async function tokenLogprobs(ctx: RunContext, asked: boolean, result: PipelineResult): Promise<{ values: number[]; tokens: string[] | null } | null> {
  if (!asked || result.logprobs === undefined) return null;
  const values = result.logprobs.map((x) => (Number.isFinite(x) ? x : -9999));
  let tokens: string[] | null = null;
  const ids = result.tokenIds;
  const generator = ctx.pipeline.expert(result.expertId).generator;
  if (ids !== undefined && ids.length === values.length && generator.decode) {
    try {
      tokens = await Promise.all(ids.map((id) => generator.decode!([id])));
    } catch (err) {
      throw new HttpError(500, `Decoding the generated tokens failed: ${messageOf(err)}`);
    }
  }
  return { values, tokens };
}

async function logprobsOf(ctx: RunContext, asked: boolean, result: PipelineResult): Promise<Logprobs | null> {
  const lp = await tokenLogprobs(ctx, asked, result);
  return lp === null ? null : { tokens: lp.tokens, token_logprobs: lp.values, top_logprobs: null, text_offset: null };
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
