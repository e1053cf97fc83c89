/**
 * Where thinking sessions live: the {@link ThinkingStore} contract, the in-memory default, and
 * the one place the metrics are computed from a store's sums.
 * @module
 */
import { dict } from '../dict';
import { CloseGuard } from '../toolkit/closing';
import type { ThinkingMetrics, ThinkingRoundRecord, ThinkingSession, ThinkingStopReason, ThinkingSynthesis } from './records';

/**
 * Tokens and milliseconds spent, added to a session's totals.
 *
 * @example
 * ```ts
 * const spend: ThinkingSpend = { tokens: 812, durationMs: 1530.2 };
 * ```
 */
export interface ThinkingSpend {
  /** Tokens, an integer >= 0. */
  tokens: number;
  /** Milliseconds >= 0. */
  durationMs: number;
}

/**
 * What completes a session.
 *
 * @example
 * ```ts
 * const c: ThinkingCompletion = { stopReason: 'agreement', completedAt: Date.now(), synthesis, spend: { tokens: 0, durationMs: 0 } };
 * ```
 */
export interface ThinkingCompletion {
  /** Why it stopped (never `'abort'`: an aborted session stays active). */
  stopReason: Exclude<ThinkingStopReason, 'abort'>;
  /** Milliseconds since the epoch. */
  completedAt: number;
  /** The synthesis to keep with it. */
  synthesis: ThinkingSynthesis;
  /** Spent while completing (the insights call); added to the totals. */
  spend: ThinkingSpend;
}

/**
 * Sums over a store's sessions, from which {@link ThinkingMetrics} are computed.
 *
 * @example
 * ```ts
 * const s = await store.stats();
 * console.log(s.completedRounds / s.sessionsCompleted);
 * ```
 */
export interface ThinkingStoreStats {
  /** Sessions with status `'completed'`. */
  sessionsCompleted: number;
  /** Sessions with status `'active'`. */
  sessionsActive: number;
  /** Rounds of the completed sessions. */
  completedRounds: number;
  /** Sum of the completed sessions' synthesis confidence. */
  confidenceSum: number;
  /** Sum of the completed sessions' synthesis answerLogprob, over those that have one. */
  answerLogprobSum: number;
  /** Completed sessions that have a synthesis answerLogprob. */
  answerLogprobCount: number;
  /** Sum of the completed sessions' durationMs. */
  completedMs: number;
  /** Rounds of every session by modeUsed (`'none'` for no mode). */
  modesUsed: Record<string, number>;
  /** Completed sessions by stop reason. */
  stopReasons: Record<string, number>;
}

/**
 * Keeps thinking sessions. {@link MultiRoundThinking} awaits every call, so an implementation
 * may be synchronous or asynchronous; a write must be durable by the time it returns (or its
 * promise resolves): that is what lets a resolved round survive a crash. Calls after `close`
 * throw (or reject with) {@link ClosedError}.
 *
 * @example
 * ```ts
 * const store: ThinkingStore = new SqliteThinkingStore({ path: './thinking.db' });
 * const thinking = new MultiRoundThinking({ generator, store });
 * ```
 */
export interface ThinkingStore {
  /**
   * Adds a new session (active, no rounds); its id must be new.
   * @param session The session.
   */
  createSession(session: ThinkingSession): void | Promise<void>;
  /**
   * The session with its rounds, or `undefined` for an unknown id. The result is a copy.
   * @param id The session id.
   */
  getSession(id: string): ThinkingSession | undefined | Promise<ThinkingSession | undefined>;
  /**
   * Appends a round and adds its spend to the session's totals, in one atomic write.
   * `round.round` must be the session's round count + 1.
   * @param id The session id.
   * @param round The round.
   * @param spend What the round spent.
   */
  appendRound(id: string, round: ThinkingRoundRecord, spend: ThinkingSpend): void | Promise<void>;
  /**
   * Adds spend without a round (a round that was aborted or failed).
   * @param id The session id.
   * @param spend What was spent.
   */
  addSpend(id: string, spend: ThinkingSpend): void | Promise<void>;
  /**
   * Marks an active session completed, keeping its stop reason and synthesis.
   * @param id The session id.
   * @param completion How it completed.
   */
  completeSession(id: string, completion: ThinkingCompletion): void | Promise<void>;
  /**
   * Ids of the stored sessions, oldest first; only those with `status` when given.
   * @param status Filter by status.
   */
  sessionIds(status?: 'active' | 'completed'): string[] | Promise<string[]>;
  /** Sums over the stored sessions. */
  stats(): ThinkingStoreStats | Promise<ThinkingStoreStats>;
  /** Releases the store; idempotent. */
  close(): Promise<void>;
}

/** The metrics, by their definitions in {@link ThinkingMetrics}. @internal */
export function metricsFromStats(s: ThinkingStoreStats): ThinkingMetrics {
  const per = (sum: number, n: number) => (n === 0 ? 0 : sum / n);
  return {
    sessionsCompleted: s.sessionsCompleted,
    sessionsActive: s.sessionsActive,
    meanRoundsPerSession: per(s.completedRounds, s.sessionsCompleted),
    meanConfidence: per(s.confidenceSum, s.sessionsCompleted),
    meanAnswerLogprob: s.answerLogprobCount === 0 ? null : s.answerLogprobSum / s.answerLogprobCount,
    modesUsed: dict(Object.entries(s.modesUsed)),
    stopReasons: dict(Object.entries(s.stopReasons)),
    meanSessionMs: per(s.completedMs, s.sessionsCompleted),
  };
}

/** The error of a write to a session the store does not hold. @internal */
export function unknownSession(what: string, id: string): Error {
  return new Error(`${what}: no thinking session '${id}'`);
}

/** The error of a round appended out of order. @internal */
export function roundOutOfOrder(what: string, id: string, round: number, have: number): Error {
  return new Error(`${what}: round ${round} appended to session '${id}', which has ${have} rounds`);
}

/**
 * A {@link ThinkingStore} in this process's memory: the default. Sessions end with the
 * process, so {@link MultiRoundThinking.resume} works only within it; use
 * {@link SqliteThinkingStore} to survive a restart.
 *
 * @example
 * ```ts
 * const thinking = new MultiRoundThinking({ generator, store: new MemoryThinkingStore() });
 * ```
 */
export class MemoryThinkingStore implements ThinkingStore {
  readonly #sessions = new Map<string, ThinkingSession>();
  readonly #guard = new CloseGuard('MemoryThinkingStore');

  /**
   * {@inheritDoc ThinkingStore.createSession}
   * @example
   * ```ts
   * store.createSession({ id: 's', problem: 'p', status: 'active', maxRounds: 5, tokenBudget: null, thinkingMode: null, reasoningType: null, rounds: [], tokensUsed: 0, durationMs: 0, createdAt: Date.now() });
   * ```
   */
  createSession(session: ThinkingSession): void {
    this.#guard.check();
    if (this.#sessions.has(session.id)) throw new Error(`MemoryThinkingStore: a thinking session '${session.id}' already exists`);
    this.#sessions.set(session.id, structuredClone(session));
  }

  /**
   * {@inheritDoc ThinkingStore.getSession}
   * @example
   * ```ts
   * const s = store.getSession(id);
   * ```
   */
  getSession(id: string): ThinkingSession | undefined {
    this.#guard.check();
    const s = this.#sessions.get(id);
    return s === undefined ? undefined : structuredClone(s);
  }

  /**
   * {@inheritDoc ThinkingStore.appendRound}
   * @example
   * ```ts
   * store.appendRound(id, round, { tokens: round.thinkingTokens + round.answerTokens, durationMs: round.durationMs });
   * ```
   */
  appendRound(id: string, round: ThinkingRoundRecord, spend: ThinkingSpend): void {
    const s = this.#get(id);
    if (round.round !== s.rounds.length + 1) throw roundOutOfOrder('MemoryThinkingStore', id, round.round, s.rounds.length);
    s.rounds.push(structuredClone(round));
    s.tokensUsed += spend.tokens;
    s.durationMs += spend.durationMs;
  }

  /**
   * {@inheritDoc ThinkingStore.addSpend}
   * @example
   * ```ts
   * store.addSpend(id, { tokens: 40, durationMs: 12 });
   * ```
   */
  addSpend(id: string, spend: ThinkingSpend): void {
    const s = this.#get(id);
    s.tokensUsed += spend.tokens;
    s.durationMs += spend.durationMs;
  }

  /**
   * {@inheritDoc ThinkingStore.completeSession}
   * @example
   * ```ts
   * store.completeSession(id, { stopReason: 'caller', completedAt: Date.now(), synthesis, spend: { tokens: 0, durationMs: 0 } });
   * ```
   */
  completeSession(id: string, completion: ThinkingCompletion): void {
    const s = this.#get(id);
    if (s.status === 'completed') throw new Error(`MemoryThinkingStore: thinking session '${id}' is already completed`);
    s.status = 'completed';
    s.stopReason = completion.stopReason;
    s.completedAt = completion.completedAt;
    s.synthesis = structuredClone(completion.synthesis);
    s.tokensUsed += completion.spend.tokens;
    s.durationMs += completion.spend.durationMs;
  }

  /**
   * {@inheritDoc ThinkingStore.sessionIds}
   * @example
   * ```ts
   * for (const id of store.sessionIds('active')) await thinking.resume(id);
   * ```
   */
  sessionIds(status?: 'active' | 'completed'): string[] {
    this.#guard.check();
    return [...this.#sessions.values()].filter((s) => status === undefined || s.status === status).map((s) => s.id);
  }

  /**
   * {@inheritDoc ThinkingStore.stats}
   * @example
   * ```ts
   * const { sessionsCompleted } = store.stats();
   * ```
   */
  stats(): ThinkingStoreStats {
    this.#guard.check();
    const st: ThinkingStoreStats = {
      sessionsCompleted: 0, sessionsActive: 0, completedRounds: 0, confidenceSum: 0, answerLogprobSum: 0, answerLogprobCount: 0,
      completedMs: 0, modesUsed: dict(), stopReasons: dict(),
    };
    for (const s of this.#sessions.values()) {
      for (const r of s.rounds) st.modesUsed[r.modeUsed ?? 'none'] = (st.modesUsed[r.modeUsed ?? 'none'] ?? 0) + 1;
      if (s.status === 'active') {
        st.sessionsActive++;
        continue;
      }
      st.sessionsCompleted++;
      st.completedRounds += s.rounds.length;
      st.completedMs += s.durationMs;
      st.confidenceSum += s.synthesis!.confidence;
      if (s.synthesis!.answerLogprob !== undefined) {
        st.answerLogprobSum += s.synthesis!.answerLogprob;
        st.answerLogprobCount++;
      }
      st.stopReasons[s.stopReason!] = (st.stopReasons[s.stopReason!] ?? 0) + 1;
    }
    return st;
  }

  /**
   * Drops every session; later calls throw {@link ClosedError}.
   * @example
   * ```ts
   * await store.close();
   * ```
   */
  close(): Promise<void> {
    return this.#guard.close(() => this.#sessions.clear());
  }

  /** {@link MemoryThinkingStore.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #get(id: string): ThinkingSession {
    this.#guard.check();
    const s = this.#sessions.get(id);
    if (s === undefined) throw unknownSession('MemoryThinkingStore', id);
    return s;
  }
}
