/**
 * Runs a checked chat request through the pipeline and writes OpenAI's chat completion: one
 * `chat.completion` body, or `chat.completion.chunk` events.
 * @module
 */
import type { ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { PipelineRequest, PipelineResult } from '../pipeline/index';
import type { ChatRequest } from './chat-request';
import { endEvents, ending, pipelineFields, type RunContext, runOne, sendEvent, sendJSON, tokenLogprobs, traceField, type Usage } from './completions-handler';

/** OpenAI's chat `logprobs` of one choice: one entry per generated token. */
interface ChatLogprobs {
  content: Array<{ token: string; logprob: number; bytes: number[] | null; top_logprobs: [] }>;
}

/** Answers a checked chat request: one pipeline run. */
export async function chat(ctx: RunContext, model: string, r: ChatRequest, res: ServerResponse): Promise<void> {
  const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
  const created = Math.floor(Date.now() / 1000);
  const request: PipelineRequest = { messages: r.messages, ...pipelineFields(r.extension, ctx.user) };
  if (r.maxTokens !== undefined) request.maxTokens = r.maxTokens;
  if (r.stop.length > 0) request.stop = r.stop;
  if (r.temperature !== undefined) request.temperature = r.temperature;
  if (r.topP !== undefined) request.topP = r.topP;
  if (r.seed !== undefined) request.seed = r.seed;
  if (r.logprobs) request.logprobs = true;
  const usageOf = (x: PipelineResult): Usage => ({ prompt_tokens: x.promptTokens, completion_tokens: x.tokens, total_tokens: x.promptTokens + x.tokens });

  if (!r.stream) {
    const result = await runOne(ctx, request);
    const message: Record<string, unknown> = { role: 'assistant', content: result.text };
    if (result.thinking !== undefined) message['reasoning_content'] = result.thinking;
    const { finish_reason } = ending(result);
    sendJSON(res, 200, {
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [{ index: 0, message, logprobs: await chatLogprobs(ctx, r.logprobs, result), finish_reason }],
      usage: usageOf(result),
      ...traceField(r.extension, [result]),
    });
    return;
  }

  const head = { id, object: 'chat.completion.chunk', created, model };
  const nullUsage = r.includeUsage ? { usage: null } : {};
  const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) =>
    sendEvent(res, { ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish, ...extra }], ...nullUsage });
  // The role goes first, alone, as OpenAI's streams do; it is sent with the first text (or at
  // the end), so a request that fails before any output still gets a plain HTTP error.
  let opened = false;
  const open = () => {
    if (opened) return;
    opened = true;
    chunk({ role: 'assistant', content: '' }, null);
  };
  const thinks = r.extension.thinking !== undefined || r.extension.multiRound !== undefined;
  const onToken = (piece: string) => {
    if (piece === '') return;
    open();
    chunk({ content: piece }, null);
  };
  // With thinking the answer exists only once the thinking is done: the thinking goes first
  // (as `reasoning_content`, as vLLM and DeepSeek send it), then the answer, in one piece each.
  const result = await runOne(ctx, request, thinks ? undefined : onToken);
  open();
  if (thinks) {
    if (result.thinking !== undefined && result.thinking !== '') chunk({ reasoning_content: result.thinking }, null);
    onToken(result.text);
  }
  const { finish_reason } = ending(result);
  sendEvent(res, {
    ...head,
    choices: [{ index: 0, delta: {}, logprobs: await chatLogprobs(ctx, r.logprobs, result), finish_reason }],
    ...nullUsage,
    ...traceField(r.extension, [result]),
  });
  if (r.includeUsage) sendEvent(res, { ...head, choices: [], usage: usageOf(result) });
  endEvents(res);
}

async function chatLogprobs(ctx: RunContext, asked: boolean, result: PipelineResult): Promise<ChatLogprobs | null> {
  const lp = await tokenLogprobs(ctx, asked, result);
  if (lp === null) return null;
  return {
    content: lp.values.map((logprob, i) => {
      const token = lp.tokens?.[i];
      return { token: token ?? '', logprob, bytes: token === undefined ? null : [...Buffer.from(token, 'utf8')], top_logprobs: [] };
    }),
  };
}
