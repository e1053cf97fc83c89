/**
 * A local decoder-only language model run by ONNX Runtime, as a {@link Generator}.
 * @module
 */
import type * as Ort from 'onnxruntime-node';
import type { Tokenizer as HFTokenizer } from '@huggingface/tokenizers' with { 'resolution-mode': 'require' };
import type { FinishReason, GenerateOptions, Generator, GeneratorPrompt } from '../generator';
import { checkGenerateOptions, checkPrompt } from '../generate-options';
import { StopStream } from '../stop-stream';
import { CloseGuard } from '../../toolkit/closing';
import { SerialQueue } from '../../toolkit/serial-queue';
import * as v from '../../validate';
import { type CreatedSession, createSession, executionProviderNames, loadOrt } from '../../onnx/session';
import { configInt, type ModelDir, readModelDir, tokenIds } from './model-dir';
import { KVCache, type PastSlot } from './kv-cache';
import { deviceKvSession, disposeOnDevice, onDevice } from './device-kv';
import { Detokenizer } from './detokenizer';
import { logProbability, Sampler } from './sampler';
import type { LogitsOptions, OnnxCausalLMInfo, OnnxCausalLMOptions, OnnxGenerateResult } from './types';

const LOAD_KEYS = ['executionProviders', 'threads', 'modelFile'] as const;
const LOGITS_KEYS = ['reuseCache'] as const;
const PAST = /^past_key_values\.(\d+)\.(key|value)$/;
const NO_CONTEXT_LENGTH = 1 << 20;

/**
 * A decoder-only causal language model in the standard ONNX export layout (Optimum,
 * transformers.js / onnx-community), decoded by ONNX Runtime with a KV cache.
 *
 * **Model folder.** `model.onnx` (or `onnx/model.onnx`, or `modelFile`) taking `input_ids`,
 * `attention_mask`, optionally `position_ids`, and `past_key_values.N.key` / `.value`
 * (float32 or float16, `[batch, kv_heads, past, head_dim]`), returning `logits` and
 * `present.N.key` / `.value`; `tokenizer.json` (read by `@huggingface/tokenizers`);
 * `config.json`; optionally `tokenizer_config.json` and `generation_config.json`.
 *
 * **Decoding.** Text prompts are encoded with the tokenizer's special tokens (BOS where it
 * adds one); id prompts are used as given. Greedy when `temperature` is 0, else softmax
 * sampling at that temperature with nucleus `topP`, from a xoshiro128** generator seeded by
 * `seed` (the same seed, prompt and options give the same tokens). Unset sampling options
 * follow `generation_config.json` (`do_sample`, `temperature`, `top_p`); top-k and repetition
 * penalties are not applied. An unseeded sampling call draws its seed from the OS. With
 * `logprobs: true`, each generated token's log-probability is the float64 log-softmax of the
 * raw logits (temperature 1, before temperature and top-p) at that token, over the whole
 * vocabulary. Generation ends at `maxTokens`, the context length, an
 * end-of-sequence id (counted in `tokens`), a stop string (its tokens counted, its text
 * dropped), or abort (checked before every model run, so at most one more token runs).
 *
 * **KV cache.** The keys and values of the last call's prompt and output are kept. A call
 * whose prompt begins with cached tokens — a continuation of the previous prompt + output,
 * or the same system prompt — runs only the tokens after that prefix
 * ({@link OnnxGenerateResult.cachedTokens}). Calls run one at a time, in call order.
 *
 * @example
 * ```ts
 * import { OnnxCausalLM } from '@capibara/core';
 * const model = await OnnxCausalLM.load('./models/tiny', { threads: 2 });
 * const r = await model.generate('Once upon a time', { maxTokens: 32, temperature: 0.7, seed: 1 });
 * console.log(r.text, r.tokens, r.finishReason);
 * await model.close();
 * ```
 */
export class OnnxCausalLM implements Generator {
  /** The model's shape. */
  readonly info: OnnxCausalLMInfo;
  /** The execution providers the session was created with (`['cpu']` after a fallback). */
  readonly executionProviders: readonly string[];

  readonly #ort: typeof Ort;
  readonly #session: Ort.InferenceSession;
  /** The model's past inputs, for freeing device-resident ones (device-kv.ts). */
  readonly #slots: readonly PastSlot[];
  readonly #tokenizer: HFTokenizer;
  readonly #cache: KVCache;
  readonly #defaults: { temperature: number; topP: number };
  readonly #prefillChunk: number;
  readonly #queue = new SerialQueue();
  readonly #guard = new CloseGuard('OnnxCausalLM');

  private constructor(ort: typeof Ort, session: Ort.InferenceSession, providers: string[], tokenizer: HFTokenizer, files: ModelDir, slots: PastSlot[], positionIds: boolean, vocabSize: number) {
    this.#ort = ort;
    this.#session = session;
    this.#slots = slots;
    this.#tokenizer = tokenizer;
    this.executionProviders = providers;
    this.#cache = new KVCache(slots, ort.Tensor as never);
    const sample = files.generation['do_sample'] === true;
    const t = files.generation['temperature'];
    const p = files.generation['top_p'];
    this.#defaults = {
      temperature: sample ? (typeof t === 'number' && t >= 0 ? t : 1) : 0,
      topP: sample && typeof p === 'number' && p > 0 && p <= 1 ? p : 1,
    };
    this.info = {
      vocabSize,
      layers: slots.length / 2,
      contextLength: configInt(files, 'max_position_embeddings') ?? NO_CONTEXT_LENGTH,
      eosTokenIds: tokenIds(files, 'eos_token_id').filter((id) => id < vocabSize),
      positionIds,
    };
    // Prefill logits are [chunk, vocab] floats: keep them near 64 MiB for large vocabularies.
    this.#prefillChunk = Math.max(16, Math.min(512, Math.floor(2 ** 24 / vocabSize)));
  }

  /**
   * Loads a model folder (see the class description for its layout). With an accelerator
   * provider active (such as `'cuda'`), the session binds the `present.*` outputs to device memory
   * (`preferredOutputLocation: 'gpu-buffer'`), so the KV cache is fed back between steps without
   * a copy to the host (when ONNX Runtime refuses the option, the first session is kept). On the
   * CPU provider nothing changes.
   *
   * @param dir The folder.
   * @param options Execution providers, threads and which ONNX file.
   * @returns The model, ready to generate.
   * @throws Error naming the missing file, the unreadable JSON, or the graph's inputs and
   * outputs when it is not a decoder with a KV cache; TypeError / RangeError for bad options.
   *
   * @example
   * ```ts
   * const model = await OnnxCausalLM.load('./models/tiny');
   * console.log(model.info.vocabSize, model.info.layers, model.executionProviders);
   * ```
   */
  static async load(dir: string, options: OnnxCausalLMOptions = {}): Promise<OnnxCausalLM> {
    v.nonEmptyString('dir', dir);
    const o = v.options<OnnxCausalLMOptions>('options', options, LOAD_KEYS);
    const requested = executionProviderNames('options.executionProviders', o.executionProviders);
    const threads = o.threads === undefined ? undefined : v.integer('options.threads', o.threads, 1, 256);
    const modelFile = o.modelFile === undefined ? undefined : v.nonEmptyString('options.modelFile', o.modelFile);

    const files = readModelDir(dir, modelFile);
    const ort = loadOrt();
    const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: typeof HFTokenizer };
    let tokenizer: HFTokenizer;
    try {
      tokenizer = new Tokenizer(files.tokenizerJson, files.tokenizerConfig);
    } catch (err) {
      throw new Error(`OnnxCausalLM.load: ${dir}/tokenizer.json could not be read by @huggingface/tokenizers: ${(err as Error).message}`);
    }
    let created: CreatedSession;
    try {
      created = await createSession(ort, files.modelPath, { providers: requested, threads, warningType: 'OnnxCausalLMWarning', what: files.modelPath });
    } catch (err) {
      throw new Error(`OnnxCausalLM.load: ONNX Runtime could not load ${files.modelPath}: ${(err as Error).message}`);
    }
    const { session, providers } = created;
    try {
      const { slots, positionIds, vocabSize } = inspectGraph(session, files);
      // With an accelerator provider, a session whose KV outputs stay on the device (device-kv.ts).
      const bound = await deviceKvSession(ort, files.modelPath, providers, threads, slots);
      if (bound !== null) await session.release();
      return new OnnxCausalLM(ort, bound ?? session, providers, tokenizer, files, slots, positionIds, vocabSize);
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  /**
   * Continues `prompt` (see the class description for decoding, stops and the KV cache).
   *
   * @param prompt Text (encoded with the tokenizer's special tokens) or token ids.
   * @param options Cap, stop strings, sampling, abort and streaming.
   * @returns The text, its token ids and count, why it ended, and the call's costs.
   *
   * @example
   * ```ts
   * const r = await model.generate('Q: 2+2?\nA:', { maxTokens: 8, stop: ['\n'], temperature: 0 });
   * const next = await model.generate(prompt + r.text, { maxTokens: 8 }); // runs only the new tokens
   * ```
   */
  async generate(prompt: GeneratorPrompt, options: GenerateOptions): Promise<OnnxGenerateResult> {
    checkPrompt(prompt, this.info.vocabSize);
    const o = checkGenerateOptions(options);
    return this.#serial(() => this.#generate(prompt, o));
  }

  /**
   * Next-token logits after `tokenIds` (the last position's row), through the KV cache.
   * For inspection, tests and custom decoding loops.
   *
   * @param tokenIds A non-empty sequence of token ids.
   * @param options Whether to reuse the cache.
   * @returns A copy of the `vocabSize` logits.
   *
   * @example
   * ```ts
   * const ids = model.encode('The sky is');
   * const logits = await model.logits(ids);
   * ```
   */
  async logits(tokenIds: readonly number[], options: LogitsOptions = {}): Promise<Float32Array> {
    checkPrompt(tokenIds, this.info.vocabSize);
    if (tokenIds.length === 0) throw v.rangeError('tokenIds', 'non-empty array of token ids', tokenIds);
    const o = v.options<LogitsOptions>('options', options, LOGITS_KEYS);
    const reuse = o.reuseCache === undefined ? true : v.boolean('options.reuseCache', o.reuseCache);
    return this.#serial(async () => {
      if (!reuse) this.#dropCache();
      return Float32Array.from((await this.#extend([...tokenIds]))!);
    });
  }

  /**
   * Token count of `text` on its own (no special tokens added).
   *
   * @param text Any text.
   * @returns The number of tokens.
   *
   * @example
   * ```ts
   * model.countTokens('</think>'); // 1 for a tokenizer with that added token
   * ```
   */
  countTokens(text: string): number {
    return this.encode(text).length;
  }

  /**
   * Token ids of `text` on its own (no special tokens added).
   *
   * @param text Any text.
   * @returns The ids.
   *
   * @example
   * ```ts
   * const ids = model.encode('hello');
   * ```
   */
  encode(text: string): number[] {
    v.string('text', text);
    return this.#tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * Text of token ids, special tokens included.
   *
   * @param ids Token ids of this model's vocabulary.
   * @returns The text.
   *
   * @example
   * ```ts
   * model.decode(model.encode('hello')); // 'hello'
   * ```
   */
  decode(ids: readonly number[]): string {
    checkPrompt(ids, this.info.vocabSize);
    if (ids.length === 0) return '';
    return this.#tokenizer.decode([...ids], { skip_special_tokens: false });
  }

  /**
   * Drops the KV cache (its memory goes at the next garbage collection).
   *
   * @example
   * ```ts
   * model.clearCache();
   * ```
   */
  clearCache(): void {
    this.#cache.clear();
  }

  /**
   * Waits for calls in progress, then releases the session. Later calls reject.
   *
   * @example
   * ```ts
   * await model.close();
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(async () => {
      await this.#queue.idle();
      this.#dropCache();
      await this.#session.release();
    });
  }

  /** {@link OnnxCausalLM.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // One call at a time: the KV cache is shared state.
  #serial<T>(work: () => Promise<T>): Promise<T> {
    if (this.#guard.closed) return Promise.reject(this.#guard.error());
    return this.#queue.run(work);
  }

  async #generate(prompt: GeneratorPrompt, o: ReturnType<typeof checkGenerateOptions>): Promise<OnnxGenerateResult> {
    const ids = typeof prompt === 'string' ? this.#tokenizer.encode(prompt).ids : [...prompt];
    if (ids.length === 0) throw v.rangeError('prompt', 'prompt of at least one token', prompt);
    const context = this.info.contextLength;
    if (ids.length > context) throw v.rangeError('prompt', `prompt of at most ${context} tokens (the model's context length)`, `${ids.length} tokens`);
    const out: OnnxGenerateResult = { text: '', tokenIds: [], tokens: 0, finishReason: 'length', promptTokens: ids.length, promptTokenIds: ids, cachedTokens: 0, prefillMs: 0, decodeMs: 0 };
    const logprobs: number[] | undefined = o.logprobs ? (out.logprobs = []) : undefined;
    if (o.signal?.aborted) return { ...out, finishReason: 'abort' };
    if (o.maxTokens === 0 || ids.length === context) return out; // prompt + output never exceed the context

    const sampler = new Sampler(o.temperature ?? this.#defaults.temperature, o.topP ?? this.#defaults.topP, o.seed);
    const stream = new StopStream(o.stop, o.onToken);
    const detok = new Detokenizer((x) => this.#tokenizer.decode(x, { skip_special_tokens: true }), ids);
    const eos = new Set(this.info.eosTokenIds);
    const finish = (reason: FinishReason, textEnd = stream.raw.length, stop?: string): OnnxGenerateResult => {
      out.finishReason = reason;
      out.tokens = out.tokenIds.length;
      if (reason === 'abort') {
        out.text = stream.flushOnAbort();
        return out;
      }
      stream.end(textEnd);
      out.text = stream.raw.slice(0, textEnd);
      if (stop !== undefined) out.stopSequence = stop;
      return out;
    };

    out.cachedTokens = this.#cache.reusable(ids);
    // The sequence is kept here, not read back from the cache: clearCache() between two model
    // runs (from onToken, say) then costs a recompute, never the context.
    const seq = [...ids];
    let t0 = performance.now();
    let logits = await this.#extend(seq, o.signal);
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
        logits = await this.#extend(seq, o.signal);
        if (logits === null) return finish('abort');
      }
    } finally {
      out.decodeMs = performance.now() - t0;
    }
  }

  /**
   * Runs the tokens of `ids` the cache lacks (in chunks), making the cache cover `ids`.
   * Returns the last position's logits (a view), or null when `signal` aborted first.
   */
  async #extend(ids: number[], signal?: AbortSignal): Promise<Float32Array | null> {
    let done = this.#cache.reusable(ids);
    // Device-resident past tensors cannot be cut to a shorter prefix without a download: rerun it.
    if (done < this.#cache.ids.length && this.#pastOnDevice()) {
      this.#dropCache();
      done = 0;
    }
    let logits: Float32Array | null = null;
    while (done < ids.length) {
      if (signal?.aborted) return null;
      const end = Math.min(ids.length, done + this.#prefillChunk);
      logits = await this.#run(ids, done, end);
      done = end;
    }
    return logits;
  }

  /** Whether the cached past tensors are on the device (IO binding, device-kv.ts). */
  #pastOnDevice(): boolean {
    return this.#cache.ids.length > 0 && Object.values(this.#cache.feeds(this.#cache.ids.length)).some(onDevice);
  }

  /** Empties the cache, freeing device-resident tensors at once. */
  #dropCache(): void {
    if (this.#cache.ids.length > 0) disposeOnDevice(Object.values(this.#cache.feeds(this.#cache.ids.length)));
    this.#cache.clear();
  }

  // One model run over ids[start, end) with the cache holding ids[0, start).
  async #run(ids: number[], start: number, end: number): Promise<Float32Array> {
    const { Tensor } = this.#ort;
    const n = end - start;
    const feeds: Record<string, Ort.Tensor> = this.#cache.feeds(start);
    feeds['input_ids'] = new Tensor('int64', BigInt64Array.from(ids.slice(start, end), BigInt), [1, n]);
    feeds['attention_mask'] = new Tensor('int64', new BigInt64Array(end).fill(1n), [1, end]);
    if (this.info.positionIds) {
      const pos = new BigInt64Array(n);
      for (let i = 0; i < n; i++) pos[i] = BigInt(start + i);
      feeds['position_ids'] = new Tensor('int64', pos, [1, n]);
    }
    let outputs: Ort.InferenceSession.ReturnType;
    const past = this.#slots.map((s) => feeds[s.input]!);
    try {
      outputs = await this.#session.run(feeds);
    } catch (err) {
      disposeOnDevice(past);
      this.#cache.clear();
      throw new Error(`OnnxCausalLM: ONNX Runtime failed running ${n} tokens after ${start}: ${(err as Error).message}`);
    }
    this.#cache.update(ids.slice(0, end), outputs);
    // The step's past is consumed: free what of it is on the device now (not left for the GC, which cannot see device memory).
    disposeOnDevice(past, new Set(this.#slots.map((s) => outputs[s.output]!)));
    const logits = outputs['logits']!;
    const V = this.info.vocabSize;
    const row = (n - 1) * V;
    if (logits.type === 'float16') return halfToFloat(logits.data as Uint16Array, row, V);
    return (logits.data as Float32Array).subarray(row, row + V);
  }
}

/** Checks the graph is a decoder with a KV cache, and reads its past layout. */
function inspectGraph(session: Ort.InferenceSession, files: ModelDir): { slots: PastSlot[]; positionIds: boolean; vocabSize: number } {
  const ins = session.inputNames;
  const outs = session.outputNames;
  const where = `${files.modelPath} (inputs: ${ins.join(', ')}; outputs: ${outs.join(', ')})`;
  if (!ins.includes('input_ids') || !outs.includes('logits')) {
    throw new Error(`OnnxCausalLM.load: not a causal language model: expected an input 'input_ids' and an output 'logits' in ${where}`);
  }
  const past = ins.filter((n) => PAST.test(n));
  if (past.length === 0) {
    throw new Error(`OnnxCausalLM.load: the model has no past_key_values inputs, so no KV cache: export it as a decoder with past (Optimum task 'text-generation-with-past'): ${where}`);
  }
  const other = ins.filter((n) => !PAST.test(n) && n !== 'input_ids' && n !== 'attention_mask' && n !== 'position_ids');
  if (other.length > 0 || !ins.includes('attention_mask')) {
    throw new Error(`OnnxCausalLM.load: unsupported inputs ${other.length > 0 ? other.map((n) => `'${n}'`).join(', ') : "(no 'attention_mask')"}: expected input_ids, attention_mask, optional position_ids and past_key_values.N.key/value in ${where}`);
  }
  const meta = new Map(session.inputMetadata.map((m) => [m.name, m]));
  const layers = past.length / 2;
  const slots: PastSlot[] = [];
  const heads = configInt(files, 'num_key_value_heads') ?? configInt(files, 'num_attention_heads');
  const attnHeads = configInt(files, 'num_attention_heads');
  const hidden = configInt(files, 'hidden_size');
  const headDimCfg = configInt(files, 'head_dim') ?? (hidden !== undefined && attnHeads !== undefined ? hidden / attnHeads : undefined);
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value']) {
      const input = `past_key_values.${i}.${kind}`;
      const output = `present.${i}.${kind}`;
      if (!ins.includes(input)) throw new Error(`OnnxCausalLM.load: missing input '${input}' (past inputs must be numbered 0..${layers - 1}) in ${where}`);
      if (!outs.includes(output)) throw new Error(`OnnxCausalLM.load: missing output '${output}' for input '${input}' in ${where}`);
      const m = meta.get(input);
      const type = m?.isTensor ? m.type : undefined;
      if (type !== 'float32' && type !== 'float16') throw new Error(`OnnxCausalLM.load: input '${input}' is ${type ?? 'not a tensor'}; float32 or float16 past keys/values are supported`);
      const shape = m?.isTensor ? m.shape : [];
      const h = typeof shape[1] === 'number' ? shape[1] : heads;
      const d = typeof shape[3] === 'number' ? shape[3] : headDimCfg;
      if (h === undefined || d === undefined || !Number.isInteger(d)) {
        throw new Error(`OnnxCausalLM.load: cannot tell the shape of '${input}': neither the graph nor config.json (num_key_value_heads, head_dim or hidden_size / num_attention_heads) gives it`);
      }
      slots.push({ input, output, type, heads: h, headDim: d });
    }
  }
  const logitsMeta = session.outputMetadata.find((m) => m.name === 'logits');
  const vShape = logitsMeta?.isTensor ? logitsMeta.shape[2] : undefined;
  const vocabSize = typeof vShape === 'number' ? vShape : configInt(files, 'vocab_size');
  if (vocabSize === undefined) throw new Error(`OnnxCausalLM.load: cannot tell the vocabulary size: neither the graph's logits shape nor config.json vocab_size gives it`);
  return { slots, positionIds: ins.includes('position_ids'), vocabSize };
}

/** IEEE half → float32 for `n` values from `offset`. */
function halfToFloat(src: Uint16Array, offset: number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const h = src[offset + i]!;
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    out[i] = exp === 0 ? sign * 2 ** -14 * (frac / 1024) : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

