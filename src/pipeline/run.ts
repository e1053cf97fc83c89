/**
 * One run of {@link OptimizationPipeline}: its state across the stages — routing (through
 * routeWithFallback), memory, the budget reservation, generation, the settlement and the store —
 * and the trace it builds.
 * @module
 */
import { randomUUID } from 'node:crypto';
import { ResourceType } from '../budget/index';
import { type GeneratorPrompt, LlamaDecoder } from '../llm/index';
import { MemoryType } from '../memory/index';
import * as v from '../validate';
import { type Generated, generate } from './generate';
import type { Expert, PipelineSettings } from './options';
import { learnSpecials, mayHandIds, promptIds } from './prompt-ids';
import { type CheckedRequest, memoryBlock, queryText, withMemory } from './request';
import { newStats, RunGenerator, type RunStats } from './run-generator';
import {
  BudgetRefusedError,
  type BudgetTrace,
  type GenerationTrace,
  type MemoryTrace,
  type PipelineResult,
  type PipelineRunOptions,
  type PipelineTrace,
  type RoutingTrace,
  type StoreTrace,
} from './types';

/** A store deferred until after the answer: whose, and what. */
interface DeferredStore {
  user: string;
  answer: string;
  expertId: string;
}

/** What one expert call produced. */
interface Answer {
  out: Generated;
  expert: Expert;
  prompt: GeneratorPrompt;
}

/** A prompt built for one expert. */
interface Built {
  prompt: GeneratorPrompt;
  multi: { problem: string; template: (message: string) => string } | undefined;
}

/** One run: its state across the stages. */
/**
 * Reserved beyond the prompt's counted tokens: a backend adds special tokens countTokens does
 * not count (OnnxCausalLM its BOS), and the commit charges what the backend reports it ran.
 */
export const SPECIAL_TOKENS = 4;

export class Run {
  readonly #t0 = performance.now();
  readonly #startedAt = Date.now();
  readonly #requestId = randomUUID();
  readonly #stats: RunStats = newStats();
  readonly #routing: RoutingTrace = { stage: 'routing', status: 'skipped', ms: 0, attempts: [] };
  readonly #memory: MemoryTrace = { stage: 'memory', status: 'skipped', ms: 0 };
  readonly #budget: BudgetTrace = { stage: 'budget', status: 'skipped', ms: 0 };
  readonly #generation: GenerationTrace;
  readonly #store: StoreTrace = { stage: 'store', status: 'skipped', ms: 0 };
  readonly #query: string | undefined;
  readonly #onToken: ((piece: string, tokenId?: number) => void) | undefined;
  #decided = false;
  #prepared = false;
  #block: string | undefined;
  #allocation: string | undefined;
  /** Prompt tokens of the reservation, and the expert that counted them. */
  #counted: { expert: string; tokens: number } | undefined;
  /** The prompt as encoded for the reservation, to hand the expert as ids. */
  #encoded: { expert: string; prompt: string; ids: number[]; ms: number; handed: boolean } | undefined;
  #deferred: DeferredStore | undefined;
  #streamed = false;
  /** Set when an expert failed mid-stream: no other expert may continue that answer. */
  #final: { error: unknown } | undefined;
  storeError: unknown;

  constructor(
    readonly s: PipelineSettings,
    readonly r: CheckedRequest,
    readonly ctl: AbortController,
    readonly turn: PipelineRunOptions['turn'],
    onToken: PipelineRunOptions['onToken'],
    /** The same user's stores still in progress, which a memory stage waits for. */
    readonly pendingStores: (user: string) => Promise<void> | undefined = () => undefined,
  ) {
    this.#query = queryText(r);
    this.#generation = { stage: 'generation', status: 'skipped', ms: 0, mode: r.multiRound ? 'multi-round' : r.thinking ? 'thinking' : 'plain' };
    if (onToken) {
      this.#onToken = (piece, id) => {
        this.#streamed = true;
        onToken(piece, id);
      };
    }
  }

  async execute(): Promise<PipelineResult> {
    const { s, r } = this;
    this.ctl.signal.throwIfAborted();
    let answer: Answer;
    const router = s.router;
    const skip = r.expert !== undefined ? 'the request names its expert' : this.#query === undefined ? 'a token-id prompt has no text to route on' : undefined;
    if (router !== undefined && skip === undefined) {
      try {
        const routed = await router.routeWithFallback(this.#query!, (expert) => this.#attempt(expert.id, true), {
          signal: this.ctl.signal,
          maxAttempts: s.fallbackAttempts,
          ...(r.routingContext === undefined ? {} : { context: r.routingContext }),
        });
        answer = routed.result;
        Object.assign(this.#routing, {
          status: 'done',
          decisionId: routed.decision.id,
          strategy: routed.decision.strategy,
          chosen: routed.decision.expertId,
          expertId: routed.expertId,
          fallbacks: routed.decision.fallbacks,
        });
      } catch (err) {
        if (!this.#decided) this.#routing.ms = performance.now() - this.#t0;
        // Failed: every expert tried failed (or none could be); a run stopped by its budget, its
        // turn or an abort keeps the decision as done.
        if (!this.ctl.signal.aborted) {
          this.#routing.status = 'failed';
          this.#routing.reason = messageOf(err);
        }
        throw err;
      }
    } else {
      this.#routing.reason = router === undefined ? 'no router' : skip!;
      try {
        answer = await this.#attempt(r.expert ?? s.defaultExpert, false);
      } catch (err) {
        throw this.ctl.signal.aborted ? this.ctl.signal.reason : err;
      }
    }
    return this.#finish(answer);
  }

  /** One expert call; the first also runs the memory and budget stages. */
  async #attempt(expertId: string, routed: boolean): Promise<Answer> {
    // Errors that are not the expert's abort the run: routeWithFallback then rethrows them
    // without recording an outcome or trying another expert.
    const fatal = (err: unknown): unknown => {
      if (!this.ctl.signal.aborted) this.ctl.abort(err);
      return err;
    };
    if (this.#final !== undefined) throw fatal(this.#final.error);
    if (!this.#decided) {
      this.#decided = true;
      if (routed) {
        // The router decided (its first call is the chosen expert); the rest is filled in on success.
        this.#routing.ms = performance.now() - this.#t0;
        this.#routing.status = 'done';
        this.#routing.chosen = expertId;
      }
    }
    const expert = this.s.experts.get(expertId);
    if (expert === undefined) throw fatal(new Error(`The router chose expert '${expertId}', which the pipeline has no generator for`));
    const gen = new RunGenerator(expert.generator, expertId, this.#stats, this.turn);
    let built: Built;
    try {
      if (!this.#prepared) {
        this.#prepared = true;
        await this.#retrieve(expert);
      }
      built = this.#build(expert);
      if (this.#allocation === undefined && this.s.budgets !== undefined) await this.#reserve(expert, built.prompt);
    } catch (err) {
      throw fatal(err);
    }
    // Tokenize once: the ids counted for the reservation go to the expert, which then does not
    // encode the prompt again; that encoding is generation work, timed as such.
    let prompt: GeneratorPrompt = built.prompt;
    const enc = this.#encoded;
    const same = enc !== undefined && !enc.handed && enc.expert === expertId && enc.prompt === built.prompt && built.multi === undefined && this.r.thinking === undefined;
    if (same) {
      const ids = promptIds(expert.generator, enc.ids);
      if (ids !== undefined) {
        prompt = ids;
        enc.handed = true;
        this.#budget.ms -= enc.ms;
        this.#stats.generationMs += enc.ms;
        this.#generation.encodeMs = enc.ms;
      }
    }
    const t0 = performance.now();
    try {
      const out = await generate(gen, this.r, prompt, built.multi, this.s.thinking, this.ctl.signal, this.#onToken);
      this.#routing.attempts.push({ expertId, success: true, latencyMs: performance.now() - t0 });
      if (same && typeof prompt === 'string') learnSpecials(expert.generator, enc.ids, out.promptTokenIds, SPECIAL_TOKENS);
      return { out, expert, prompt };
    } catch (err) {
      this.#routing.attempts.push({ expertId, success: false, latencyMs: performance.now() - t0, error: messageOf(err) });
      if (this.ctl.signal.aborted) throw err;
      if (this.#stats.turnFailed && err === this.#stats.turnError) throw fatal(err);
      // Only a generator's own rejection is the expert's failure; anything else fails the run.
      if (!(this.#stats.generatorFailed && err === this.#stats.generatorError)) throw fatal(err);
      if (this.#streamed) this.#final = { error: err };
      this.#generation.reason = messageOf(err);
      throw err;
    }
  }

  async #retrieve(expert: Expert): Promise<void> {
    const m = this.s.memory;
    const { r } = this;
    const t = this.#memory;
    if (m === undefined) return void (t.reason = 'no memory stage');
    if (!r.memory) return void (t.reason = 'turned off by the request');
    if (r.user === undefined) return void (t.reason = 'no user: memory is kept per user');
    if (this.#query === undefined) return void (t.reason = 'a token-id prompt has no text to search with');
    if (m.scope === 'session' && r.sessionId === undefined) return void (t.reason = 'no session: memory is kept per session');
    const t0 = performance.now();
    const scope: { userId: string; sessionId?: string } = { userId: r.user };
    if (m.scope === 'session') scope.sessionId = r.sessionId!;
    t.scope = scope;
    try {
      // The user's earlier exchanges, stored after their answers, are found by this search.
      const pending = this.pendingStores(r.user);
      if (pending !== undefined) {
        await pending;
        this.ctl.signal.throwIfAborted();
      }
      let budget = m.contextTokens;
      if (expert.contextLength !== undefined && budget > 0) {
        // Leave room for the prompt and the answer (the memory block's own lines are approximate).
        // A prompt's UTF-8 bytes bound its tokens (every token covers at least one byte): when
        // even that bound fits, the prompt need not be tokenized here.
        const base = this.#build(expert).prompt;
        const room = (used: number) => expert.contextLength! - used - SPECIAL_TOKENS - this.#generationCap() - 16;
        const bound = typeof base === 'string' ? Buffer.byteLength(base) : base.length;
        if (room(bound) < budget) {
          const used = typeof base === 'string' ? await expert.generator.countTokens(base) : base.length;
          budget = Math.max(0, Math.min(budget, room(used)));
        }
      }
      if (budget === 0) {
        t.status = 'skipped';
        t.reason = 'no room in the context';
        return;
      }
      const found = await m.agent.retrieveMemory({ queryText: this.#query, scope, topK: m.topK, maxTokens: budget });
      Object.assign(t, {
        status: 'done',
        items: found.chunks.length,
        tokens: found.totalTokens,
        ids: found.chunks.map((c) => c.id),
        searchMs: found.searchTimeMs,
        cacheHit: found.cacheHit,
      });
      if (found.chunks.length > 0) this.#block = memoryBlock(found.chunks.map((c) => c.content));
    } catch (err) {
      t.status = 'failed';
      t.reason = messageOf(err);
      throw err;
    } finally {
      t.ms = performance.now() - t0;
    }
  }

  /** The most the generation step may generate. */
  #generationCap(): number {
    return this.r.maxTokens + (this.r.thinking?.maxThinkingTokens ?? 0);
  }

  #build(expert: Expert): Built {
    const { r } = this;
    const block = this.#block;
    if (r.multiRound !== undefined) {
      const problem = this.#query!;
      const template =
        r.messages !== undefined
          ? (message: string) => expert.chatTemplate.render(withMemory([{ role: 'user', content: message }], block))
          : (message: string) => (block === undefined ? `${message}\n` : `${block}\n\n${message}\n`);
      return { prompt: problem, multi: { problem, template } };
    }
    if (r.messages !== undefined) return { prompt: expert.chatTemplate.render(withMemory(r.messages, block)), multi: undefined };
    const prompt = r.prompt!;
    return { prompt: block === undefined || typeof prompt !== 'string' ? prompt : `${block}\n\n${prompt}`, multi: undefined };
  }

  async #reserve(expert: Expert, prompt: GeneratorPrompt): Promise<void> {
    const b = this.s.budgets!;
    const t = this.#budget;
    const t0 = performance.now();
    const requesterId = this.r.user ?? b.anonymousRequester;
    t.requesterId = requesterId;
    try {
      const promptTokens = await this.#countForBudget(expert, prompt);
      this.#counted = { expert: expert.id, tokens: promptTokens };
      const amount = promptTokens + SPECIAL_TOKENS + this.#generationCap();
      t.reserved = amount;
      const decision = await b.budgets.requestBudget({
        resourceType: ResourceType.TOKENS,
        requestedAmount: Math.max(1, amount),
        priority: this.r.priority ?? b.priority,
        estimatedDuration: b.estimatedDurationS,
        requesterId,
        justification: `pipeline request ${this.#requestId}`,
        ...(this.r.sessionId === undefined ? {} : { sessionId: this.r.sessionId }),
      });
      if (!decision.approved) {
        t.status = 'denied';
        t.reason = decision.message;
        throw new BudgetRefusedError(decision, requesterId, amount);
      }
      this.#allocation = decision.allocationId!;
      t.allocationId = decision.allocationId!;
      t.status = 'done';
    } catch (err) {
      if (t.status !== 'denied') {
        t.status = 'failed';
        t.reason = messageOf(err);
      }
      throw err;
    } finally {
      t.ms += performance.now() - t0;
    }
  }

  /**
   * The prompt's tokens for the reservation: for plain generation on a generator with
   * `encode()`, the encoded ids (kept to hand the expert), else `countTokens`.
   */
  async #countForBudget(expert: Expert, prompt: GeneratorPrompt): Promise<number> {
    const g = expert.generator;
    if (typeof prompt !== 'string' || this.r.thinking !== undefined || this.r.multiRound !== undefined || !mayHandIds(g)) return countPrompt(expert, prompt);
    const t0 = performance.now();
    let ids: number[];
    try {
      ids = await g.encode!(prompt);
      if (!Array.isArray(ids)) throw v.typeError('encode() result', 'array of token ids', ids);
    } catch (err) {
      throw new Error(`Counting the prompt's tokens failed: ${messageOf(err)}`, { cause: err });
    }
    this.#encoded = { expert: expert.id, prompt, ids, ms: performance.now() - t0, handed: false };
    return ids.length;
  }

  async #finish(a: Answer): Promise<PipelineResult> {
    const { out, expert } = a;
    const st = this.#stats;
    let promptTokens = out.promptTokens;
    if (promptTokens === undefined) {
      if (this.#counted !== undefined && this.#counted.expert === expert.id) promptTokens = this.#counted.tokens;
      else promptTokens = await countPrompt(expert, a.prompt);
    }
    Object.assign(this.#generation, {
      status: 'done',
      expertId: expert.id,
      calls: st.calls,
      promptTokens,
      tokens: st.tokens,
      finishReason: out.finishReason,
    });
    delete this.#generation.reason;
    if (st.attentionMs !== undefined && expert.generator instanceof LlamaDecoder) {
      const kv = expert.generator.kvBytes();
      this.#generation.attention = { ms: st.attentionMs, denseMs: st.denseMs!, kvBytes: kv.used, kvBytesFull: kv.full };
    }
    if (out.thinkingTokens !== undefined) this.#generation.thinkingTokens = out.thinkingTokens;
    if (out.session !== undefined) {
      Object.assign(this.#generation, {
        sessionId: out.session.id,
        rounds: out.session.rounds,
        stopReason: out.session.stopReason,
        confidence: out.session.confidence,
        modes: out.session.modes,
      });
    }
    if (this.#allocation !== undefined) {
      const b = this.s.budgets!;
      const t0 = performance.now();
      try {
        const committed = promptTokens + st.tokens;
        await b.budgets.commit(this.#allocation, committed);
        this.#budget.committed = committed;
      } catch (err) {
        // The answer exists and its tokens were spent; a commit the store refused is reported, not hidden.
        this.#budget.status = 'failed';
        this.#budget.reason = `commit failed: ${messageOf(err)}`;
      } finally {
        this.#budget.ms += performance.now() - t0;
        this.#allocation = undefined;
      }
    }
    const skip = this.#storeSkip();
    if (skip !== undefined) this.#store.reason = skip;
    else if (this.s.memory!.deferStore) {
      this.#store.status = 'deferred';
      this.#deferred = { user: this.r.user!, answer: out.text, expertId: expert.id };
    } else await this.#storeExchange(out.text, expert.id);
    const result: PipelineResult = {
      text: out.text,
      tokens: st.tokens,
      finishReason: out.finishReason,
      promptTokens,
      expertId: expert.id,
      trace: this.#trace('ok'),
      stored: Promise.resolve({ ...this.#store }),
    };
    if (out.stopSequence !== undefined) result.stopSequence = out.stopSequence;
    if (out.tokenIds !== undefined) result.tokenIds = out.tokenIds;
    if (out.logprobs !== undefined) result.logprobs = out.logprobs;
    if (out.thinking !== undefined) result.thinking = out.thinking;
    return result;
  }

  /** Why the exchange is not stored, or undefined when it is. */
  #storeSkip(): string | undefined {
    const m = this.s.memory;
    const { r } = this;
    if (m === undefined) return 'no memory stage';
    if (!r.memory) return 'turned off by the request';
    if (!m.store) return 'storing is off (memory.store: false)';
    if (r.user === undefined) return 'no user: memory is kept per user';
    if (this.#query === undefined) return 'a token-id prompt has no text to store';
    return undefined;
  }

  /** The user whose exchange is stored after the answer, when it is. */
  get deferredUser(): string | undefined {
    return this.#deferred?.user;
  }

  /** Runs the deferred store; resolves with its stage (a failure is in it and in storeError). */
  async storeDeferred(): Promise<StoreTrace> {
    const d = this.#deferred!;
    await this.#storeExchange(d.answer, d.expertId);
    return { ...this.#store };
  }

  /** The answered run's trace with its store stage settled. */
  settledTrace(answered: PipelineTrace): PipelineTrace {
    return { ...answered, stages: answered.stages.map((s) => (s.stage === 'store' ? { ...this.#store } : s)) };
  }

  async #storeExchange(answer: string, expertId: string): Promise<void> {
    const m = this.s.memory!;
    const { r } = this;
    const t = this.#store;
    const t0 = performance.now();
    try {
      t.memoryId = await m.agent.storeMemory(`User: ${this.#query}\nAssistant: ${answer}`, MemoryType.EPISODIC, m.priority, ['exchange'], {
        scope: r.sessionId === undefined ? { userId: r.user! } : { userId: r.user!, sessionId: r.sessionId },
        metadata: { expert: expertId, requestId: this.#requestId },
      });
      t.status = 'done';
    } catch (err) {
      t.status = 'failed';
      t.reason = messageOf(err);
      this.storeError = err;
    } finally {
      t.ms = performance.now() - t0;
    }
  }

  /** The trace of a run that did not answer; releases its reservation first. */
  trace(err: unknown, signal: AbortSignal | undefined): PipelineTrace {
    const outcome = err instanceof BudgetRefusedError ? 'refused' : signal?.aborted || (this.ctl.signal.aborted && this.ctl.signal.reason === err && isClosed(err)) ? 'aborted' : 'failed';
    if (this.#generation.status === 'skipped' && this.#stats.calls > 0) this.#generation.status = 'failed';
    if (this.#generation.status === 'failed') this.#generation.reason ??= messageOf(err);
    if (this.#generation.status === 'skipped') this.#generation.reason = `${outcome === 'refused' ? 'refused' : outcome === 'aborted' ? 'aborted' : 'failed'} before generation`;
    this.#store.reason = outcome === 'refused' ? 'refused: nothing to store' : `${outcome}: nothing to store`;
    const trace = this.#trace(outcome);
    trace.error = messageOf(err);
    return trace;
  }

  /** Releases the reservation of a run that did not answer. */
  async release(): Promise<void> {
    if (this.#allocation === undefined) return;
    const id = this.#allocation;
    this.#allocation = undefined;
    const t0 = performance.now();
    try {
      await this.s.budgets!.budgets.release(id);
      this.#budget.released = true;
    } catch (err) {
      this.#budget.status = 'failed';
      this.#budget.reason = `release failed: ${messageOf(err)}`;
    } finally {
      this.#budget.ms += performance.now() - t0;
    }
  }

  #trace(outcome: PipelineTrace['outcome']): PipelineTrace {
    const totalMs = performance.now() - this.#t0;
    const st = this.#stats;
    this.#generation.ms = st.generationMs;
    if (st.waitMs > 0) this.#generation.waitMs = st.waitMs;
    return {
      requestId: this.#requestId,
      startedAt: this.#startedAt,
      outcome,
      totalMs,
      generationMs: st.generationMs,
      waitMs: st.waitMs,
      overheadMs: Math.max(0, totalMs - st.generationMs - st.waitMs),
      // The store stage is copied: a deferred store settles it after this trace is handed out.
      stages: [this.#routing, this.#memory, this.#budget, this.#generation, { ...this.#store }],
    };
  }
}

/** The prompt's tokens by the expert's tokenizer; a failing or bad count is an Error saying so. */
async function countPrompt(expert: Expert, prompt: GeneratorPrompt): Promise<number> {
  if (typeof prompt !== 'string') return prompt.length;
  try {
    return v.integer('countTokens() result', await expert.generator.countTokens(prompt), 0);
  } catch (err) {
    throw new Error(`Counting the prompt's tokens failed: ${messageOf(err)}`, { cause: err });
  }
}

function isClosed(err: unknown): boolean {
  return err instanceof Error && err.name === 'ClosedError';
}

function messageOf(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return Object.prototype.toString.call(err);
  }
}
