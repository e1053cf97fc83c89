/**
 * Public types of {@link OptimizationPipeline}: its options, a request, the result and the
 * trace of every stage. Long, but one cohesive thing: the public shapes, each documented.
 * @module
 */
import type { BudgetDecision, BudgetForcing } from '../budget/index';
import type { RewiringExperts, RoutingContext, RoutingStrategy } from '../experts/routing/index';
import type { FinishReason, Generator, GeneratorPrompt, LlamaDecoder } from '../llm/index';
import type { MemAgent, MemoryPriority } from '../memory/index';
import type { ReasoningType, ThinkingMode, ThinkingStopReason, ThinkingStore } from '../thinking/index';
import type { ChatMessage, ChatTemplate } from './chat-template';

/**
 * One expert of a pipeline with what the pipeline needs to prompt it.
 *
 * @example
 * ```ts
 * const spec: ExpertSpec = { generator: model, chatTemplate: ChatTemplate.fromModelDir('./models/tiny') };
 * ```
 */
export interface ExpertSpec {
  /** The backend: a local {@link OnnxCausalLM}, an {@link OpenAICompatibleGenerator}, any {@link Generator}. */
  generator: Generator;
  /** Renders chat requests for this model; default {@link ChatTemplate.FALLBACK_SOURCE}. */
  chatTemplate?: ChatTemplate;
  /**
   * Tokens the model sees at once (prompt + generated), an integer >= 1. Default: the
   * generator's `info.contextLength` when it has one (as {@link OnnxCausalLM} does), else unknown.
   * Memory context is trimmed to fit it.
   */
  contextLength?: number;
}

/**
 * The memory stage: which MemAgent, and how much of it goes into a prompt.
 *
 * @example
 * ```ts
 * const memory: PipelineMemoryOptions = { agent: new MemAgent({ path: './memory.db' }), contextTokens: 512, topK: 5 };
 * ```
 */
export interface PipelineMemoryOptions {
  /** The memory. The pipeline does not close it. */
  agent: MemAgent;
  /** Most memory tokens put into a prompt, an integer >= 0; default 512. */
  contextTokens?: number;
  /** Most memories put into a prompt, an integer >= 1; default 5. */
  topK?: number;
  /**
   * Which memories a request sees: `'user'` (default) every memory of its user, `'session'`
   * only those of its user and session.
   */
  scope?: 'user' | 'session';
  /** Store each exchange as an EPISODIC memory of the user (and session); default `true`. */
  store?: boolean;
  /**
   * Store the exchange after the run has answered (default `true`): `run()` resolves as soon
   * as the answer exists, its trace's store stage says `'deferred'`, and the store runs right
   * after in the background; {@link PipelineResult.stored} and the `'trace'` event report how it
   * went. The same user's next run waits for it before its memory stage, and
   * {@link OptimizationPipeline.close} waits for it. `false` stores before `run()` resolves.
   */
  deferStore?: boolean;
  /** Priority of the stored exchanges; default `MemoryPriority.MEDIUM`. */
  priority?: MemoryPriority;
}

/**
 * The budget stage: which BudgetForcing, and how requests ask it.
 *
 * @example
 * ```ts
 * const budgets: PipelineBudgetOptions = { budgets: new BudgetForcing({ budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 100_000 }] }), priority: 1 };
 * ```
 */
export interface PipelineBudgetOptions {
  /** The budgets. The pipeline does not close them. */
  budgets: BudgetForcing;
  /** Priority of the requests (decides MEDIUM overdrafts), an integer in [0, 10]; default 1. */
  priority?: number;
  /** Seconds a reservation may stay open before it expires, > 0; default 600. */
  estimatedDurationS?: number;
  /** Requester of requests that name no user; default `'anonymous'`. */
  anonymousRequester?: string;
}

/**
 * Settings of the thinking modes a request may ask for (s1 thinking bounds, multi-round thinking).
 *
 * @example
 * ```ts
 * const thinking: PipelineThinkingOptions = { maxRounds: 3, thinkStart: '<think>\n', thinkEnd: '</think>' };
 * ```
 */
export interface PipelineThinkingOptions {
  /**
   * Where multi-round sessions are kept (e.g. a {@link SqliteThinkingStore}, so they survive a
   * restart); default one {@link MemoryThinkingStore} per pipeline. The pipeline does not close it.
   */
  store?: ThinkingStore;
  /** Default most rounds of a multi-round request, an integer in [1, 100]; default 3. */
  maxRounds?: number;
  /** Default most thinking tokens per call or round, an integer >= 1; default 1024. */
  maxThinkingTokens?: number;
  /** Opens the thinking; default `'<think>'`. */
  thinkStart?: string;
  /** Closes the thinking; default `'</think>'`. */
  thinkEnd?: string;
  /** Written after the thinking to start the answer; default `'Final Answer:'`. */
  finalAnswerPrefix?: string;
}

/**
 * Defaults of requests that leave a field out.
 *
 * @example
 * ```ts
 * const defaults: PipelineDefaults = { maxTokens: 256, expert: 'general', fallbackAttempts: 2 };
 * ```
 */
export interface PipelineDefaults {
  /** Tokens generated at most, an integer >= 0; default 256. */
  maxTokens?: number;
  /** Sampling temperature in [0, 2]; default the backend's. */
  temperature?: number;
  /** The expert of requests that are not routed (no router, no text); default the first of `experts`. */
  expert?: string;
  /** Experts tried at most by the routing stage (the choice, then fallbacks), an integer in [1, 17]; default 3. */
  fallbackAttempts?: number;
}

/**
 * Receives a pipeline's traces: {@link CapibaraMetrics} fits. The pipeline calls
 * `observePipeline(this)` once, at construction.
 *
 * @example
 * ```ts
 * const pipeline = new OptimizationPipeline({ experts: { local: model }, metrics: new CapibaraMetrics() });
 * console.log(await pipeline.metrics!.metrics());
 * ```
 */
export interface PipelineMetrics {
  /**
   * Starts observing a pipeline: its `'trace'` events and its parts.
   *
   * @param pipeline The pipeline.
   */
  observePipeline(pipeline: PipelineEventSource): void;
  /** The Prometheus text exposition of every metric. */
  metrics(): Promise<string>;
  /** The exposition's Content-Type. */
  readonly contentType: string;
}

/**
 * What a metrics sink sees of a pipeline: its events and its parts.
 *
 * @example
 * ```ts
 * function observe(p: PipelineEventSource) { p.on('trace', (t: PipelineTrace) => console.log(t.outcome, t.totalMs)); }
 * ```
 */
export interface PipelineEventSource {
  /**
   * Adds a listener; `'trace'` is emitted with the {@link PipelineTrace} after every run.
   *
   * @param event The event name.
   * @param listener Called with the event's arguments.
   */
  on(event: 'trace', listener: (trace: PipelineTrace) => void): unknown;
  /**
   * Removes a listener added with `on`.
   *
   * @param event The event name.
   * @param listener The listener.
   */
  off(event: 'trace', listener: (trace: PipelineTrace) => void): unknown;
  /** The router, when the pipeline routes. */
  readonly router: RewiringExperts | undefined;
  /** The memory, when the pipeline has a memory stage. */
  readonly memory: MemAgent | undefined;
  /** The budgets, when the pipeline has a budget stage. */
  readonly budgets: BudgetForcing | undefined;
}

/**
 * Options of {@link OptimizationPipeline}. Every stage but generation is optional.
 *
 * @example
 * ```ts
 * const options: OptimizationPipelineOptions = {
 *   experts: { sql: sqlModel, python: { generator: remote, chatTemplate } },
 *   router: new RewiringExperts({ experts: [sqlProfile, pythonProfile] }),
 *   memory: { agent: new MemAgent({ path: './memory.db' }) },
 *   budgets: { budgets: new BudgetForcing({ budgets: [{ resourceType: ResourceType.TOKENS, scope: 'daily', limit: 100_000 }] }) },
 *   thinking: { maxRounds: 3 },
 *   defaults: { maxTokens: 256 },
 * };
 * ```
 */
export interface OptimizationPipelineOptions {
  /** The experts by id: a {@link Generator}, or an {@link ExpertSpec}. At least one. */
  experts: Record<string, Generator | ExpertSpec>;
  /**
   * Routes each request to an expert (its experts' ids must all be keys of `experts`). Without
   * one, every request goes to `defaults.expert`.
   */
  router?: RewiringExperts;
  /** The memory stage: a MemAgent (with the defaults of {@link PipelineMemoryOptions}) or its options. */
  memory?: MemAgent | PipelineMemoryOptions;
  /** The budget stage: a BudgetForcing (with the defaults of {@link PipelineBudgetOptions}) or its options. */
  budgets?: BudgetForcing | PipelineBudgetOptions;
  /** Settings of thinking requests; thinking is available whether or not this is set. */
  thinking?: PipelineThinkingOptions;
  /** Request defaults. */
  defaults?: PipelineDefaults;
  /** Observes every run ({@link CapibaraMetrics}); exposed as {@link OptimizationPipeline.metrics}. */
  metrics?: PipelineMetrics;
}

/**
 * s1 thinking bounds of a request: the expert thinks within `[minThinkingTokens,
 * maxThinkingTokens]` tokens ({@link forceThinkingBudget}), then answers in at most the
 * request's `maxTokens`.
 *
 * @example
 * ```ts
 * const thinking: ThinkingBoundsRequest = { minThinkingTokens: 128, maxThinkingTokens: 1024 };
 * ```
 */
export interface ThinkingBoundsRequest {
  /** Fewest thinking tokens, an integer in [0, maxThinkingTokens]; default 0. */
  minThinkingTokens?: number;
  /** Most thinking tokens, an integer >= 1; default the pipeline's `thinking.maxThinkingTokens`. */
  maxThinkingTokens?: number;
}

/**
 * A multi-round thinking request ({@link MultiRoundThinking}, Think Twice): the request's
 * `maxTokens` is the whole session's token budget (every round's thinking and answer).
 *
 * @example
 * ```ts
 * const multiRound: MultiRoundRequest = { maxRounds: 3, thinkingMode: ThinkingMode.ADAPTIVE, maxThinkingTokens: 512, answerMaxTokens: 64 };
 * ```
 */
export interface MultiRoundRequest {
  /** Most rounds, an integer in [1, 100]; default the pipeline's `thinking.maxRounds`. */
  maxRounds?: number;
  /** Mode of the rounds; default none. */
  thinkingMode?: ThinkingMode;
  /** Reasoning type of the rounds; default none. */
  reasoningType?: ReasoningType;
  /** Fewest thinking tokens per round, an integer >= 0; default 0. */
  minThinkingTokens?: number;
  /** Most thinking tokens per round, an integer >= 1; default the pipeline's `thinking.maxThinkingTokens`. */
  maxThinkingTokens?: number;
  /** Most answer tokens per round, an integer >= 1; default 256. */
  answerMaxTokens?: number;
}

/**
 * One request to {@link OptimizationPipeline.run}: a prompt to continue or a chat, and who asks.
 *
 * @example
 * ```ts
 * const request: PipelineRequest = { messages: [{ role: 'user', content: 'Speed up this JOIN' }], user: 'alice', maxTokens: 128 };
 * ```
 */
export interface PipelineRequest {
  /** Text (or token ids) to continue, as `/v1/completions` sends it. Exactly one of `prompt` and `messages`. */
  prompt?: GeneratorPrompt;
  /** A chat, rendered by the expert's chat template. Exactly one of `prompt` and `messages`. */
  messages?: ChatMessage[];
  /**
   * Who asks: the budget requester and the memory scope. Without it the budget requester is
   * `anonymousRequester` and memory is neither read nor written (it is kept per user).
   */
  user?: string;
  /** The session (conversation), for `session` budgets and session-scoped memory. */
  sessionId?: string;
  /** Most tokens generated, an integer >= 0; default `defaults.maxTokens`. With `multiRound`, the session's token budget. */
  maxTokens?: number;
  /** Stop strings (plain generation only). */
  stop?: string[];
  /** Sampling temperature in [0, 2]; default `defaults.temperature`, else the backend's. */
  temperature?: number;
  /** Nucleus sampling mass in (0, 1]. */
  topP?: number;
  /** Sampling seed, an integer >= 0. */
  seed?: number;
  /** Ask for the generated tokens' log-probabilities (plain generation only). */
  logprobs?: boolean;
  /** Think within s1 bounds before answering. */
  thinking?: ThinkingBoundsRequest;
  /** Think in several rounds (Think Twice) and answer by majority. */
  multiRound?: MultiRoundRequest;
  /** `false` skips the memory stage (reading and storing) for this request; default `true`. */
  memory?: boolean;
  /** Send the request to this expert, skipping routing. */
  expert?: string;
  /** Hints for the router. */
  routingContext?: RoutingContext;
  /** Budget priority of this request, an integer in [0, 10]; default the budget stage's. */
  priority?: number;
}

/**
 * Options of one {@link OptimizationPipeline.run}.
 *
 * @example
 * ```ts
 * const opts: PipelineRunOptions = { signal: AbortSignal.timeout(30_000), onToken: (piece) => process.stdout.write(piece) };
 * ```
 */
export interface PipelineRunOptions {
  /** Aborts the run: generation stops, the budget reservation is released, the run rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Streams the answer as it becomes final. Plain generation streams token by token; with
   * thinking, the answer comes as one piece once the thinking is done.
   */
  onToken?: (piece: string, tokenId?: number) => void;
  /**
   * Waits for the right to call an expert's generator (a server's generation slot) and
   * resolves with the function that gives it back; called around every generate call. A
   * rejection fails the run with that error (it is not counted against the expert).
   */
  turn?: (expertId: string) => Promise<() => void>;
}

/**
 * The routing stage of a trace.
 *
 * @example
 * ```ts
 * const r = result.trace.stages.find((s): s is RoutingTrace => s.stage === 'routing');
 * console.log(r?.chosen, r?.expertId, r?.attempts);
 * ```
 */
export interface RoutingTrace {
  /** `'routing'`. */
  stage: 'routing';
  /** `'done'` when the router decided, `'skipped'` (see `reason`), `'failed'` when every expert tried failed. */
  status: 'done' | 'skipped' | 'failed';
  /** Wall time of the decision, ms (the expert calls are the generation stage's). */
  ms: number;
  /** Why it was skipped or failed. */
  reason?: string;
  /** The router's decision id. */
  decisionId?: string;
  /** The strategy that decided. */
  strategy?: RoutingStrategy;
  /** The expert the router chose. */
  chosen?: string;
  /** The expert that answered (the chosen one, or a fallback). */
  expertId?: string;
  /** The decision's fallback order. */
  fallbacks?: string[];
  /** Every expert call in order, with its outcome as recorded with the router. */
  attempts: Array<{
    /** The expert called. */
    expertId: string;
    /** Whether it answered. */
    success: boolean;
    /** Wall time of the call, ms. */
    latencyMs: number;
    /** Its error, when it failed. */
    error?: string;
  }>;
}

/**
 * The memory stage of a trace.
 *
 * @example
 * ```ts
 * const m = result.trace.stages.find((s): s is MemoryTrace => s.stage === 'memory');
 * console.log(m?.items, m?.tokens, m?.ids);
 * ```
 */
export interface MemoryTrace {
  /** `'memory'`. */
  stage: 'memory';
  /** `'done'`, `'skipped'` (see `reason`) or `'failed'`. */
  status: 'done' | 'skipped' | 'failed';
  /** Wall time, ms. */
  ms: number;
  /** Why it was skipped or failed. */
  reason?: string;
  /** The scope searched. */
  scope?: {
    /** The user's memories. */
    userId: string;
    /** Only this session's, with `scope: 'session'`. */
    sessionId?: string;
  };
  /** Memories put into the prompt. */
  items?: number;
  /** Their tokens (by the MemAgent's tokenizer). */
  tokens?: number;
  /** Their ids, best first. */
  ids?: string[];
  /** The MemAgent's own search time, ms. */
  searchMs?: number;
  /** Whether its query cache answered. */
  cacheHit?: boolean;
}

/**
 * The budget stage of a trace: the reservation before generation and its settlement after.
 *
 * @example
 * ```ts
 * const b = result.trace.stages.find((s): s is BudgetTrace => s.stage === 'budget');
 * console.log(b?.reserved, b?.committed);
 * ```
 */
export interface BudgetTrace {
  /** `'budget'`. */
  stage: 'budget';
  /** `'done'`, `'skipped'` (no budgets), `'denied'` (refused: nothing was generated) or `'failed'` (the store failed). */
  status: 'done' | 'skipped' | 'denied' | 'failed';
  /** Wall time of the reservation and the settlement, ms. */
  ms: number;
  /** Why it was skipped, denied or failed (a denial's message names the budget). */
  reason?: string;
  /** The requester charged. */
  requesterId?: string;
  /** The reservation. */
  allocationId?: string;
  /** Tokens reserved: the prompt's plus the most the request may generate. */
  reserved?: number;
  /** Tokens committed: the prompt's plus those generated. */
  committed?: number;
  /** The reservation was released instead (failure or abort): nothing was charged. */
  released?: boolean;
}

/**
 * What attention cost in a run's generation on a {@link LlamaDecoder}: the pipeline's
 * "(attention)" stage, which runs inside the expert's decode loop.
 *
 * @example
 * ```ts
 * const a = r.trace.stages[3].attention;
 * if (a) console.log(`attention ${a.ms.toFixed(1)} ms, KV ${a.kvBytes} of ${a.kvBytesFull} bytes`);
 * ```
 */
export interface AttentionTrace {
  /** Wall time of the attention kernel calls of the run's generate calls, ms (part of the generation's `ms`). */
  ms: number;
  /** Wall time of the dense layers (ONNX Runtime) of those calls, ms. */
  denseMs: number;
  /** Bytes the decoder's KV cache holds after the run ({@link LlamaDecoder.kvBytes} `used`). */
  kvBytes: number;
  /** Bytes it would hold with every head full, for the same tokens (`full`). */
  kvBytesFull: number;
}

/**
 * The generation stage of a trace.
 *
 * @example
 * ```ts
 * const g = result.trace.stages.find((s): s is GenerationTrace => s.stage === 'generation');
 * console.log(g?.mode, g?.tokens, g?.finishReason);
 * ```
 */
export interface GenerationTrace {
  /** `'generation'`. */
  stage: 'generation';
  /** `'done'`, `'failed'`, or `'skipped'` when an earlier stage stopped the run. */
  status: 'done' | 'skipped' | 'failed';
  /** Wall time of the expert calls, ms, waiting for turns excluded. */
  ms: number;
  /** Why it failed or was skipped. */
  reason?: string;
  /** How it generated: one call, s1 thinking bounds, or multi-round thinking. */
  mode: 'plain' | 'thinking' | 'multi-round';
  /** The expert that answered. */
  expertId?: string;
  /** Generate calls made. */
  calls?: number;
  /** Prompt tokens of the first call. */
  promptTokens?: number;
  /** Tokens generated, every call included. */
  tokens?: number;
  /** How the answer ended. */
  finishReason?: FinishReason;
  /** Thinking tokens (thinking modes). */
  thinkingTokens?: number;
  /** Milliseconds spent waiting for turns. */
  waitMs?: number;
  /**
   * Milliseconds encoding the prompt into the token ids handed to the expert, which then does
   * not encode it itself (plain generation on a generator with `encode()` that reports its
   * prompt's token ids, as {@link OnnxCausalLM} does); part of `ms`. The same ids count the
   * prompt for the budget reservation.
   */
  encodeMs?: number;
  /**
   * The attention inside decoding, when the expert is a {@link LlamaDecoder} (DuoAttention on
   * its split KV cache); absent for other generators.
   */
  attention?: AttentionTrace;
  /** The multi-round session's id. */
  sessionId?: string;
  /** Rounds run (multi-round). */
  rounds?: number;
  /** Why the session stopped (multi-round). */
  stopReason?: ThinkingStopReason;
  /** Share of the rounds that gave the final answer (multi-round). */
  confidence?: number;
  /** Rounds by the mode whose instruction was sent (`'none'`: none) (multi-round). */
  modes?: Record<string, number>;
}

/**
 * The store stage of a trace: the exchange kept as an EPISODIC memory.
 *
 * @example
 * ```ts
 * const s = result.trace.stages.find((x): x is StoreTrace => x.stage === 'store');
 * console.log(s?.memoryId);
 * ```
 */
export interface StoreTrace {
  /** `'store'`. */
  stage: 'store';
  /**
   * `'done'`, `'skipped'` (see `reason`), `'failed'` (the answer still stands), or
   * `'deferred'` in the trace a run resolves with when the store runs after the answer
   * (`memory.deferStore`, the default): {@link PipelineResult.stored} and the `'trace'` event
   * then have the settled stage.
   */
  status: 'done' | 'skipped' | 'failed' | 'deferred';
  /** Wall time of the store, ms (after the answer when deferred: not part of the run's `totalMs`). */
  ms: number;
  /** Why it was skipped or failed. */
  reason?: string;
  /** The stored memory's id. */
  memoryId?: string;
}

/**
 * One stage of a trace.
 *
 * @example
 * ```ts
 * for (const s of result.trace.stages) console.log(s.stage, s.status, s.ms.toFixed(2), s.reason ?? '');
 * ```
 */
export type StageTrace = RoutingTrace | MemoryTrace | BudgetTrace | GenerationTrace | StoreTrace;

/**
 * What a run did, stage by stage, in order: routing, memory, budget, generation, store.
 *
 * @example
 * ```ts
 * const { trace } = await pipeline.run({ prompt: 'Hi', user: 'u1' });
 * console.log(trace.outcome, trace.totalMs, trace.overheadMs);
 * ```
 */
export interface PipelineTrace {
  /** The run's id. */
  requestId: string;
  /** When it started, ms since the epoch. */
  startedAt: number;
  /** `'ok'`, `'refused'` (budget denied), `'failed'` or `'aborted'`. */
  outcome: 'ok' | 'refused' | 'failed' | 'aborted';
  /** The error's message when not ok. */
  error?: string;
  /** Wall time of the run, ms. */
  totalMs: number;
  /**
   * Time in the experts' generate calls, ms, and encoding the prompt when the pipeline hands
   * the expert token ids in place of its own encoding (see {@link GenerationTrace.encodeMs}).
   */
  generationMs: number;
  /** Time waiting for turns, ms. */
  waitMs: number;
  /** What the stages added: `totalMs − generationMs − waitMs` (a deferred store is not in it: it runs after the answer). */
  overheadMs: number;
  /** Every stage, in order. */
  stages: StageTrace[];
}

/**
 * Result of {@link OptimizationPipeline.run}.
 *
 * @example
 * ```ts
 * const r = await pipeline.run({ messages: [{ role: 'user', content: 'Hi' }], user: 'u1' });
 * console.log(r.expertId, r.text, r.tokens, r.trace.stages.map((s) => s.stage));
 * ```
 */
export interface PipelineResult {
  /** The answer (with thinking: the answer after the thinking). */
  text: string;
  /** Tokens generated, every call of the run included (thinking too). */
  tokens: number;
  /** How the answer ended (`'length'` also when a thinking session ran out of budget). */
  finishReason: FinishReason;
  /** The stop string that ended it, when `finishReason` is `'stop'` by a stop string. */
  stopSequence?: string;
  /** Ids of the generated tokens (plain generation, when the backend reports them). */
  tokenIds?: number[];
  /** Log-probabilities of the generated tokens (plain generation, when asked and reported). */
  logprobs?: number[];
  /** Prompt tokens of the first call (the backend's count when it reports one, else `countTokens`). */
  promptTokens: number;
  /** The expert that answered. */
  expertId: string;
  /** The thinking (thinking modes: the s1 thinking, or the final round's). */
  thinking?: string;
  /** What each stage did, when the run answered (a deferred store says `'deferred'`). */
  trace: PipelineTrace;
  /**
   * Settles with the store stage once the exchange is stored (`'done'`, with its `memoryId`),
   * failed to be (`'failed'`, with the reason; the error also goes to the pipeline's `'error'`
   * listeners) or was skipped; never rejects. Already settled unless the store was deferred.
   *
   * @example
   * ```ts
   * const r = await pipeline.run({ prompt: 'Hi', user: 'u1' });
   * const { status, memoryId } = await r.stored;
   * ```
   */
  stored: Promise<StoreTrace>;
}

/**
 * Thrown when the budget stage denies a request: nothing was generated and nothing stays
 * reserved. `decision.message` says which budget and how much is left.
 *
 * @example
 * ```ts
 * try { await pipeline.run(request); } catch (err) { if (err instanceof BudgetRefusedError) console.warn(err.decision.message); }
 * ```
 */
export class BudgetRefusedError extends Error {
  /** Always `'BudgetRefusedError'`. */
  override readonly name = 'BudgetRefusedError';

  /**
   * @param decision The denial.
   * @param requesterId Whose budget.
   * @param amount The tokens asked for.
   *
   * @example
   * ```ts
   * new BudgetRefusedError(decision, 'alice', 4096).message;
   * ```
   */
  constructor(
    readonly decision: BudgetDecision,
    readonly requesterId: string,
    readonly amount: number,
  ) {
    super(`Budget denied for '${requesterId}' (${amount} tokens asked): ${decision.message}`);
  }
}
