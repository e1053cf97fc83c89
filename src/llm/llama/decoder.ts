/**
 * A Llama-family decoder (Llama 2/3, Qwen2/2.5, Mistral without a sliding window) whose dense
 * parts run in ONNX Runtime and whose attention runs in the addon on DuoAttention's split KV
 * cache, as a {@link Generator}. Over 500 lines as one cohesive thing: the class's public
 * members, each under its TSDoc and example, and the generation loop they share.
 * @module
 */
import { availableParallelism } from 'node:os';
import type { Tokenizer as HFTokenizer } from '@huggingface/tokenizers' with { 'resolution-mode': 'require' };
import {
  type CalibrationResult, type CalibrationSample, DuoKVCache, HeadPattern, calibrateHeads,
} from '../../attention/index';
import { CloseGuard } from '../../toolkit/closing';
import { SerialQueue } from '../../toolkit/serial-queue';
import { loadOrt } from '../../onnx/session';
import * as v from '../../validate';
import type { FinishReason, GenerateOptions, Generator, GeneratorPrompt } from '../generator';
import { type CheckedGenerateOptions, checkGenerateOptions, checkPrompt } from '../generate-options';
import { StopStream } from '../stop-stream';
import { Detokenizer } from '../onnx/detokenizer';
import { logProbability, Sampler } from '../onnx/sampler';
import type { LlamaConfig } from './config';
import { idsOf, readLlamaFolder, resolvePattern } from './folder';
import { type Capture, Forward, type Timing } from './forward';
import { SafetensorsFolder } from './safetensors';
import type {
  KvCacheBytes, LlamaCalibrateOptions, LlamaDecoderInfo, LlamaDecoderOptions, LlamaGenerateResult, LlamaLogitsOptions,
} from './types';
import { loadWeights } from './weights';

const LOAD_KEYS = ['headPattern', 'sink', 'recent', 'threads', 'maxTokens', 'maxRollback', 'prefillChunk', 'storage', 'weights'] as const;
const WEIGHT_TYPES = ['float32', 'int8', 'int4'] as const;
const LOGITS_KEYS = ['reuseCache', 'lastPositions'] as const;
const CALIBRATE_KEYS = ['retrievalRatio', 'sink', 'recent', 'method', 'lastQueries', 'onProgress', 'signal'] as const;

/**
 * A Llama-family decoder from a Hugging Face model folder (`config.json`, `model.safetensors`
 * or a sharded `model.safetensors.index.json`, fp32/fp16/bf16 weights; `tokenizer.json`;
 * optionally `tokenizer_config.json` and `generation_config.json`). ONNX Runtime runs the
 * dense parts — per token one run per layer, layer i's output projection and MLP fused with
 * layer i + 1's norm, projections and RoPE — and the addon runs attention on a
 * {@link DuoKVCache}: with a head pattern, streaming heads keep only sink + recent tokens.
 * Weights are read from the files into the arrays ONNX Runtime reads in place (fp16 and bf16
 * widened to float32), one tensor at a time.
 *
 * **Generation** follows {@link OnnxCausalLM}'s contract: greedy or seeded temperature/top-p
 * sampling, stop strings, streaming through `onToken`, abort between model runs, exact token
 * counts, `logprobs`; the KV cache keeps the last call's tokens and a prompt that begins with
 * them runs only the rest ({@link OnnxGenerateResult.cachedTokens}). A prompt that diverges
 * inside the cached tokens rolls the cache back with {@link DuoKVCache.truncate}; where
 * streaming heads no longer hold the window that needs (further back than `maxRollback`), the
 * prompt is run from the start instead. Prefill runs in chunks of `prefillChunk` tokens; the
 * cache's attention is exact per chunk, so chunking never changes the result. Calls run one
 * at a time; a prefill chunk's attention (past 2^20 query × key pairs a layer) runs on a worker
 * thread, so the event loop stays free, while decode steps attend inline.
 *
 * @example
 * ```ts
 * import { LlamaDecoder } from '@capibara/core';
 * const full = await LlamaDecoder.load('./models/qwen2.5-0.5b', { threads: 4 });
 * const { pattern } = await full.calibrate([longText], { retrievalRatio: 0.5 });
 * await pattern.save('./patterns/qwen2.5-0.5b-50');
 * const duo = await LlamaDecoder.load('./models/qwen2.5-0.5b', { headPattern: './patterns/qwen2.5-0.5b-50' });
 * const r = await duo.generate(prompt, { maxTokens: 128 });
 * console.log(r.text, duo.kvBytes());
 * ```
 */
export class LlamaDecoder implements Generator {
  /** The model's shape from config.json. */
  readonly config: LlamaConfig;
  /** The shape generation sees. */
  readonly info: LlamaDecoderInfo;
  /** Which KV heads keep the full cache (every one when no pattern was given). */
  readonly headPattern: HeadPattern;
  /** Sink tokens of a streaming head. */
  readonly sink: number;
  /** Recent tokens of a streaming head. */
  readonly recent: number;

  readonly #forward: Forward;
  readonly #tokenizer: HFTokenizer;
  readonly #cache: DuoKVCache;
  readonly #cacheOptions: ConstructorParameters<typeof DuoKVCache>[0];
  /** Token ids whose keys and values the cache holds. */
  #ids: number[] = [];
  readonly #defaults: { temperature: number; topP: number };
  readonly #prefillChunk: number;
  readonly #threads: number;
  readonly #queue = new SerialQueue();
  readonly #guard = new CloseGuard('LlamaDecoder');

  private constructor(
    forward: Forward, tokenizer: HFTokenizer, config: LlamaConfig, pattern: HeadPattern, cacheOptions: ConstructorParameters<typeof DuoKVCache>[0],
    generation: Record<string, unknown>, eos: number[], prefillChunk: number, threads: number,
  ) {
    this.#threads = threads;
    this.#forward = forward;
    this.#tokenizer = tokenizer;
    this.config = config;
    this.headPattern = pattern;
    this.sink = cacheOptions.sink;
    this.recent = cacheOptions.recent;
    this.#cacheOptions = cacheOptions;
    this.#cache = new DuoKVCache(cacheOptions);
    this.#prefillChunk = prefillChunk;
    const sample = generation['do_sample'] === true;
    const t = generation['temperature'];
    const p = generation['top_p'];
    this.#defaults = {
      temperature: sample ? (typeof t === 'number' && t >= 0 ? t : 1) : 0,
      topP: sample && typeof p === 'number' && p > 0 && p <= 1 ? p : 1,
    };
    this.info = { vocabSize: config.vocabSize, layers: config.layers, contextLength: cacheOptions.maxTokens, eosTokenIds: eos.filter((id) => id < config.vocabSize) };
  }

  /**
   * Loads a model folder (see the class description).
   *
   * @param dir The folder.
   * @param options Head pattern, window, threads, cache size, prefill chunk, storage type.
   * @returns The decoder, ready to generate.
   * @throws RangeError naming config.json and the key for an unsupported architecture or
   * setting; Error naming the file, the tensor and the expected shape for a missing or
   * mismatched tensor; RangeError for a head pattern whose shape is not layers × KV heads;
   * TypeError / RangeError for bad options.
   *
   * @example
   * ```ts
   * const decoder = await LlamaDecoder.load('./models/llama', { headPattern: pattern, sink: 64, recent: 256, threads: 1 });
   * ```
   */
  static async load(dir: string, options: LlamaDecoderOptions = {}): Promise<LlamaDecoder> {
    v.nonEmptyString('dir', dir);
    const o = v.options<LlamaDecoderOptions>('options', options, LOAD_KEYS);
    const threads = o.threads === undefined ? availableParallelism() : v.integer('options.threads', o.threads, 1, 256);
    const prefillChunk = o.prefillChunk === undefined ? 512 : v.integer('options.prefillChunk', o.prefillChunk, 1, 65536);
    const weightType = o.weights === undefined ? 'float32' : v.oneOf('options.weights', o.weights, WEIGHT_TYPES);
    const folder = readLlamaFolder(dir);
    const c = folder.config;
    const pattern = await resolvePattern(o.headPattern, folder.configPath, c);
    const sink = o.sink === undefined ? (pattern.sink ?? 64) : v.integer('options.sink', o.sink, 0);
    const recent = o.recent === undefined ? (pattern.recent ?? 256) : v.integer('options.recent', o.recent, 1);
    const maxTokens = o.maxTokens === undefined ? c.maxPositions : v.integer('options.maxTokens', o.maxTokens, 1);
    const cacheOptions: ConstructorParameters<typeof DuoKVCache>[0] = {
      layers: c.layers, kvHeads: c.kvHeads, headDim: c.headDim, headPattern: pattern, sink, recent, maxTokens,
      ...(o.maxRollback === undefined ? {} : { maxRollback: o.maxRollback }),
      ...(o.storage === undefined ? {} : { storage: o.storage }),
    };
    new DuoKVCache(cacheOptions); // checks the window and storage options before the weights are read

    const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: typeof HFTokenizer };
    let tokenizer: HFTokenizer;
    try {
      tokenizer = new Tokenizer(folder.tokenizerJson, folder.tokenizerConfig);
    } catch (err) {
      throw new Error(`LlamaDecoder.load: ${dir}/tokenizer.json could not be read by @huggingface/tokenizers: ${(err as Error).message}`, { cause: err });
    }
    const st = await SafetensorsFolder.open(dir);
    let weights;
    try {
      weights = await loadWeights(st, c);
    } finally {
      await st.close();
    }
    const forward = await Forward.create(loadOrt(), c, weights, weightType, threads);
    return new LlamaDecoder(forward, tokenizer, c, pattern, cacheOptions, folder.generation, idsOf(folder, 'eos_token_id'), prefillChunk, threads);
  }

  /**
   * Continues `prompt` (see the class description).
   *
   * @param prompt Text (encoded with the tokenizer's special tokens) or token ids.
   * @param options Cap, stop strings, sampling, abort and streaming.
   * @returns The text, its token ids and count, why it ended, and the call's costs.
   *
   * @example
   * ```ts
   * const r = await decoder.generate('Q: 2+2?\nA:', { maxTokens: 8, stop: ['\n'], temperature: 0 });
   * ```
   */
  async generate(prompt: GeneratorPrompt, options: GenerateOptions): Promise<LlamaGenerateResult> {
    checkPrompt(prompt, this.info.vocabSize);
    const o = checkGenerateOptions(options);
    return this.#serial(() => this.#generate(prompt, o));
  }

  /**
   * Logits after `tokenIds`: the next-token row, or the last `lastPositions` rows.
   *
   * @param tokenIds A non-empty sequence of token ids.
   * @param options Cache reuse and how many positions.
   * @returns `[lastPositions, vocabSize]` logits, row-major (a fresh array).
   *
   * @example
   * ```ts
   * const next = await decoder.logits(decoder.encode('The sky is'));
   * ```
   */
  async logits(tokenIds: readonly number[], options: LlamaLogitsOptions = {}): Promise<Float32Array> {
    checkPrompt(tokenIds, this.info.vocabSize);
    if (tokenIds.length === 0) throw v.rangeError('tokenIds', 'non-empty array of token ids', tokenIds);
    const o = v.options<LlamaLogitsOptions>('options', options, LOGITS_KEYS);
    const reuse = o.reuseCache === undefined ? true : v.boolean('options.reuseCache', o.reuseCache);
    const last = o.lastPositions === undefined ? 1 : v.integer('options.lastPositions', o.lastPositions, 1, tokenIds.length);
    if (tokenIds.length > this.info.contextLength) throw v.rangeError('tokenIds', `at most ${this.info.contextLength} tokens (the cache's maxTokens)`, `${tokenIds.length} tokens`);
    return this.#serial(async () => {
      if (!reuse) this.#reset();
      const rows = await this.#extend([...tokenIds], { attentionMs: 0, denseMs: 0 }, undefined, last);
      return Float32Array.from(rows!);
    });
  }

  /**
   * Rolls the KV cache back to its first `tokens` tokens, as if only they had been run.
   *
   * @param tokens Tokens to keep, at most {@link LlamaDecoder.cachedTokens}.
   * @throws RangeError when streaming heads no longer hold the window that needs (beyond `maxRollback`).
   *
   * @example
   * ```ts
   * const mark = decoder.cachedTokens;
   * await decoder.generate(ids, { maxTokens: 8 });
   * await decoder.truncate(mark);
   * ```
   */
  async truncate(tokens: number): Promise<void> {
    const n = v.integer('tokens', tokens, 0);
    return this.#serial(async () => {
      if (n > this.#ids.length) throw new RangeError(`Expected at most ${this.#ids.length} tokens (the cached tokens) for tokens but received ${n}`);
      this.#cache.truncate(n);
      this.#ids.length = n;
    });
  }

  /** Tokens whose keys and values the cache holds. */
  get cachedTokens(): number {
    return this.#ids.length;
  }

  /**
   * Bytes of keys and values the cache holds now (`used`) and what a cache with every head full
   * would hold for the same tokens (`full`).
   *
   * @example
   * ```ts
   * const { used, full } = decoder.kvBytes();
   * console.log(`${(used / decoder.cachedTokens).toFixed(0)} bytes per token, ${(used / full * 100).toFixed(0)} % of full`);
   * ```
   */
  kvBytes(): KvCacheBytes {
    return { used: this.#cache.bytesUsed(), full: this.#cache.bytesFullCache() };
  }

  /**
   * Chooses retrieval heads on this model: prefills each text with every head full (in a cache
   * of its own; this decoder's cache is untouched), captures each layer's q, k (after RoPE) and
   * v, and scores the heads with `calibrateHeads` (one sample per layer and text).
   *
   * @param texts Calibration texts (encoded with special tokens) or token ids, each longer than sink + recent tokens.
   * @param options Ratio, window, method, progress, abort.
   * @returns `calibrateHeads`' result; `result.pattern` can be saved or given to {@link LlamaDecoder.load}.
   *
   * @example
   * ```ts
   * const { pattern } = await decoder.calibrate([readFileSync('book.txt', 'utf8')], { retrievalRatio: 0.25 });
   * ```
   */
  async calibrate(texts: readonly GeneratorPrompt[], options: LlamaCalibrateOptions): Promise<CalibrationResult> {
    if (!Array.isArray(texts) || texts.length === 0) throw v.typeError('texts', 'non-empty array of texts or token id arrays', texts);
    for (const t of texts) if (typeof t !== 'string') checkPrompt(t, this.info.vocabSize);
    const o = v.options<LlamaCalibrateOptions>('options', options, CALIBRATE_KEYS);
    const onProgress = v.optionalFunction<LlamaCalibrateOptions['onProgress']>('options.onProgress', o.onProgress);
    const signal = o.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw v.typeError('options.signal', 'AbortSignal', signal);
    const sink = o.sink === undefined ? this.sink : v.integer('options.sink', o.sink, 0);
    const recent = o.recent === undefined ? this.recent : v.integer('options.recent', o.recent, 1);
    const c = this.config;
    const total = texts.length * c.layers;
    const samples = async function* (this: LlamaDecoder): AsyncGenerator<CalibrationSample> {
      for (const [i, text] of texts.entries()) {
        const ids = typeof text === 'string' ? this.#tokenizer.encode(text).ids : [...text];
        if (ids.length > this.info.contextLength) throw v.rangeError(`texts[${i}]`, `text of at most ${this.info.contextLength} tokens`, `${ids.length} tokens`);
        if (ids.length <= sink + recent) {
          throw new RangeError(`Expected more than sink + recent = ${sink + recent} tokens in texts[${i}] but received ${ids.length}: no position loses keys to the window`);
        }
        yield* await this.#serial(() => this.#capture(ids, signal));
      }
    }.call(this);
    return calibrateHeads(samples, {
      layers: c.layers, queryHeads: c.queryHeads, kvHeads: c.kvHeads, headDim: c.headDim, sink, recent,
      retrievalRatio: o.retrievalRatio as number, threads: this.#threads,
      ...(o.method === undefined ? {} : { method: o.method }),
      ...(o.lastQueries === undefined ? {} : { lastQueries: o.lastQueries }),
      ...(onProgress === undefined ? {} : { onProgress: (done: number) => onProgress(done, total) }),
    });
  }

  /**
   * Token count of `text` on its own (no special tokens added).
   *
   * @example
   * ```ts
   * decoder.countTokens('hello');
   * ```
   */
  countTokens(text: string): number {
    return this.encode(text).length;
  }

  /**
   * Token ids of `text` on its own (no special tokens added).
   *
   * @example
   * ```ts
   * const ids = decoder.encode('hello');
   * ```
   */
  encode(text: string): number[] {
    v.string('text', text);
    return this.#tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * Text of token ids, special tokens included.
   *
   * @example
   * ```ts
   * decoder.decode(decoder.encode('hello')); // 'hello'
   * ```
   */
  decode(ids: readonly number[]): string {
    checkPrompt(ids, this.info.vocabSize);
    if (ids.length === 0) return '';
    return this.#tokenizer.decode([...ids], { skip_special_tokens: false });
  }

  /**
   * Forgets every cached token (the cache's buffers are kept for reuse).
   *
   * @example
   * ```ts
   * decoder.clearCache();
   * ```
   */
  clearCache(): void {
    this.#guard.check();
    this.#reset();
  }

  /**
   * Waits for calls in progress, then releases the sessions. Later calls reject.
   *
   * @example
   * ```ts
   * await decoder.close();
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(async () => {
      await this.#queue.idle();
      this.#reset();
      await this.#forward.release();
    });
  }

  /** {@link LlamaDecoder.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    if (this.#guard.closed) return Promise.reject(this.#guard.error());
    return this.#queue.run(work);
  }

  #reset(): void {
    this.#cache.reset();
    this.#ids = [];
  }

  /**
   * Makes the cache hold the longest prefix of `ids` it can reuse (at most `ids.length - keep`
   * tokens, so that many are run): rolls back to it, or empties the cache when streaming heads
   * cannot roll back that far. Returns the tokens kept.
   */
  #reuse(ids: readonly number[], keep: number): number {
    const most = Math.min(this.#ids.length, ids.length - keep);
    let n = 0;
    while (n < most && this.#ids[n] === ids[n]) n++;
    if (n < this.#ids.length) {
      try {
        this.#cache.truncate(n);
        this.#ids.length = n;
      } catch {
        this.#reset();
        return 0;
      }
    }
    return n;
  }

  /**
   * Runs the tokens of `ids` the cache lacks, in chunks. Returns the logits of the last `last`
   * positions (`[last, vocab]`), or null when `signal` aborted first.
   */
  async #extend(ids: number[], timing: Timing, signal?: AbortSignal, last = 1): Promise<Float32Array | null> {
    let done = this.#reuse(ids, last);
    const V = this.info.vocabSize;
    const out = new Float32Array(last * V);
    const from = ids.length - last;
    while (done < ids.length) {
      if (signal?.aborted) return null;
      const end = Math.min(ids.length, done + this.#prefillChunk);
      const rows: number[] = [];
      for (let p = Math.max(done, from); p < end; p++) rows.push(p - done);
      const chunk = ids.slice(done, end);
      let logits: Float32Array;
      try {
        logits = await this.#forward.run(chunk, done, this.#cache, rows.length > 0 ? rows : [chunk.length - 1], timing);
      } catch (err) {
        this.#reset(); // a failed pass may have stored some layers' keys and not others'
        throw new Error(`LlamaDecoder: a model pass over ${chunk.length} tokens after ${done} failed: ${(err as Error).message}`, { cause: err });
      }
      this.#ids.push(...chunk);
      if (rows.length > 0) out.set(logits, (done + rows[0]! - from) * V);
      done = end;
    }
    return out;
  }

  /** Prefills `ids` in a full cache of its own, collecting each layer's q, k, v. */
  async #capture(ids: number[], signal: AbortSignal | undefined): Promise<CalibrationSample[]> {
    const c = this.config;
    const cache = new DuoKVCache({ ...this.#cacheOptions, headPattern: HeadPattern.allRetrieval(c.layers, c.kvHeads), sink: 0, recent: 1, maxTokens: Math.max(1, ids.length), storage: 'float32' });
    const n = ids.length;
    const qw = c.queryHeads * c.headDim;
    const kw = c.kvHeads * c.headDim;
    const samples = Array.from({ length: c.layers }, (_, layer) => ({ layer, q: new Float32Array(n * qw), k: new Float32Array(n * kw), v: new Float32Array(n * kw) }));
    const timing = { attentionMs: 0, denseMs: 0 };
    for (let done = 0; done < n; ) {
      if (signal?.aborted) throw signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
      const end = Math.min(n, done + this.#prefillChunk);
      const at = done;
      const capture: Capture = (l, q, k, v) => {
        const s = samples[l]!;
        s.q.set(q, at * qw);
        s.k.set(k, at * kw);
        s.v.set(v, at * kw);
      };
      await this.#forward.run(ids.slice(done, end), done, cache, [end - done - 1], timing, capture);
      done = end;
    }
    return samples;
  }

  async #generate(prompt: GeneratorPrompt, o: CheckedGenerateOptions): Promise<LlamaGenerateResult> {
    const ids = typeof prompt === 'string' ? this.#tokenizer.encode(prompt).ids : [...prompt];
    if (ids.length === 0) throw v.rangeError('prompt', 'prompt of at least one token', prompt);
    const context = this.info.contextLength;
    if (ids.length > context) throw v.rangeError('prompt', `prompt of at most ${context} tokens (the cache's maxTokens)`, `${ids.length} tokens`);
    const timing: Timing = { attentionMs: 0, denseMs: 0 };
    const out: LlamaGenerateResult = {
      text: '', tokenIds: [], tokens: 0, finishReason: 'length', promptTokens: ids.length, promptTokenIds: ids, cachedTokens: 0, prefillMs: 0, decodeMs: 0,
      attentionMs: 0, denseMs: 0,
    };
    const logprobs: number[] | undefined = o.logprobs ? (out.logprobs = []) : undefined;
    if (o.signal?.aborted) return { ...out, finishReason: 'abort' };
    if (o.maxTokens === 0 || ids.length === context) return out;

    const sampler = new Sampler(o.temperature ?? this.#defaults.temperature, o.topP ?? this.#defaults.topP, o.seed);
    const stream = new StopStream(o.stop, o.onToken);
    const detok = new Detokenizer((x) => this.#tokenizer.decode(x, { skip_special_tokens: true }), ids);
    const eos = new Set(this.info.eosTokenIds);
    const finish = (reason: FinishReason, textEnd = stream.raw.length, stop?: string): LlamaGenerateResult => {
      out.finishReason = reason;
      out.tokens = out.tokenIds.length;
      out.attentionMs = timing.attentionMs;
      out.denseMs = timing.denseMs;
      if (reason === 'abort') {
        out.text = stream.flushOnAbort();
        return out;
      }
      stream.end(textEnd);
      out.text = stream.raw.slice(0, textEnd);
      if (stop !== undefined) out.stopSequence = stop;
      return out;
    };

    out.cachedTokens = this.#reuse(ids, 1);
    const seq = [...ids];
    let t0 = performance.now();
    let logits = await this.#extend(seq, timing, o.signal);
    out.prefillMs = performance.now() - t0;
    if (logits === null) return finish('abort');
    t0 = performance.now();
    try {
      for (;;) {
        const id = sampler.pick(logits);
        if (logprobs) logprobs.push(logProbability(logits, id));
        out.tokenIds.push(id);
        seq.push(id);
        if (eos.has(id)) {
          const tail = stream.push(detok.flush());
          return tail ? finish('stop', tail.index, tail.stop) : finish('eos');
        }
        const piece = detok.push(id);
        const hit = stream.push(piece, detok.lastSpan === 1 ? id : undefined);
        if (hit) return finish('stop', hit.index, hit.stop);
        if (out.tokenIds.length === o.maxTokens || ids.length + out.tokenIds.length >= context) {
          const tail = stream.push(detok.flush());
          return tail ? finish('stop', tail.index, tail.stop) : finish('length');
        }
        logits = await this.#extend(seq, timing, o.signal);
        if (logits === null) return finish('abort');
      }
    } finally {
      out.decodeMs = performance.now() - t0;
    }
  }
}
