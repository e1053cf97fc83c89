/**
 * OptimizationPipeline: one request through routing, memory, budgets, generation (with
 * thinking when asked) and storing the exchange, with a trace of every stage. This file holds
 * the public class; a run's stages are in run.ts.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { BudgetForcing } from '../budget/index';
import type { RewiringExperts } from '../experts/routing/index';
import type { Generator } from '../llm/index';
import type { MemAgent } from '../memory/index';
import { CloseGuard } from '../toolkit/closing';
import { emitSafely, reportError } from '../toolkit/listeners';
import * as v from '../validate';
import type { ChatTemplate } from './chat-template';
import { checkOptions, type PipelineSettings } from './options';
import { checkRequest } from './request';
import { Run } from './run';
import type {
  OptimizationPipelineOptions,
  PipelineEventSource,
  PipelineMetrics,
  PipelineRequest,
  PipelineResult,
  PipelineRunOptions,
  PipelineTrace,
  StoreTrace,
} from './types';

/**
 * Counters of an {@link OptimizationPipeline} since it was created.
 *
 * @example
 * ```ts
 * const { runs, ok, refused, meanOverheadMs } = pipeline.getMetrics();
 * ```
 */
export interface PipelineStats {
  /** Runs finished. */
  runs: number;
  /** Runs that answered. */
  ok: number;
  /** Runs refused by the budget stage. */
  refused: number;
  /** Runs that failed. */
  failed: number;
  /** Runs aborted by their signal (or by `close()`). */
  aborted: number;
  /** Runs answered per expert. */
  byExpert: Record<string, number>;
  /** Mean {@link PipelineTrace.overheadMs} of the answered runs (0 before any). */
  meanOverheadMs: number;
  /** Mean {@link PipelineTrace.totalMs} of the answered runs (0 before any). */
  meanTotalMs: number;
}

const RUN_KEYS = ['signal', 'onToken', 'turn'] as const;

/**
 * The serving pipeline of the seed: query → RewiringExperts → MemAgent → BudgetForcing →
 * generation (s1 thinking bounds or MultiRoundThinking when asked) → the exchange stored as
 * memory. Every stage is optional but generation; {@link OptimizationPipeline.run} returns the
 * answer and a {@link PipelineTrace} naming every stage's decision, time and tokens, and why a
 * stage was skipped.
 *
 * **A run, stage by stage.**
 * 1. *Routing.* With a router, the query (the last user message, or the prompt's text) goes
 *    through {@link RewiringExperts.routeWithFallback}: the chosen expert is called, then its
 *    fallbacks while calls fail (at most `defaults.fallbackAttempts`), and each call's outcome
 *    (latency, success) is recorded with the router. An answer already streaming is never
 *    handed to another expert: a failure mid-stream fails the run. Skipped without a router,
 *    when the request names its `expert`, and for token-id prompts.
 * 2. *Memory.* The user's memories (and only theirs: the query's scope is `{ userId }`, or
 *    `{ userId, sessionId }` with `scope: 'session'`) are retrieved into `contextTokens`
 *    (trimmed further to fit the expert's context when it is known) and put into the prompt
 *    as a block: `Relevant memory:` then one `- ` line per memory. In a chat the block is the
 *    system message (appended after a blank line to the first system message when there is
 *    one); a text prompt follows it after a blank line. Skipped without a user.
 * 3. *Budget.* The request's tokens — the prompt's, counted by the chosen expert, 4 for the
 *    special tokens a backend adds (a BOS), and the most it may generate (`maxTokens`; with s1
 *    thinking, plus `maxThinkingTokens`) — are
 *    reserved for the requester (the user, else `anonymousRequester`) and session. A denial
 *    rejects the run with {@link BudgetRefusedError} before anything is generated. After the
 *    answer the prompt's tokens plus every token generated are committed; on failure or abort
 *    the reservation is released (nothing is charged).
 * 4. *Generation* on the expert: one call, s1 bounds ({@link forceThinkingBudget}), or a
 *    {@link MultiRoundThinking} session whose token budget is the request's `maxTokens`.
 * 5. *Store.* The exchange (`User: <query>\nAssistant: <answer>`) is stored as an EPISODIC
 *    memory of the user and session, tagged `exchange`. By default after the answer
 *    (`memory.deferStore`): `run()` resolves once the answer exists, with the store stage
 *    `'deferred'`, and the store runs right after, off the request's path;
 *    {@link PipelineResult.stored} settles with its outcome. The user's next request waits for
 *    it before its memory stage, so it retrieves the exchange; {@link OptimizationPipeline.close}
 *    waits for it. A failed store leaves the answer standing (the stage says why; the error goes
 *    to `'error'`).
 *
 * The prompt is tokenized once: with budgets, plain generation on a generator that has
 * `encode()` and reports the ids it ran ({@link OnnxCausalLM}) counts the prompt by encoding
 * it and hands the expert those ids (with the special tokens it adds, learned from its first
 * text call), so the model does not encode it again; the results are the same as on the text.
 *
 * Events: `'trace'` with every run's {@link PipelineTrace} (answered or not) once the run has
 * settled — with a deferred store, after the store, with its stage settled; `'error'` with
 * errors no caller waits for (a failed store, a throwing listener).
 *
 * @example
 * ```ts
 * import { OptimizationPipeline, OnnxCausalLM, MemAgent, BudgetForcing, ResourceType, CapibaraMetrics } from '@capibara/core';
 * const model = await OnnxCausalLM.load('./models/tiny');
 * const pipeline = new OptimizationPipeline({
 *   experts: { tiny: model },
 *   memory: new MemAgent({ path: './memory.db' }),
 *   budgets: new BudgetForcing({ budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 50_000 }] }),
 *   metrics: new CapibaraMetrics(),
 * });
 * const r = await pipeline.run({ messages: [{ role: 'user', content: 'Hello' }], user: 'alice', maxTokens: 32 });
 * console.log(r.text, r.trace.stages.map((s) => `${s.stage}: ${s.status}`));
 * ```
 */
export class OptimizationPipeline extends EventEmitter implements PipelineEventSource {
  /**
   * The router, when the pipeline routes.
   *
   * @example
   * ```ts
   * console.log(pipeline.router?.getMetrics().totalRouted);
   * ```
   */
  readonly router: RewiringExperts | undefined;
  /**
   * The memory, when the pipeline has a memory stage.
   *
   * @example
   * ```ts
   * console.log(pipeline.memory?.getMetrics().items);
   * ```
   */
  readonly memory: MemAgent | undefined;
  /**
   * The budgets, when the pipeline has a budget stage.
   *
   * @example
   * ```ts
   * console.log(await pipeline.budgets?.status('alice'));
   * ```
   */
  readonly budgets: BudgetForcing | undefined;
  /**
   * The metrics sink given as `options.metrics` (a {@link CapibaraMetrics}): every run is
   * recorded there; `await pipeline.metrics.metrics()` is the Prometheus exposition.
   * `undefined` when none was given.
   *
   * @example
   * ```ts
   * process.stdout.write(await pipeline.metrics!.metrics());
   * ```
   */
  readonly metrics: PipelineMetrics | undefined;
  readonly #s: PipelineSettings;
  readonly #guard = new CloseGuard('OptimizationPipeline');
  readonly #running = new Map<AbortController, Promise<unknown>>();
  /** Stores deferred after their answers, in progress (they never reject). */
  readonly #storing = new Set<Promise<unknown>>();
  /** Per user: settles once every store of theirs started so far has. */
  readonly #pendingByUser = new Map<string, Promise<void>>();
  readonly #stats = { runs: 0, ok: 0, refused: 0, failed: 0, aborted: 0, overheadMs: 0, totalMs: 0, byExpert: new Map<string, number>() };

  /**
   * Checks the options and builds the pipeline. The parts given (generators, router, memory,
   * budgets, stores) stay the caller's: {@link OptimizationPipeline.close} closes none of them.
   *
   * @param options Experts, stages, defaults and metrics.
   * @throws TypeError / RangeError naming the bad option (`options.experts.sql.generator`); a
   * RangeError when the router has an expert that `experts` lacks.
   *
   * @example
   * ```ts
   * const pipeline = new OptimizationPipeline({ experts: { sql: sqlModel, python: pyModel }, router });
   * ```
   */
  constructor(options: OptimizationPipelineOptions) {
    super();
    this.#s = checkOptions(options);
    this.router = this.#s.router;
    this.memory = this.#s.memory?.agent;
    this.budgets = this.#s.budgets?.budgets;
    this.metrics = this.#s.metrics;
    this.metrics?.observePipeline(this);
  }

  /**
   * The experts' ids, in the order given.
   *
   * @example
   * ```ts
   * console.log(pipeline.expertIds); // ['sql', 'python']
   * ```
   */
  get expertIds(): string[] {
    return [...this.#s.experts.keys()];
  }

  /**
   * The expert requests go to when they are not routed.
   *
   * @example
   * ```ts
   * const tokenizer = pipeline.expert(pipeline.defaultExpert).generator;
   * ```
   */
  get defaultExpert(): string {
    return this.#s.defaultExpert;
  }

  /**
   * What requests get for the fields they leave out.
   *
   * @example
   * ```ts
   * const { maxTokens, maxThinkingTokens } = pipeline.requestDefaults;
   * ```
   */
  get requestDefaults(): {
    /** Tokens generated at most. */
    maxTokens: number;
    /** Sampling temperature, when set. */
    temperature: number | undefined;
    /** Most rounds of a multi-round request. */
    maxRounds: number;
    /** Most thinking tokens per call or round. */
    maxThinkingTokens: number;
  } {
    return { ...this.#s.request };
  }

  /**
   * Whether {@link OptimizationPipeline.close} was called.
   *
   * @example
   * ```ts
   * if (!pipeline.closed) await pipeline.run(request);
   * ```
   */
  get closed(): boolean {
    return this.#guard.closed;
  }

  /**
   * An expert as the pipeline uses it: its generator, chat template and context length.
   *
   * @param id One of {@link OptimizationPipeline.expertIds}.
   * @returns The expert.
   * @throws RangeError for an unknown id.
   *
   * @example
   * ```ts
   * const { generator, chatTemplate, contextLength } = pipeline.expert('tiny');
   * ```
   */
  expert(id: string): {
    /** Its backend. */
    generator: Generator;
    /** How its chats are rendered. */
    chatTemplate: ChatTemplate;
    /** Its context in tokens, when known. */
    contextLength: number | undefined;
  } {
    const e = this.#s.experts.get(id);
    if (e === undefined) throw v.rangeError('id', `one of ${this.expertIds.map((x) => `'${x}'`).join(', ')}`, id);
    return { generator: e.generator, chatTemplate: e.chatTemplate, contextLength: e.contextLength };
  }

  /**
   * Runs one request through every stage (see the class description).
   *
   * @param request The prompt or chat, who asks, and how to generate.
   * @param options Abort signal, streaming callback and generation turns.
   * @returns The answer, its tokens and the trace.
   * @throws TypeError / RangeError naming the bad request field (`request.maxTokens`), before
   * any stage runs; {@link BudgetRefusedError} when the budget is denied; the signal's reason on
   * abort; the expert's error (or routeWithFallback's, listing every attempt) when generation
   * fails; ClosedError after close.
   *
   * @example
   * ```ts
   * const r = await pipeline.run({ prompt: 'def fib(n):', user: 'bob', maxTokens: 64, stop: ['\n\n'] }, { signal });
   * for (const s of r.trace.stages) console.log(s.stage, s.status, s.reason ?? '');
   * ```
   */
  async run(request: PipelineRequest, options: PipelineRunOptions = {}): Promise<PipelineResult> {
    this.#guard.check();
    const r = checkRequest(request, this.#s.request, new Set(this.#s.experts.keys()));
    const o = v.options<PipelineRunOptions>('options', options, RUN_KEYS);
    if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw v.typeError('options.signal', 'AbortSignal', o.signal);
    const onTokenOuter = v.optionalFunction<PipelineRunOptions['onToken']>('options.onToken', o.onToken);
    const turn = v.optionalFunction<PipelineRunOptions['turn']>('options.turn', o.turn);

    const ctl = new AbortController();
    const onAbort = () => ctl.abort(o.signal!.reason);
    if (o.signal?.aborted) ctl.abort(o.signal.reason);
    else o.signal?.addEventListener('abort', onAbort, { once: true });
    const run = new Run(this.#s, r, ctl, turn, onTokenOuter, (user) => this.#pendingByUser.get(user));
    const done = (async (): Promise<PipelineResult> => {
      try {
        const result = await run.execute();
        this.#count(result.trace, result.expertId);
        if (run.deferredUser !== undefined) result.stored = this.#storeLater(run, result.trace);
        else {
          emitSafely(this, 'trace', result.trace);
          if (run.storeError !== undefined) reportError(this, run.storeError, 'storing an exchange');
        }
        return result;
      } catch (err) {
        await run.release();
        const trace = run.trace(err, o.signal);
        this.#count(trace, undefined);
        emitSafely(this, 'trace', trace);
        throw err;
      } finally {
        o.signal?.removeEventListener('abort', onAbort);
      }
    })();
    this.#running.set(ctl, done.catch(() => undefined));
    try {
      return await done;
    } finally {
      this.#running.delete(ctl);
    }
  }

  /**
   * Counters since creation: runs by outcome, answers by expert, mean overhead and total time.
   *
   * @returns The counters.
   *
   * @example
   * ```ts
   * const { ok, refused, meanOverheadMs } = pipeline.getMetrics();
   * ```
   */
  getMetrics(): PipelineStats {
    const s = this.#stats;
    const byExpert: Record<string, number> = Object.create(null);
    for (const [id, n] of s.byExpert) byExpert[id] = n;
    return {
      runs: s.runs,
      ok: s.ok,
      refused: s.refused,
      failed: s.failed,
      aborted: s.aborted,
      byExpert,
      meanOverheadMs: s.ok === 0 ? 0 : s.overheadMs / s.ok,
      meanTotalMs: s.ok === 0 ? 0 : s.totalMs / s.ok,
    };
  }

  /**
   * Aborts the runs in progress (they reject with ClosedError) and resolves once they and the
   * stores deferred after answers have settled; later runs reject with ClosedError. Closes none of the parts it was given. Every
   * call returns the first call's promise.
   *
   * @example
   * ```ts
   * await pipeline.close();
   * await model.close();
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(async () => {
      for (const ctl of this.#running.keys()) ctl.abort(this.#guard.error());
      await Promise.all(this.#running.values());
      await Promise.all(this.#storing);
    });
  }

  /**
   * Stores an answered run's exchange after the answer: on the next turn of the event loop, so
   * the caller's own continuation (sending the answer) runs first. Then emits the run's trace
   * with its store stage settled and reports a failed store. The same user's next memory stage
   * waits for it; close() too. Resolves with the settled store stage, never rejects.
   */
  #storeLater(run: Run, answered: PipelineTrace): Promise<StoreTrace> {
    const user = run.deferredUser!;
    const stored = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => run.storeDeferred())
      .then((stage) => {
        emitSafely(this, 'trace', run.settledTrace(answered));
        if (run.storeError !== undefined) reportError(this, run.storeError, 'storing an exchange');
        return stage;
      });
    this.#storing.add(stored);
    const prev = this.#pendingByUser.get(user);
    const pending: Promise<void> = (prev === undefined ? stored : Promise.all([prev, stored])).then(() => undefined);
    this.#pendingByUser.set(user, pending);
    void pending.then(() => {
      this.#storing.delete(stored);
      if (this.#pendingByUser.get(user) === pending) this.#pendingByUser.delete(user);
    });
    return stored;
  }

  /** {@link OptimizationPipeline.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #count(trace: PipelineTrace, expertId: string | undefined): void {
    const s = this.#stats;
    s.runs++;
    s[trace.outcome]++;
    if (trace.outcome === 'ok') {
      s.overheadMs += trace.overheadMs;
      s.totalMs += trace.totalMs;
      if (expertId !== undefined) s.byExpert.set(expertId, (s.byExpert.get(expertId) ?? 0) + 1);
    }
  }
}


