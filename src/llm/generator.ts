/**
 * The contract every LLM backend implements (local ONNX Runtime model, OpenAI-compatible
 * client, test fakes). Parts that drive a model (budget forcing, multi-round thinking, the
 * pipeline) depend on this interface only, never on a backend.
 * @module
 */

/**
 * Why a {@link Generator.generate} call ended.
 *
 * - `'stop'`: the output reached one of {@link GenerateOptions.stop}; see {@link GenerateResult.stopSequence}.
 * - `'length'`: a token cap was reached — {@link GenerateOptions.maxTokens}, or a smaller cap of
 *   the backend's own (context window, a server's per-request limit); the caller can tell them
 *   apart by comparing {@link GenerateResult.tokens} with `maxTokens`.
 * - `'eos'`: the model produced its end-of-sequence token.
 * - `'abort'`: {@link GenerateOptions.signal} was aborted; the result holds what was generated until then.
 *
 * @example
 * ```ts
 * const { finishReason } = await generator.generate('2 + 2 =', { maxTokens: 4 });
 * if (finishReason === 'length') console.log('cut by the token cap');
 * ```
 */
export type FinishReason = 'stop' | 'length' | 'eos' | 'abort';

/**
 * What a model continues: text (the backend tokenizes it, applying no chat template — the
 * caller passes fully templated text), or token ids of the backend's own vocabulary (sent
 * as they are, avoiding re-tokenization).
 *
 * @example
 * ```ts
 * const asText: GeneratorPrompt = '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n';
 * const asIds: GeneratorPrompt = [151644, 872, 198];
 * ```
 */
export type GeneratorPrompt = string | readonly number[];

/**
 * Options of {@link Generator.generate}.
 *
 * @example
 * ```ts
 * const controller = new AbortController();
 * const opts: GenerateOptions = {
 *   maxTokens: 256,
 *   stop: ['</think>'],
 *   temperature: 0,
 *   signal: controller.signal,
 *   onToken: (piece) => process.stdout.write(piece),
 * };
 * ```
 */
export interface GenerateOptions {
  /**
   * The most tokens this call may generate, an integer >= 0. A hard cap: the result's
   * {@link GenerateResult.tokens} never exceeds it (budgets rely on this). `0` generates
   * nothing and resolves with `finishReason: 'length'`.
   */
  maxTokens: number;
  /**
   * Non-empty strings that end generation as soon as the output text contains one of them
   * (the first to be completed wins: the match that ends earliest, then the one that starts earliest). The match is on text, so a stop sequence may begin or end
   * inside a token. Default: none.
   */
  stop?: readonly string[];
  /** Sampling temperature >= 0; `0` is greedy decoding. Default: the backend's. */
  temperature?: number;
  /** Nucleus sampling mass in (0, 1]; `1` disables it. Default: the backend's. */
  topP?: number;
  /** Integer seed for sampling, so a run can be repeated where the backend supports it. Default: unseeded. */
  seed?: number;
  /**
   * Aborts generation. The backend stops between tokens (a remote one cancels its request)
   * and resolves with `finishReason: 'abort'` and what it generated so far; a signal already
   * aborted at the call resolves at once with no tokens.
   */
  signal?: AbortSignal;
  /**
   * Streaming callback, called in order as output text becomes final. The concatenation of
   * every `piece` equals the resolved {@link GenerateResult.text}: a backend holds back text
   * that may begin a stop sequence and never passes the stop sequence itself. `tokenId` is
   * given when `piece` is exactly one token's text and the backend knows its id (a remote
   * backend may not). The callback must not throw; its return value is ignored.
   */
  onToken?: (piece: string, tokenId?: number) => void;
  /**
   * Asks for each generated token's log-probability ({@link GenerateResult.logprobs}).
   * Default `false`. A backend that cannot report them ignores the request and leaves
   * `logprobs` out of the result, so callers test for its presence.
   */
  logprobs?: boolean;
}

/**
 * Result of {@link Generator.generate}.
 *
 * @example
 * ```ts
 * const r = await generator.generate('Q: 2 + 2?\nA:', { maxTokens: 8, stop: ['\n'] });
 * // r = { text: ' 4', tokens: 3, finishReason: 'stop', stopSequence: '\n' }
 * // 3 tokens: ' ', '4' and the '\n' that matched the stop sequence (generated, so charged)
 * ```
 */
export interface GenerateResult {
  /**
   * The generated text, excluding the prompt, the matched stop sequence and anything after
   * it, and the end-of-sequence token.
   */
  text: string;
  /**
   * Ids of the generated tokens in order, when the backend knows them; exactly
   * {@link GenerateResult.tokens} entries, including tokens that spelled (part of) the stop
   * sequence, so decoding them can give more than {@link GenerateResult.text}.
   */
  tokenIds?: number[];
  /**
   * The exact number of tokens the backend generated in this call — what it charged, and
   * what budgets are enforced on. It includes tokens that spelled the matched stop sequence,
   * even when a stop string ends inside a token and part of that token's text is dropped,
   * and the end-of-sequence token where the backend's usage counts it. It is never more than
   * {@link GenerateOptions.maxTokens}, so it can differ from counting {@link GenerateResult.text}.
   */
  tokens: number;
  /** Why generation ended. */
  finishReason: FinishReason;
  /** The stop sequence that ended generation; present exactly when `finishReason` is `'stop'`. */
  stopSequence?: string;
  /**
   * Natural-log probabilities of the generated tokens, in order, under the model's own
   * next-token distribution at temperature 1 — the softmax of its raw logits, before any
   * temperature, top-p or other sampling filter — so the figure does not depend on how the
   * token was picked. Present only when {@link GenerateOptions.logprobs} was asked for and the
   * backend reports them. {@link OnnxCausalLM} gives exactly {@link GenerateResult.tokens}
   * entries (stop-string and end-of-sequence tokens included); a remote server gives what it
   * sent, which may leave out tokens it removed (such as a stop string), so the array can be
   * shorter than `tokens`.
   */
  logprobs?: number[];
}

/**
 * One LLM backend: continues a prompt and counts tokens with the model's tokenizer. Budget
 * forcing and the other test-time compute parts work over any implementation.
 *
 * Implementations reject (rather than resolve) only on failures — bad options, a broken
 * model, an unreachable server; abort resolves with `finishReason: 'abort'`.
 *
 * @example
 * ```ts
 * import { type Generator, forceThinkingBudget } from '@capibara/core';
 * async function run(model: Generator) {
 *   const r = await model.generate('The capital of France is', { maxTokens: 5, stop: ['.'] });
 *   console.log(r.text, r.tokens, await model.countTokens(r.text));
 *   return forceThinkingBudget(model, 'How many r in strawberry?', { maxThinkingTokens: 512, answerMaxTokens: 64 });
 * }
 * ```
 */
export interface Generator {
  /**
   * Continues `prompt`, generating at most `options.maxTokens` tokens.
   *
   * @param prompt Text or token ids to continue.
   * @param options Cap, stop sequences, sampling, abort and streaming.
   * @returns The generated text, its exact token count and why it ended.
   */
  generate(prompt: GeneratorPrompt, options: GenerateOptions): Promise<GenerateResult>;
  /**
   * Number of tokens `text` encodes to on its own (no special tokens added), with the
   * model's tokenizer. Text joined to other text can tokenize differently at the seam.
   *
   * @param text Text to count.
   */
  countTokens(text: string): number | Promise<number>;
  /**
   * Token ids of `text` on its own (no special tokens added); present where the backend has
   * the tokenizer locally. `(await encode(t)).length === await countTokens(t)`.
   *
   * @param text Text to encode.
   */
  encode?(text: string): number[] | Promise<number[]>;
  /**
   * Text of `ids`; present where the backend has the tokenizer locally.
   *
   * @param ids Token ids to decode.
   */
  decode?(ids: readonly number[]): string | Promise<string>;
}
