/**
 * MultiRoundThinking: Think Twice (arXiv 2503.19855) test-time thinking over any
 * {@link Generator}, with s1 thinking bounds per round, a session-wide token budget, modes,
 * majority synthesis and durable sessions.
 * @module
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { GenerateOptions, GenerateResult } from '../llm/index';
import { CloseGuard } from '../toolkit/closing';
import { emitSafely } from '../toolkit/listeners';
import * as v from '../validate';
import { vote } from './answers';
import {
  checkProblem, checkSessionId, roundOptionsOf, RUN_SESSION_KEYS, runOptionsOf, type Settings, sessionOptionsOf, settingsOf,
} from './options';
import { insightsMessage, parseInsights } from './prompts';
import { type RoundRequest, roomForRound, runRound, stopRuleOf, tokensLeft } from './round';
import { MemoryThinkingStore, metricsFromStats, type ThinkingSpend, type ThinkingStore } from './store';
import type { ThinkingMetrics, ThinkingRoundRecord, ThinkingSession, ThinkingStopReason, ThinkingSynthesis } from './records';
import type { MultiRoundThinkingOptions, RunSessionOptions, ThinkingRoundOptions, ThinkingSessionOptions } from './types';

/**
 * Multi-round test-time thinking, as Think Twice defines it: each round is a fresh generation
 * whose prompt is the original problem plus "The assistant's previous answer is:
 * <answer>…</answer>, and please re-answer." — the previous round's *answer* only, never its
 * thinking ({@link thinkTwiceMessage}). Rounds repeat until a stopping rule fires
 * ({@link ThinkingStopReason}); the final answer is the majority of the rounds' answers.
 *
 * **A round** runs `forceThinkingBudget` over the generator: the model thinks after
 * `template(message) + thinkStart` until `thinkEnd` (held to
 * `[minThinkingTokens, maxThinkingTokens]`, s1-style), then answers after
 * `thinkEnd + '\n' + finalAnswerPrefix` with at most `answerMaxTokens` tokens. Token counts
 * are the generator's, exact. A mode and a reasoning type, when asked for, append their
 * instruction texts ({@link MODE_INSTRUCTIONS}, {@link REASONING_INSTRUCTIONS}); ADAPTIVE picks
 * the mode by {@link chooseAdaptiveMode}'s rules.
 *
 * **Budgets.** A session's `tokenBudget` is shared by its rounds: a round starts only with
 * `answerMaxTokens + 1` tokens left, and its thinking cap is lowered to what is left after the
 * answer's cap, so the session never overspends. Every step's tokens can be charged elsewhere
 * (a {@link BudgetForcing} allocation) through the `charge` option.
 *
 * **Durability.** A round is written to the store before `executeThinkingRound` resolves; with
 * a {@link SqliteThinkingStore}, a crash after that loses nothing, and
 * {@link MultiRoundThinking.resume} continues the session in a new process.
 *
 * **Events** (a throwing listener never changes what a caller gets): `'round'`
 * `(sessionId, round: ThinkingRoundRecord)` after a round is stored; `'completed'`
 * `(session: ThinkingSession)` after a session is completed.
 *
 * @example
 * ```ts
 * import { MultiRoundThinking, OpenAICompatibleGenerator, ThinkingMode } from '@capibara/core';
 * const generator = new OpenAICompatibleGenerator({ baseURL: 'http://127.0.0.1:8000', model: 'Qwen/Qwen3-8B' });
 * const thinking = new MultiRoundThinking({
 *   generator,
 *   maxRounds: 4,
 *   thinkingBudget: { maxThinkingTokens: 4096, answerMaxTokens: 64 },
 *   template: (m) => `<|im_start|>user\n${m}<|im_end|>\n<|im_start|>assistant\n`,
 * });
 * const s = await thinking.runSession('How many r are in "strawberry"?', { tokenBudget: 20_000 });
 * console.log(s.synthesis!.finalAnswer, s.synthesis!.confidence, s.stopReason, s.rounds.length);
 * await thinking.close();
 * ```
 */
export class MultiRoundThinking extends EventEmitter {
  /**
   * The store sessions live in (the option's, or the default {@link MemoryThinkingStore}).
   *
   * @example
   * ```ts
   * const active = await thinking.store.sessionIds('active');
   * ```
   */
  readonly store: ThinkingStore;
  /**
   * Default most rounds of a session.
   *
   * @example
   * ```ts
   * console.log(thinking.maxRounds); // 5
   * ```
   */
  readonly maxRounds: number;

  readonly #s: Settings;
  readonly #ownsStore: boolean;
  readonly #guard = new CloseGuard('MultiRoundThinking');
  /** Sessions with a round (or a run) in progress: one at a time per session. */
  readonly #busy = new Set<string>();
  readonly #inflight = new Set<Promise<unknown>>();

  /**
   * @param options The generator, round bounds, store, delimiters, template, sampling and texts.
   * @throws TypeError or RangeError naming the bad option (`options.maxRounds`, …).
   *
   * @example
   * ```ts
   * const thinking = new MultiRoundThinking({ generator: model, maxRounds: 3, thinkEnd: '</think>' });
   * ```
   */
  constructor(options: MultiRoundThinkingOptions) {
    super();
    this.#s = settingsOf(options);
    this.#ownsStore = this.#s.store === undefined;
    this.store = this.#s.store ?? new MemoryThinkingStore();
    this.maxRounds = this.#s.maxRounds;
  }

  /**
   * Creates a session (no round runs yet).
   *
   * @param problem The question, a non-blank string; sent verbatim at the head of every round.
   * @param options The session's rounds, token budget, default mode and reasoning type.
   * @returns The new session's id.
   * @throws TypeError / RangeError for bad arguments; ClosedError after close.
   *
   * @example
   * ```ts
   * const id = await thinking.startThinkingSession('How to improve AI system performance?', { maxRounds: 3 });
   * ```
   */
  startThinkingSession(problem: string, options?: ThinkingSessionOptions): Promise<string> {
    return this.#run(async () => {
      const text = checkProblem(problem);
      const o = sessionOptionsOf(options, this.#s);
      return this.#create(text, o);
    });
  }

  /**
   * Runs the session's next round and stores it before resolving. No stopping rule is applied
   * here (see {@link MultiRoundThinking.runSession}); the round is refused when the session is
   * completed, has run its `maxRounds`, has too little budget left, or has a round running.
   *
   * @param sessionId The session.
   * @param options This round's mode, reasoning type and abort signal.
   * @returns The stored round.
   * @throws Rejects with the signal's reason on abort (the tokens spent are still counted in
   * the session), with the `charge` callback's or the generator's error, with a RangeError for
   * an unknown session, and with ClosedError after close.
   *
   * @example
   * ```ts
   * const round = await thinking.executeThinkingRound(id, { thinkingMode: ThinkingMode.ANALYTICAL, reasoningType: ReasoningType.DEDUCTIVE });
   * console.log(round.prompt, round.answer, round.thinkingTokens, round.answerTokens);
   * ```
   */
  executeThinkingRound(sessionId: string, options?: ThinkingRoundOptions): Promise<ThinkingRoundRecord> {
    return this.#run(async () => {
      const id = checkSessionId(sessionId);
      const o = roundOptionsOf(options);
      return this.#exclusive(id, async () => {
        const session = await this.#load(id);
        const why = session.status === 'completed'
          ? `is completed (stopped by ${session.stopReason})`
          : session.rounds.length >= session.maxRounds
            ? `has run its maxRounds (${session.maxRounds}) rounds`
            : !roomForRound(session, this.#s)
              ? `has ${tokensLeft(session)} of its ${session.tokenBudget} tokens left, fewer than a round needs (answerMaxTokens ${this.#s.answerMax} + 1)`
              : undefined;
        if (why !== undefined) throw new Error(`MultiRoundThinking: thinking session '${id}' ${why}`);
        return this.#round(session, o);
      });
    });
  }

  /**
   * Starts a session and runs rounds until a stopping rule fires — agreement of the last two
   * answers, `maxRounds`, the token budget, or abort — then completes it with its synthesis
   * (and the insights call when asked for). Abort does not reject: the result's `stopReason`
   * is `'abort'`, its synthesis covers the rounds finished, and the stored session stays active
   * for {@link MultiRoundThinking.resume}.
   *
   * @param problem The question, a non-blank string.
   * @param options The session's settings, plus `signal` and `insights`.
   * @returns The session, with `stopReason` and `synthesis`.
   *
   * @example
   * ```ts
   * const s = await thinking.runSession('What is 17 x 23?', { thinkingMode: ThinkingMode.ADAPTIVE, insights: true });
   * console.log(s.stopReason, s.synthesis!.finalAnswer, s.synthesis!.insights?.followUpQuestions);
   * ```
   */
  runSession(problem: string, options?: RunSessionOptions): Promise<ThinkingSession> {
    return this.#run(async () => {
      const text = checkProblem(problem);
      const o = sessionOptionsOf(options, this.#s, RUN_SESSION_KEYS);
      const run = runOptionsOf(options, RUN_SESSION_KEYS);
      const id = await this.#create(text, o);
      return this.#exclusive(id, () => this.#continue(id, run.signal, run.insights));
    });
  }

  /**
   * Continues a stored session — after a restart too, with a {@link SqliteThinkingStore} — as
   * {@link MultiRoundThinking.runSession} does: rounds until a stopping rule fires, then the
   * synthesis. A completed session is returned as stored.
   *
   * @param sessionId The session.
   * @param options `signal` and `insights`.
   * @returns The session, with `stopReason` and `synthesis`.
   *
   * @example
   * ```ts
   * for (const id of await thinking.store.sessionIds('active')) console.log((await thinking.resume(id)).synthesis!.finalAnswer);
   * ```
   */
  resume(sessionId: string, options?: Pick<RunSessionOptions, 'signal' | 'insights'>): Promise<ThinkingSession> {
    return this.#run(async () => {
      const id = checkSessionId(sessionId);
      const run = runOptionsOf(options);
      return this.#exclusive(id, () => this.#continue(id, run.signal, run.insights));
    });
  }

  /**
   * Completes a session now, with stop reason `'caller'` — for sessions driven round by round
   * with {@link MultiRoundThinking.executeThinkingRound}.
   *
   * @param sessionId The session, active.
   * @param options `insights` to make the insights call; `signal` to abort it.
   * @returns The completed session.
   *
   * @example
   * ```ts
   * await thinking.executeThinkingRound(id);
   * await thinking.executeThinkingRound(id, { thinkingMode: ThinkingMode.CRITICAL });
   * const done = await thinking.completeSession(id, { insights: true });
   * ```
   */
  completeSession(sessionId: string, options?: Pick<RunSessionOptions, 'signal' | 'insights'>): Promise<ThinkingSession> {
    return this.#run(async () => {
      const id = checkSessionId(sessionId);
      const run = runOptionsOf(options);
      return this.#exclusive(id, async () => {
        const session = await this.#load(id);
        if (session.status === 'completed') throw new Error(`MultiRoundThinking: thinking session '${id}' is already completed (stopped by ${session.stopReason})`);
        return this.#complete(session, 'caller', run.insights, run.signal);
      });
    });
  }

  /**
   * A stored session with its rounds, or `undefined` for an unknown id.
   *
   * @param sessionId The session.
   * @returns A copy of the session.
   *
   * @example
   * ```ts
   * const s = await thinking.getSession(id);
   * ```
   */
  getSession(sessionId: string): Promise<ThinkingSession | undefined> {
    return this.#run(async () => this.store.getSession(checkSessionId(sessionId)));
  }

  /**
   * The seed's figures over the store's sessions, each defined in {@link ThinkingMetrics}.
   *
   * @returns Sessions completed, mean rounds per session, mean confidence, modes used, mean session time, …
   *
   * @example
   * ```ts
   * const { sessionsCompleted, meanRoundsPerSession, meanConfidence, modesUsed, meanSessionMs } = await thinking.getMetrics();
   * ```
   */
  getMetrics(): Promise<ThinkingMetrics> {
    return this.#run(async () => metricsFromStats(await this.store.stats()));
  }

  /**
   * Waits for the calls in progress, then closes the default store (a store passed in stays
   * open: its owner closes it). Later calls reject with {@link ClosedError}.
   *
   * @example
   * ```ts
   * await thinking.close();
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(async () => {
      while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
      if (this.#ownsStore) await this.store.close();
    });
  }

  /** {@link MultiRoundThinking.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Runs a public call: refused after close, awaited by close. */
  #run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#guard.closed) return Promise.reject(this.#guard.error());
    const p = work();
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p)).catch(() => {});
    return p;
  }

  async #exclusive<T>(id: string, work: () => Promise<T>): Promise<T> {
    if (this.#busy.has(id)) throw new Error(`MultiRoundThinking: thinking session '${id}' already has a round running`);
    this.#busy.add(id);
    try {
      return await work();
    } finally {
      this.#busy.delete(id);
    }
  }

  async #create(problem: string, o: ReturnType<typeof sessionOptionsOf>): Promise<string> {
    const id = randomUUID();
    await this.store.createSession({ id, problem, status: 'active', ...o, rounds: [], tokensUsed: 0, durationMs: 0, createdAt: Date.now() });
    return id;
  }

  async #load(id: string): Promise<ThinkingSession> {
    const s = await this.store.getSession(id);
    if (s === undefined) throw v.rangeError('sessionId', 'the id of a session in the store', id);
    return s;
  }

  /** One round, stored with its spend before resolving; a failed round's spend is stored too. */
  async #round(session: ThinkingSession, request: RoundRequest): Promise<ThinkingRoundRecord> {
    const spent: ThinkingSpend = { tokens: 0, durationMs: 0 };
    let record: ThinkingRoundRecord;
    try {
      record = await runRound(session, this.#s, request, spent);
    } catch (err) {
      await this.store.addSpend(session.id, spent);
      throw err;
    }
    await this.store.appendRound(session.id, record, spent);
    emitSafely(this, 'round', session.id, record);
    return record;
  }

  /** Rounds until a rule fires, then the synthesis; an abort ends the run, leaving the session active. */
  async #continue(id: string, signal: AbortSignal | undefined, insights: boolean): Promise<ThinkingSession> {
    for (;;) {
      const session = await this.#load(id);
      if (session.status === 'completed') return session;
      const rule = stopRuleOf(session, this.#s);
      if (rule !== undefined) return this.#complete(session, rule, insights, signal);
      if (!signal?.aborted) {
        try {
          await this.#round(session, { thinkingMode: undefined, reasoningType: undefined, signal });
          continue;
        } catch (err) {
          if (!signal?.aborted) throw err;
        }
      }
      const now = await this.#load(id);
      return { ...now, stopReason: 'abort', synthesis: synthesisOf(now) };
    }
  }

  async #complete(
    session: ThinkingSession,
    stopReason: Exclude<ThinkingStopReason, 'abort'>,
    insights: boolean,
    signal: AbortSignal | undefined,
  ): Promise<ThinkingSession> {
    const synthesis = synthesisOf(session);
    const spend: ThinkingSpend = { tokens: 0, durationMs: 0 };
    const left = tokensLeft(session);
    if (insights && left >= 1 && !signal?.aborted) {
      const found = await this.#insights(session, synthesis, Math.min(this.#s.insightsMaxTokens, left), signal, spend);
      if (found) synthesis.insights = found;
    }
    await this.store.completeSession(session.id, { stopReason, completedAt: Date.now(), synthesis, spend });
    const done = await this.#load(session.id);
    emitSafely(this, 'completed', done);
    return done;
  }

  /** The one insights call; undefined when it was aborted (its tokens still count). */
  async #insights(session: ThinkingSession, synthesis: ThinkingSynthesis, maxTokens: number, signal: AbortSignal | undefined, spend: ThinkingSpend) {
    const s = this.#s;
    const message = insightsMessage(session.problem, session.rounds.map((r) => r.answer), synthesis.finalAnswer);
    const prompt = v.string('the result of options.template', s.template(message));
    const options: GenerateOptions = { maxTokens };
    if (s.temperature !== undefined) options.temperature = s.temperature;
    if (s.seed !== undefined) options.seed = s.seed;
    if (signal !== undefined) options.signal = signal;
    const t0 = performance.now();
    let r: GenerateResult;
    try {
      r = await s.generator.generate(prompt, options);
    } catch (err) {
      spend.durationMs = performance.now() - t0;
      if (signal?.aborted) return undefined;
      throw err;
    }
    spend.durationMs = performance.now() - t0;
    spend.tokens = v.integer('generator.generate() result.tokens', r.tokens, 0, maxTokens);
    if (spend.tokens > 0) await s.charge?.(spend.tokens, { sessionId: session.id, round: null, kind: 'insights' });
    if (r.finishReason === 'abort') return undefined;
    return { prompt, text: r.text, ...parseInsights(r.text), tokens: r.tokens, finishReason: r.finishReason, durationMs: spend.durationMs };
  }
}

/** The synthesis of the rounds so far (see {@link ThinkingSynthesis} for the definitions). */
function synthesisOf(session: ThinkingSession): ThinkingSynthesis {
  const voted = vote(session.rounds.map((r) => r.answer));
  const out: ThinkingSynthesis = { finalAnswer: voted.finalAnswer, finalRound: voted.finalRound, confidence: voted.confidence, votes: voted.votes };
  const lp = voted.finalRound === null ? undefined : session.rounds[voted.finalRound - 1]!.answerLogprob;
  if (lp !== undefined) out.answerLogprob = lp;
  return out;
}
