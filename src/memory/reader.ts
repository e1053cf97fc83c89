/**
 * The MemAgent reading loop (Yu et al., arXiv 2507.02259) over any {@link Generator}: a long
 * document is read chunk by chunk, and after each chunk the model rewrites a bounded memory;
 * the answer is written from the question and the final memory only, so the cost is O(N).
 * @module
 */
import type { FinishReason, GenerateOptions, GenerateResult, Generator } from '../llm/index';
import * as v from '../validate';

// The prompts are MemAgent's own, verbatim (trailing space after `<problem>` included), from
// github.com/BytedTsinghua-SIA/MemAgent @ 76b7a658, taskutils/memory_eval/utils/recurrent.py
// (TEMPLATE, TEMPLATE_FINAL, NO_MEMORY; the RL training loop in recurrent/impls/memory.py uses
// the same TEMPLATE). Apache-2.0.

/**
 * The memory before the first chunk, as in MemAgent: `'No previous memory'`.
 *
 * @example
 * ```ts
 * memAgentMemoryPrompt('Who won?', MEMAGENT_NO_MEMORY, firstChunk);
 * ```
 */
export const MEMAGENT_NO_MEMORY = 'No previous memory';

/**
 * MemAgent's memory-update prompt: the task, then `<problem>`, `<memory>` and `<section>`
 * parts, ending with `'Updated memory:\n'`. The default of {@link MemAgentReaderOptions.memoryPrompt}.
 *
 * @param problem The question.
 * @param memory The memory so far ({@link MEMAGENT_NO_MEMORY} before the first chunk).
 * @param section The chunk of the document being read.
 * @returns The prompt text (not chat-templated).
 *
 * @example
 * ```ts
 * const p = memAgentMemoryPrompt('Where is the key?', 'No previous memory', 'The key is under the mat.');
 * p.endsWith('Updated memory:\n'); // true
 * ```
 */
export function memAgentMemoryPrompt(problem: string, memory: string, section: string): string {
  return `You are presented with a problem, a section of an article that may contain the answer to the problem, and a previous memory. Please read the provided section carefully and update the memory with the new information that helps to answer the problem. Be sure to retain all relevant details from the previous memory while adding any new, useful information.

<problem> 
${problem}
</problem>

<memory>
${memory}
</memory>

<section>
${section}
</section>

Updated memory:
`;
}

/**
 * MemAgent's answer prompt: the task, then `<problem>` and `<memory>` parts (no document),
 * ending with `'Your answer:\n'`. The default of {@link MemAgentReaderOptions.answerPrompt}.
 *
 * @param problem The question.
 * @param memory The final memory.
 * @returns The prompt text (not chat-templated).
 *
 * @example
 * ```ts
 * const p = memAgentAnswerPrompt('Where is the key?', 'The key is under the mat.');
 * p.includes('<section>'); // false: the answer sees the memory only
 * ```
 */
export function memAgentAnswerPrompt(problem: string, memory: string): string {
  return `You are presented with a problem and a previous memory. Please answer the problem based on the previous memory and format your response as follows "Therefore, the answer is (insert answer here)".

<problem> 
${problem}
</problem>

<memory>
${memory}
</memory>

Your answer:
`;
}

/**
 * Options of the {@link MemAgentReader} constructor.
 *
 * @example
 * ```ts
 * const opts: MemAgentReaderOptions = {
 *   generator: model,
 *   chunkTokens: 5000,
 *   memoryTokens: 1024,
 *   answerMaxTokens: 256,
 *   template: (p) => `<|im_start|>user\n${p}<|im_end|>\n<|im_start|>assistant\n`,
 *   temperature: 0,
 * };
 * ```
 */
export interface MemAgentReaderOptions {
  /** The model; required. Needs `generate` and `countTokens`; with `encode` and `decode` chunks are cut at exact token boundaries. */
  generator: Generator;
  /** Most tokens of document per chunk, an integer >= 1; default 5000 (the paper's). */
  chunkTokens?: number;
  /** Token cap of each memory update, an integer >= 1; default 1024 (the paper's). */
  memoryTokens?: number;
  /** Token cap of the answer, an integer >= 1; default 256. */
  answerMaxTokens?: number;
  /**
   * Wraps every prompt before it goes to the generator, e.g. in a chat template; default the
   * identity (the {@link Generator} continues raw text). Must return a string.
   */
  template?: (prompt: string) => string;
  /** Builds the memory-update prompt; default {@link memAgentMemoryPrompt}. Must return a string. */
  memoryPrompt?: (problem: string, memory: string, section: string) => string;
  /** Builds the answer prompt; default {@link memAgentAnswerPrompt}. Must return a string. */
  answerPrompt?: (problem: string, memory: string) => string;
  /** Sampling temperature >= 0 for every call; default the generator's. */
  temperature?: number;
  /** Integer seed >= 0 for every call; default unseeded. */
  seed?: number;
}

/**
 * One chunk of a document as {@link MemAgentReader.chunk} cut it.
 *
 * @example
 * ```ts
 * const chunks: ReaderChunk[] = await reader.chunk(longText);
 * console.log(chunks.length, chunks[0]?.tokens);
 * ```
 */
export interface ReaderChunk {
  /** The chunk's text. */
  text: string;
  /**
   * Its tokens: the exact number of token ids in the chunk when the generator has
   * `encode`/`decode`, else `countTokens(text)`.
   */
  tokens: number;
}

/**
 * Telemetry of one step of {@link MemAgentReader.read}: a memory update (one per chunk) or
 * the final answer.
 *
 * @example
 * ```ts
 * const step: ReaderStep = {
 *   kind: 'memory', chunk: 0, chunkTokens: 5000, memoryBefore: 'No previous memory',
 *   memoryAfter: 'The key is under the mat.', tokens: 9, finishReason: 'eos', truncated: false, ms: 812.4,
 * };
 * ```
 */
export interface ReaderStep {
  /** `'memory'`: the model read a chunk and rewrote the memory; `'answer'`: the model answered from the final memory. */
  kind: 'memory' | 'answer';
  /** Index of the chunk read (0-based); for `'answer'`, the number of chunks. */
  chunk: number;
  /** Tokens of the chunk read ({@link ReaderChunk.tokens}); 0 for `'answer'`. */
  chunkTokens: number;
  /** The memory in the prompt of this step. */
  memoryBefore: string;
  /**
   * The memory after this step: the generated text, verbatim, which replaces the memory (it is
   * never appended to); for `'answer'`, the same as `memoryBefore`.
   */
  memoryAfter: string;
  /** For `'answer'`, the generated answer; absent for `'memory'`. */
  answer?: string;
  /** Tokens generated by this step: the generator's {@link GenerateResult.tokens}. */
  tokens: number;
  /** How the generate call ended. */
  finishReason: FinishReason;
  /**
   * The output was cut at its cap (`finishReason === 'length'`): a memory cut at
   * `memoryTokens` is still kept as the memory.
   */
  truncated: boolean;
  /**
   * Tokens of the prompt sent (after `template`), counted on its own with `countTokens`;
   * present only when the generator has `encode` (a local tokenizer, so counting is cheap).
   */
  promptTokens?: number;
  /** Wall-clock milliseconds of the generate call. */
  ms: number;
}

/**
 * Options of {@link MemAgentReader.read}.
 *
 * @example
 * ```ts
 * const opts: ReadOptions = {
 *   signal: AbortSignal.timeout(60_000),
 *   onStep: (s) => console.log(s.kind, s.chunk, s.tokens),
 *   charge: (tokens) => budget.commit(requestId, tokens),
 * };
 * ```
 */
export interface ReadOptions {
  /**
   * Aborts the read: checked before each step and while chunking, and passed to every generate
   * call. The promise then rejects with `signal.reason`, even if the generator resolved with
   * `finishReason: 'abort'`; tokens of finished steps (and of the aborted call) have been charged.
   */
  signal?: AbortSignal;
  /** Called after each step, in order, and awaited; a throw rejects the read. */
  onStep?: (step: ReaderStep) => void | Promise<void>;
  /**
   * Charges tokens to a requester's budget: called after each step that generated tokens, with
   * its {@link ReaderStep.tokens}, before `onStep` and the next step, and awaited. The charges of
   * a completed read sum to {@link ReaderResult.generatedTokens}. A throw stops the read and rejects with it.
   */
  charge?: (tokens: number, step: ReaderStep) => void | Promise<void>;
}

/**
 * Result of {@link MemAgentReader.read}.
 *
 * @example
 * ```ts
 * const { answer, memory, chunks, generatedTokens } = await reader.read(book, 'Who is the narrator?');
 * ```
 */
export interface ReaderResult {
  /** The generated answer. */
  answer: string;
  /** The final memory: the output of the last memory update. */
  memory: string;
  /** Every step in order: one `'memory'` step per chunk, then the `'answer'` step. */
  steps: ReaderStep[];
  /** Number of chunks the document was cut into (= the `'memory'` steps). */
  chunks: number;
  /** Tokens generated in all: the exact sum of the generator's `tokens` over every step. */
  generatedTokens: number;
  /** Sum of {@link ReaderStep.promptTokens}; present only when the steps have it. */
  promptTokens?: number;
}

const KEYS = ['generator', 'chunkTokens', 'memoryTokens', 'answerMaxTokens', 'template', 'memoryPrompt', 'answerPrompt', 'temperature', 'seed'];
const READ_KEYS = ['signal', 'onStep', 'charge'];
const FINISH: readonly FinishReason[] = ['stop', 'length', 'eos', 'abort'];

/** Rejects a result that breaks the {@link Generator} contract: the token accounting relies on it. */
function checkResult(r: unknown, maxTokens: number): GenerateResult {
  if (r === null || typeof r !== 'object') throw v.typeError('the result of generator.generate()', 'a GenerateResult object', r);
  const { text, tokens, finishReason } = r as Partial<GenerateResult>;
  v.string('generator.generate() result.text', text);
  v.integer('generator.generate() result.tokens', tokens, 0, maxTokens);
  v.oneOf('generator.generate() result.finishReason', finishReason, FINISH);
  return r as GenerateResult;
}

/**
 * Largest `n` in `[lo, hi]` with `fits(n)`, where `fits(lo)` holds. Gallops up from `lo`, then
 * bisects: probes stay within about twice the answer, so cutting a whole document costs O(N)
 * text counted instead of probing halves of it. Only a measured fit is ever returned, so a
 * tokenizer that is not quite monotone under concatenation cannot make a chunk exceed the limit.
 */
async function largestFit(lo: number, hi: number, fits: (n: number) => Promise<boolean>): Promise<number> {
  let step = 1;
  let galloping = true;
  while (lo < hi) {
    const probe = galloping ? Math.min(hi, lo + step) : lo + Math.ceil((hi - lo) / 2);
    if (await fits(probe)) {
      lo = probe;
      step *= 2;
    } else {
      hi = probe - 1;
      galloping = false;
    }
  }
  return lo;
}

/**
 * MemAgent (arXiv 2507.02259): reads a document of any length with a fixed-size context. The
 * document is cut into chunks of at most `chunkTokens` tokens; the memory starts as
 * {@link MEMAGENT_NO_MEMORY}; for each chunk the model gets the question, the memory and the
 * chunk ({@link memAgentMemoryPrompt}) and its output — at most `memoryTokens` tokens —
 * overwrites the memory. Then the model answers from the question and the final memory only
 * ({@link memAgentAnswerPrompt}), with at most `answerMaxTokens` tokens.
 *
 * Every prompt is bounded by `chunkTokens` + the memory + the template, whatever the
 * document's length, so the cost grows linearly with it. A reader holds no state between
 * reads; one reader can serve concurrent reads.
 *
 * @example
 * ```ts
 * import { MemAgentReader } from '@capibara/core';
 * const reader = new MemAgentReader({ generator: model, chunkTokens: 4000, memoryTokens: 512, temperature: 0 });
 * const r = await reader.read(longReport, 'Which supplier missed the deadline?', {
 *   onStep: (s) => console.log(`${s.kind} ${s.chunk}: ${s.tokens} tokens${s.truncated ? ' (cut)' : ''}`),
 * });
 * console.log(r.answer, r.chunks, r.generatedTokens);
 * ```
 */
export class MemAgentReader {
  readonly #generator: Generator;
  readonly #chunkTokens: number;
  readonly #memoryTokens: number;
  readonly #answerMaxTokens: number;
  readonly #template: (prompt: string) => string;
  readonly #memoryPrompt: (problem: string, memory: string, section: string) => string;
  readonly #answerPrompt: (problem: string, memory: string) => string;
  readonly #temperature: number | undefined;
  readonly #seed: number | undefined;

  /**
   * Checks the options; invalid ones throw a `TypeError` or `RangeError` naming the option.
   *
   * @param options The generator, chunk and memory sizes, prompts and sampling.
   *
   * @example
   * ```ts
   * const reader = new MemAgentReader({ generator: model }); // 5000-token chunks, 1024-token memory
   * ```
   */
  constructor(options: MemAgentReaderOptions) {
    const o = v.options<MemAgentReaderOptions>('options', options, KEYS);
    const g = o.generator as Partial<Generator> | null | undefined;
    if (g === null || (typeof g !== 'object' && typeof g !== 'function') || typeof g.generate !== 'function' || typeof g.countTokens !== 'function') {
      throw v.typeError('generator', 'a Generator with generate and countTokens functions', o.generator);
    }
    this.#generator = g as Generator;
    this.#chunkTokens = o.chunkTokens === undefined ? 5000 : v.integer('chunkTokens', o.chunkTokens, 1);
    this.#memoryTokens = o.memoryTokens === undefined ? 1024 : v.integer('memoryTokens', o.memoryTokens, 1);
    this.#answerMaxTokens = o.answerMaxTokens === undefined ? 256 : v.integer('answerMaxTokens', o.answerMaxTokens, 1);
    this.#template = v.optionalFunction<(p: string) => string>('template', o.template) ?? ((p) => p);
    this.#memoryPrompt = v.optionalFunction<MemAgentReaderOptions['memoryPrompt']>('memoryPrompt', o.memoryPrompt) ?? memAgentMemoryPrompt;
    this.#answerPrompt = v.optionalFunction<MemAgentReaderOptions['answerPrompt']>('answerPrompt', o.answerPrompt) ?? memAgentAnswerPrompt;
    this.#temperature = o.temperature === undefined ? undefined : v.finite('temperature', o.temperature, { min: 0 });
    this.#seed = o.seed === undefined ? undefined : v.integer('seed', o.seed, 0);
  }

  /** True when chunks can be cut at exact token boundaries. */
  get #tokenized(): boolean {
    return typeof this.#generator.encode === 'function' && typeof this.#generator.decode === 'function';
  }

  /**
   * Cuts `document` into the chunks {@link MemAgentReader.read} reads, in order.
   *
   * With `encode`/`decode` (a local tokenizer) this is MemAgent's own cut: the document's token
   * ids in runs of exactly `chunkTokens` (the last one shorter), each decoded to text; a cut may
   * fall inside a word, or inside a character that spans tokens. Otherwise the cut is at
   * whitespace, at a paragraph break (a blank line) when one lies in the second half of the
   * chunk, with each chunk as long as `countTokens` allows without exceeding `chunkTokens`; a
   * word longer than that is cut between characters (a single character that alone counts more
   * than `chunkTokens` becomes a chunk of its own). The chunks' texts then join to the document exactly.
   *
   * @param document The text to cut, a non-empty string.
   * @param options `signal` aborts between chunks, rejecting with `signal.reason`.
   * @returns The chunks with their token counts.
   *
   * @example
   * ```ts
   * const chunks = await new MemAgentReader({ generator: model, chunkTokens: 64 }).chunk(text);
   * chunks.every((c) => c.tokens <= 64); // true
   * ```
   */
  async chunk(document: string, options: { signal?: AbortSignal } = {}): Promise<ReaderChunk[]> {
    v.nonEmptyString('document', document);
    const o = v.options<{ signal?: AbortSignal }>('options', options, ['signal']);
    if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw v.typeError('signal', 'AbortSignal', o.signal);
    o.signal?.throwIfAborted();
    return this.#tokenized ? this.#chunkByIds(document, o.signal) : this.#chunkByWords(document, o.signal);
  }

  async #chunkByIds(document: string, signal: AbortSignal | undefined): Promise<ReaderChunk[]> {
    const g = this.#generator;
    const ids: unknown = await g.encode!(document);
    if (!Array.isArray(ids)) throw v.typeError('generator.encode() result', 'array of token ids', ids);
    const chunks: ReaderChunk[] = [];
    for (let at = 0; at < ids.length; at += this.#chunkTokens) {
      signal?.throwIfAborted();
      const slice = (ids as number[]).slice(at, at + this.#chunkTokens);
      chunks.push({ text: v.string('generator.decode() result', await g.decode!(slice)), tokens: slice.length });
    }
    return chunks;
  }

  async #count(text: string): Promise<number> {
    return v.integer('generator.countTokens() result', await this.#generator.countTokens(text), 0);
  }

  async #chunkByWords(document: string, signal: AbortSignal | undefined): Promise<ReaderChunk[]> {
    const limit = this.#chunkTokens;
    // Words with their trailing whitespace; leading whitespace joins the first: nothing is lost.
    const pieces: string[] = document.match(/\S+\s*/g) ?? [];
    const lead = /^\s*/.exec(document)![0];
    if (lead !== '') {
      if (pieces.length > 0) pieces[0] = lead + pieces[0];
      else pieces.push(lead);
    }
    const chunks: ReaderChunk[] = [];
    let i = 0;
    while (i < pieces.length) {
      signal?.throwIfAborted();
      const first = pieces[i]!;
      const firstTokens = await this.#count(first);
      if (firstTokens > limit) {
        // A word over the limit: cut it between code points; its rest is read next.
        const chars = Array.from(first);
        const counts = new Map<number, number>();
        const fits = async (k: number) => {
          const n = await this.#count(chars.slice(0, k).join(''));
          counts.set(k, n);
          return n <= limit;
        };
        const k = (await fits(1)) ? await largestFit(1, chars.length - 1, fits) : 1;
        chunks.push({ text: chars.slice(0, k).join(''), tokens: counts.get(k)! });
        const rest = chars.slice(k).join('');
        if (rest === '') i++;
        else pieces[i] = rest;
        continue;
      }
      const counts = new Map<number, number>([[1, firstTokens]]);
      const measure = async (n: number) => {
        let c = counts.get(n);
        if (c === undefined) {
          c = await this.#count(pieces.slice(i, i + n).join(''));
          counts.set(n, c);
        }
        return c;
      };
      let n = await largestFit(1, pieces.length - i, async (m) => (await measure(m)) <= limit);
      // End at the last paragraph break of the chunk's second half, so chunks hold whole paragraphs.
      const paragraphEnd = (p: number) => /\n[^\S\n]*\n\s*$/.test(pieces[i + p - 1]!);
      if (i + n < pieces.length && !paragraphEnd(n)) {
        for (let p = n - 1; p >= Math.ceil(n / 2); p--) {
          if (paragraphEnd(p)) {
            // Counted again: a tokenizer may count a shorter text as more tokens at its seam.
            if ((await measure(p)) <= limit) n = p;
            break;
          }
        }
      }
      chunks.push({ text: pieces.slice(i, i + n).join(''), tokens: counts.get(n)! });
      i += n;
    }
    return chunks;
  }

  /**
   * Reads `document` chunk by chunk, rewriting the memory after each, and answers `question`
   * from the final memory (see {@link MemAgentReader}). Invalid arguments reject with a
   * `TypeError` or `RangeError` before any call is made; a generator result that breaks the
   * {@link Generator} contract (e.g. more `tokens` than asked) rejects too.
   *
   * @param document The text to read, a non-empty string.
   * @param question The problem the memory collects evidence for and the answer answers, a non-empty string.
   * @param options Abort, per-step telemetry and charging.
   * @returns The answer, the final memory and an exact account of the tokens generated.
   *
   * @example
   * ```ts
   * const r = await reader.read(contract, 'When does the lease end?', { charge: (t) => budget.commit(id, t) });
   * for (const s of r.steps) if (s.truncated) console.warn(`step ${s.chunk} was cut at its cap`);
   * ```
   */
  async read(document: string, question: string, options: ReadOptions = {}): Promise<ReaderResult> {
    v.nonEmptyString('document', document);
    v.nonEmptyString('question', question);
    const o = v.options<ReadOptions>('options', options, READ_KEYS);
    const { signal } = o;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw v.typeError('signal', 'AbortSignal', signal);
    const onStep = v.optionalFunction<ReadOptions['onStep']>('onStep', o.onStep);
    const charge = v.optionalFunction<ReadOptions['charge']>('charge', o.charge);
    const countPrompts = typeof this.#generator.encode === 'function';

    const chunks = await this.chunk(document, signal ? { signal } : {});
    const steps: ReaderStep[] = [];
    let generatedTokens = 0;
    let promptTokens = 0;

    const run = async (kind: ReaderStep['kind'], chunk: number, prompt: string, memory: string, maxTokens: number) => {
      signal?.throwIfAborted();
      const text = v.string('template() result', this.#template(prompt));
      const counted = countPrompts ? await this.#count(text) : undefined;
      const opts: GenerateOptions = { maxTokens };
      if (this.#temperature !== undefined) opts.temperature = this.#temperature;
      if (this.#seed !== undefined) opts.seed = this.#seed;
      if (signal) opts.signal = signal;
      const t0 = performance.now();
      let r: GenerateResult;
      try {
        r = checkResult(await this.#generator.generate(text, opts), maxTokens);
      } catch (err) {
        // A backend may reject on abort instead of resolving; the caller sees one abort error either way.
        signal?.throwIfAborted();
        throw err;
      }
      const step: ReaderStep = {
        kind,
        chunk,
        chunkTokens: kind === 'memory' ? chunks[chunk]!.tokens : 0,
        memoryBefore: memory,
        memoryAfter: kind === 'memory' ? r.text : memory,
        tokens: r.tokens,
        finishReason: r.finishReason,
        truncated: r.finishReason === 'length',
        ms: performance.now() - t0,
      };
      if (kind === 'answer') step.answer = r.text;
      if (counted !== undefined) {
        step.promptTokens = counted;
        promptTokens += counted;
      }
      steps.push(step);
      generatedTokens += r.tokens;
      if (charge && r.tokens > 0) await charge(r.tokens, step);
      if (onStep) await onStep(step);
      if (r.finishReason === 'abort') {
        signal?.throwIfAborted();
        throw new Error(`generator.generate() finished with 'abort' although the signal was not aborted`);
      }
      return r.text;
    };

    let memory = MEMAGENT_NO_MEMORY;
    for (let c = 0; c < chunks.length; c++) {
      const prompt = v.string('memoryPrompt() result', this.#memoryPrompt(question, memory, chunks[c]!.text));
      memory = await run('memory', c, prompt, memory, this.#memoryTokens);
    }
    const prompt = v.string('answerPrompt() result', this.#answerPrompt(question, memory));
    const answer = await run('answer', chunks.length, prompt, memory, this.#answerMaxTokens);

    const result: ReaderResult = { answer, memory, steps, chunks: chunks.length, generatedTokens };
    if (countPrompts) result.promptTokens = promptTokens;
    return result;
  }
}
