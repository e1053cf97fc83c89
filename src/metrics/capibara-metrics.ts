/**
 * CapibaraMetrics: one prom-client registry with a counter, gauge or histogram for every part
 * (names in names.ts), fed by the parts' own events, their `getMetrics()` at scrape time, and
 * the pipeline's traces. One cohesive thing: the metrics and the code feeding each.
 * @module
 */
import type { EventEmitter } from 'node:events';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DuoAttention } from '../attention/index';
import type { BudgetDecision, BudgetForcing, BudgetRequest, BudgetViolation } from '../budget/index';
import type { RewiringExperts, RoutingDecision, RoutingOutcome } from '../experts/routing/index';
import type { MemAgent } from '../memory/index';
import type { MultiRoundThinking, ThinkingRoundRecord, ThinkingSession } from '../thinking/index';
import { CloseGuard } from '../toolkit/closing';
import * as v from '../validate';
import { type KnownMetric as MetricName, METRICS } from './names';

/**
 * Options of {@link CapibaraMetrics}.
 *
 * @example
 * ```ts
 * const metrics = new CapibaraMetrics({ defaultMetrics: true });
 * ```
 */
export interface CapibaraMetricsOptions {
  /** Register into this prom-client registry; default a new one (so two instances never clash). */
  registry?: Registry;
  /** Also collect prom-client's default Node.js metrics (`process_*`, `nodejs_*`) into the registry; default false. */
  defaultMetrics?: boolean;
  /** Buckets (seconds) of the duration histograms; default 0.5 ms to 60 s. */
  durationBuckets?: number[];
}

/**
 * What {@link CapibaraMetrics} reads of a pipeline's trace (see `PipelineTrace`): the outcome,
 * the times and each stage.
 *
 * @example
 * ```ts
 * metrics.recordTrace({ outcome: 'ok', totalMs: 12, overheadMs: 0.4, stages: [] });
 * ```
 */
export interface TraceRecord {
  /** `'ok'`, `'refused'`, `'failed'` or `'aborted'`. */
  outcome: string;
  /** Wall time, ms. */
  totalMs: number;
  /** Time the stages added, ms. */
  overheadMs: number;
  /** The stages, each with its own fields (see `StageTrace`), read by name. */
  stages: ReadonlyArray<{
    /** The stage's name. */
    stage: string;
    /** What it did. */
    status: string;
    /** Its wall time, ms. */
    ms: number;
  }>;
}

/**
 * A pipeline as {@link CapibaraMetrics.observePipeline} sees it (an {@link OptimizationPipeline} fits).
 *
 * @example
 * ```ts
 * metrics.observePipeline(pipeline);
 * ```
 */
export interface ObservedPipeline {
  /**
   * Adds the `'trace'` listener.
   *
   * @param event `'trace'`.
   * @param listener Called with each run's trace.
   */
  on(event: 'trace', listener: (trace: TraceRecord) => void): unknown;
  /**
   * Removes it.
   *
   * @param event `'trace'`.
   * @param listener The listener.
   */
  off(event: 'trace', listener: (trace: TraceRecord) => void): unknown;
  /** Observed too, when present. */
  readonly router: RewiringExperts | undefined;
  /** Observed too, when present. */
  readonly memory: MemAgent | undefined;
  /** Observed too, when present. */
  readonly budgets: BudgetForcing | undefined;
}

const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const RATIO_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
const RATIO_HISTOGRAMS = new Set<string>(['capibara_thinking_confidence_ratio']);

type AnyMetric = Counter<string> | Gauge<string> | Histogram<string>;

/**
 * Prometheus metrics for every part, in one prom-client registry. Names follow
 * `capibara_<part>_<what>_<unit>` (base units, counters ending in `_total`); {@link METRICS}
 * lists each with its labels and meaning.
 *
 * Where the figures come from: a router's `'routed'`, `'outcome'` and `'rewired'` events; a
 * BudgetForcing's `'approved'`, `'denied'`, `'violation'`, `'alert'`, `'expired'` and
 * `'storeError'` events; a MultiRoundThinking's `'round'` and `'completed'` events; the
 * `getMetrics()` of a MemAgent, a router (requests in flight), a BudgetForcing (utilisation)
 * and a DuoAttention, read at each scrape (counters move by the difference since the last
 * scrape); and each pipeline run's trace (stages, times, tokens, fallbacks, thinking). The
 * parts' own `getMetrics()` JSON is unchanged.
 *
 * @example
 * ```ts
 * import { CapibaraMetrics, OptimizationPipeline } from '@capibara/core';
 * const metrics = new CapibaraMetrics({ defaultMetrics: true });
 * const pipeline = new OptimizationPipeline({ experts: { local: model }, router, memory, budgets, metrics });
 * // ... serve requests ...
 * res.setHeader('content-type', metrics.contentType);
 * res.end(await metrics.metrics());
 * ```
 */
export class CapibaraMetrics {
  /**
   * The prom-client registry holding every metric.
   *
   * @example
   * ```ts
   * const json = await metrics.registry.getMetricsAsJSON();
   * ```
   */
  readonly registry: Registry;
  readonly #m = new Map<MetricName, AnyMetric>();
  readonly #observed = new WeakSet<object>();
  readonly #detach: Array<() => void> = [];
  readonly #memories = new Set<MemAgent>();
  readonly #routers = new Set<RewiringExperts>();
  readonly #budgets = new Set<BudgetForcing>();
  readonly #attention = new Set<DuoAttention>();
  readonly #servers = new Set<{ readonly running: number; readonly waiting: number }>();
  // Last values read from getMetrics(), so counters move by the difference.
  readonly #last = new WeakMap<object, Record<string, number>>();
  readonly #guard = new CloseGuard('CapibaraMetrics');

  /**
   * Registers every metric of {@link METRICS}.
   *
   * @param options Registry, default Node metrics and buckets.
   * @throws TypeError / RangeError for bad options; Error when the registry already has one of the names.
   *
   * @example
   * ```ts
   * const metrics = new CapibaraMetrics();
   * ```
   */
  constructor(options: CapibaraMetricsOptions = {}) {
    const o = v.options<CapibaraMetricsOptions>('options', options, ['registry', 'defaultMetrics', 'durationBuckets']);
    if (o.registry !== undefined && !(o.registry instanceof Registry)) throw v.typeError('options.registry', 'a prom-client Registry', o.registry);
    this.registry = o.registry ?? new Registry();
    const buckets = o.durationBuckets === undefined ? DURATION_BUCKETS : checkBuckets(o.durationBuckets);
    const self = this;
    for (const info of METRICS) {
      const config = { name: info.name, help: info.help, labelNames: [...info.labels] as string[], registers: [this.registry] };
      let metric: AnyMetric;
      if (info.type === 'counter') metric = new Counter(config);
      else if (info.type === 'gauge') metric = new Gauge(config);
      else metric = new Histogram({ ...config, buckets: RATIO_HISTOGRAMS.has(info.name) ? RATIO_BUCKETS : buckets });
      this.#m.set(info.name as MetricName, metric);
    }
    // Scrape-time readings of the parts' getMetrics(): registered as the collect hook of one
    // metric per part, so they run once per scrape.
    this.#hook('capibara_memory_items', () => self.#collectMemory());
    this.#hook('capibara_routing_in_flight_requests', () => self.#collectRouters());
    this.#hook('capibara_budget_utilisation_ratio', () => self.#collectBudgets());
    this.#hook('capibara_attention_calls_total', () => self.#collectAttention());
    this.#hook('capibara_server_generations_running', () => self.#collectServers());
    if (o.defaultMetrics === true) collectDefaultMetrics({ register: this.registry });
    else if (o.defaultMetrics !== undefined) v.boolean('options.defaultMetrics', o.defaultMetrics);
  }

  /**
   * The Content-Type of {@link CapibaraMetrics.metrics}'s text.
   *
   * @example
   * ```ts
   * res.writeHead(200, { 'content-type': metrics.contentType });
   * ```
   */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The Prometheus text exposition of every metric (what `GET /metrics` answers).
   *
   * @returns The text.
   *
   * @example
   * ```ts
   * console.log(await metrics.metrics());
   * ```
   */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Records every run of a pipeline (its `'trace'` events) and observes its router, memory and
   * budgets. Observing the same object again does nothing.
   *
   * @param pipeline The pipeline.
   *
   * @example
   * ```ts
   * metrics.observePipeline(pipeline); // OptimizationPipeline does this itself when given `metrics`
   * ```
   */
  observePipeline(pipeline: ObservedPipeline): void {
    this.#guard.check();
    if (!this.#once(pipeline)) return;
    const onTrace = (t: TraceRecord) => this.recordTrace(t);
    pipeline.on('trace', onTrace);
    this.#detach.push(() => pipeline.off('trace', onTrace));
    if (pipeline.router !== undefined) this.observeRouter(pipeline.router);
    if (pipeline.memory !== undefined) this.observeMemory(pipeline.memory);
    if (pipeline.budgets !== undefined) this.observeBudgets(pipeline.budgets);
  }

  /**
   * Counts a router's decisions, outcomes, call latencies and rewirings, and reads its
   * requests in flight at each scrape.
   *
   * @param router The router.
   *
   * @example
   * ```ts
   * metrics.observeRouter(router);
   * ```
   */
  observeRouter(router: RewiringExperts): void {
    this.#guard.check();
    if (!this.#once(router)) return;
    this.#routers.add(router);
    this.#listen(router, 'routed', (d: RoutingDecision) => this.#inc('capibara_routing_decisions_total', { expert: d.expertId }));
    this.#listen(router, 'outcome', (_id: string, o: RoutingOutcome & { expertId: string }) => {
      this.#inc('capibara_routing_outcomes_total', { expert: o.expertId, result: o.success ? 'success' : 'failure' });
      this.#observe('capibara_routing_call_duration_seconds', o.latencyMs / 1000, { expert: o.expertId });
    });
    this.#listen(router, 'rewired', () => this.#inc('capibara_routing_rewirings_total'));
    this.#detach.push(() => this.#routers.delete(router));
  }

  /**
   * Reads a MemAgent's items, tokens, searches and evictions at each scrape.
   *
   * @param memory The memory.
   *
   * @example
   * ```ts
   * metrics.observeMemory(memory);
   * ```
   */
  observeMemory(memory: MemAgent): void {
    this.#guard.check();
    if (!this.#once(memory)) return;
    this.#memories.add(memory);
    this.#detach.push(() => this.#memories.delete(memory));
  }

  /**
   * Counts a BudgetForcing's approvals, denials, violations, alerts, expirations and store
   * errors, and reads its utilisation at each scrape.
   *
   * @param budgets The budgets.
   *
   * @example
   * ```ts
   * metrics.observeBudgets(budgets);
   * ```
   */
  observeBudgets(budgets: BudgetForcing): void {
    this.#guard.check();
    if (!this.#once(budgets)) return;
    this.#budgets.add(budgets);
    this.#listen(budgets, 'approved', (_d: BudgetDecision, req: BudgetRequest) => this.#inc('capibara_budget_approvals_total', { resource: req.resourceType }));
    this.#listen(budgets, 'denied', (_d: BudgetDecision, req: BudgetRequest) => this.#inc('capibara_budget_denials_total', { resource: req.resourceType }));
    this.#listen(budgets, 'violation', (x: BudgetViolation) => this.#inc('capibara_budget_violations_total', { cause: x.cause }));
    this.#listen(budgets, 'alert', () => this.#inc('capibara_budget_alerts_total'));
    this.#listen(budgets, 'expired', () => this.#inc('capibara_budget_expirations_total'));
    this.#listen(budgets, 'storeError', () => this.#inc('capibara_budget_store_errors_total'));
    this.#detach.push(() => this.#budgets.delete(budgets));
  }

  /**
   * Counts a MultiRoundThinking's rounds (by mode) and completed sessions (by stop reason,
   * with their confidence). Sessions a pipeline runs are counted from its traces instead.
   *
   * @param thinking The thinking instance.
   *
   * @example
   * ```ts
   * metrics.observeThinking(thinking);
   * ```
   */
  observeThinking(thinking: MultiRoundThinking): void {
    this.#guard.check();
    if (!this.#once(thinking)) return;
    this.#listen(thinking, 'round', (_id: string, r: ThinkingRoundRecord) => {
      this.#inc('capibara_thinking_rounds_total', { mode: r.modeUsed ?? 'none' });
      this.#inc('capibara_thinking_tokens_total', {}, r.thinkingTokens);
    });
    this.#listen(thinking, 'completed', (s: ThinkingSession) => {
      this.#inc('capibara_thinking_sessions_total', { kind: 'multi-round', stop_reason: s.stopReason ?? 'unknown' });
      if (s.synthesis !== undefined) this.#observe('capibara_thinking_confidence_ratio', s.synthesis.confidence);
    });
  }

  /**
   * Reads a DuoAttention's calls and KV bytes attended and saved at each scrape.
   *
   * @param attention The DuoAttention.
   *
   * @example
   * ```ts
   * metrics.observeAttention(duo);
   * ```
   */
  observeAttention(attention: DuoAttention): void {
    this.#guard.check();
    if (!this.#once(attention)) return;
    this.#attention.add(attention);
    this.#detach.push(() => this.#attention.delete(attention));
  }

  /**
   * Reads a server's generations running and requests waiting at each scrape
   * ({@link CompletionsServer} does this itself when given `metrics`).
   *
   * @param server Anything with `running` and `waiting` counts.
   *
   * @example
   * ```ts
   * metrics.observeServer(server);
   * ```
   */
  observeServer(server: {
    /** Generations running. */
    readonly running: number;
    /** Requests waiting. */
    readonly waiting: number;
  }): void {
    this.#guard.check();
    if (!this.#once(server)) return;
    this.#servers.add(server);
    this.#detach.push(() => this.#servers.delete(server));
  }

  /**
   * Counts one HTTP request (the completions server calls this for every answer).
   *
   * @param route The route pattern (`/v1/chat/completions`, `/v1/models/{id}`), not the raw path.
   * @param method The HTTP method.
   * @param status The status code sent.
   * @param seconds Its wall time.
   *
   * @example
   * ```ts
   * metrics.recordHttp('/v1/completions', 'POST', 200, 0.42);
   * ```
   */
  recordHttp(route: string, method: string, status: number, seconds: number): void {
    if (this.#guard.closed) return;
    this.#inc('capibara_http_requests_total', { route, method, status: String(status) });
    this.#observe('capibara_http_request_duration_seconds', seconds, { route });
  }

  /**
   * Records one pipeline run from its trace (what {@link CapibaraMetrics.observePipeline}
   * does for every `'trace'` event).
   *
   * @param trace The run's trace.
   *
   * @example
   * ```ts
   * pipeline.on('trace', (t) => metrics.recordTrace(t));
   * ```
   */
  recordTrace(trace: TraceRecord): void {
    if (this.#guard.closed) return;
    this.#inc('capibara_pipeline_requests_total', { outcome: trace.outcome });
    if (trace.outcome === 'ok') {
      this.#observe('capibara_pipeline_request_duration_seconds', trace.totalMs / 1000);
      this.#observe('capibara_pipeline_overhead_seconds', trace.overheadMs / 1000);
    }
    for (const stage of trace.stages) {
      const s = stage as typeof stage & Record<string, unknown>;
      this.#inc('capibara_pipeline_stages_total', { stage: s.stage, status: s.status });
      if (s.status !== 'skipped') this.#observe('capibara_pipeline_stage_duration_seconds', s.ms / 1000, { stage: s.stage });
      const n = (k: string): number | undefined => (typeof s[k] === 'number' ? (s[k] as number) : undefined);
      const str = (k: string): string | undefined => (typeof s[k] === 'string' ? (s[k] as string) : undefined);
      switch (s.stage) {
        case 'routing':
          if (s.status === 'done' && str('expertId') !== undefined && str('expertId') !== str('chosen')) {
            this.#inc('capibara_routing_fallbacks_total', { expert: str('expertId')! });
          }
          break;
        case 'memory':
          if (s.status === 'done') {
            this.#observe('capibara_memory_search_duration_seconds', (n('searchMs') ?? s.ms) / 1000);
            this.#inc('capibara_memory_retrieved_items_total', {}, n('items') ?? 0);
            this.#inc('capibara_memory_retrieved_tokens_total', {}, n('tokens') ?? 0);
          }
          break;
        case 'budget':
          if (n('reserved') !== undefined && s.status !== 'denied') this.#inc('capibara_budget_reserved_tokens_total', {}, n('reserved')!);
          if (n('committed') !== undefined) this.#inc('capibara_budget_committed_tokens_total', {}, n('committed')!);
          if (s['released'] === true) this.#inc('capibara_budget_releases_total');
          break;
        case 'generation': {
          const expert = str('expertId');
          if (s.status !== 'done' || expert === undefined) break;
          this.#inc('capibara_llm_generated_tokens_total', { expert }, n('tokens') ?? 0);
          this.#inc('capibara_llm_prompt_tokens_total', { expert }, n('promptTokens') ?? 0);
          this.#observe('capibara_llm_generation_duration_seconds', s.ms / 1000, { expert });
          const attention = s['attention'] as { ms: number; kvBytes: number; kvBytesFull: number } | undefined;
          if (typeof attention === 'object' && attention !== null) {
            this.#inc('capibara_attention_decode_seconds_total', { expert }, attention.ms / 1000);
            this.#set('capibara_attention_kv_cache_bytes', attention.kvBytes, { expert, heads: 'duo' });
            this.#set('capibara_attention_kv_cache_bytes', attention.kvBytesFull, { expert, heads: 'full' });
          }
          if (s['mode'] === 'thinking') {
            this.#inc('capibara_thinking_sessions_total', { kind: 's1', stop_reason: str('finishReason') === 'length' ? 'answer-length' : 'answered' });
            this.#inc('capibara_thinking_tokens_total', {}, n('thinkingTokens') ?? 0);
          } else if (s['mode'] === 'multi-round') {
            this.#inc('capibara_thinking_sessions_total', { kind: 'multi-round', stop_reason: str('stopReason') ?? 'unknown' });
            this.#inc('capibara_thinking_tokens_total', {}, n('thinkingTokens') ?? 0);
            if (n('confidence') !== undefined) this.#observe('capibara_thinking_confidence_ratio', n('confidence')!);
            const modes = s['modes'];
            if (modes !== null && typeof modes === 'object') {
              for (const [mode, count] of Object.entries(modes as Record<string, number>)) this.#inc('capibara_thinking_rounds_total', { mode }, count);
            }
          }
          break;
        }
        case 'store':
          if (s.status === 'done') this.#inc('capibara_memory_stored_total');
          break;
        default:
          break;
      }
    }
  }

  /**
   * Stops observing: removes every listener this instance added (the registry keeps its
   * values). Idempotent; later `observe*` calls throw ClosedError, recording calls do nothing.
   *
   * @example
   * ```ts
   * metrics.close();
   * ```
   */
  close(): void {
    this.#guard.closeSync(() => {
      for (const d of this.#detach.splice(0)) d();
    });
  }

  /** {@link CapibaraMetrics.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #once(x: object): boolean {
    if (x === null || typeof x !== 'object') throw v.typeError('the observed object', 'an object', x);
    if (this.#observed.has(x)) return false;
    this.#observed.add(x);
    return true;
  }

  // The parts are EventEmitters: their listeners take any arguments.
  #listen<A extends unknown[]>(source: EventEmitter, event: string, listener: (...a: A) => void): void {
    const l = listener as (...a: unknown[]) => void;
    source.on(event, l);
    this.#detach.push(() => source.off(event, l));
  }

  #hook(name: MetricName, collect: () => void | Promise<void>): void {
    (this.#m.get(name) as unknown as { collect?: () => void | Promise<void> }).collect = collect;
  }

  #inc(name: MetricName, labels: Record<string, string> = {}, by = 1): void {
    if (by > 0) (this.#m.get(name) as Counter<string>).inc(labels, by);
  }

  #observe(name: MetricName, value: number, labels: Record<string, string> = {}): void {
    if (Number.isFinite(value)) (this.#m.get(name) as Histogram<string>).observe(labels, value);
  }

  #set(name: MetricName, value: number, labels: Record<string, string> = {}): void {
    (this.#m.get(name) as Gauge<string>).set(labels, value);
  }

  /** Moves counter `name` by how much `value` grew since the last reading of `key` on `owner`. */
  #delta(owner: object, key: string, name: MetricName, value: number, labels: Record<string, string> = {}): void {
    let last = this.#last.get(owner);
    if (last === undefined) this.#last.set(owner, (last = {}));
    const before = last[key] ?? 0;
    last[key] = value;
    if (value > before) this.#inc(name, labels, value - before);
  }

  #collectMemory(): void {
    let items = 0;
    let used = 0;
    let capacity = 0;
    for (const m of this.#memories) {
      let x;
      try {
        x = m.getMetrics();
      } catch {
        continue; // closed: its last figures stay in the counters
      }
      items += x.items;
      used += x.tokensUsed;
      capacity += x.tokensAvailable;
      this.#delta(m, 'hits', 'capibara_memory_searches_total', x.cacheHits, { cache: 'hit' });
      this.#delta(m, 'misses', 'capibara_memory_searches_total', x.cacheMisses, { cache: 'miss' });
      this.#delta(m, 'evicted', 'capibara_memory_evictions_total', x.evicted);
    }
    this.#set('capibara_memory_items', items);
    this.#set('capibara_memory_used_tokens', used);
    this.#set('capibara_memory_capacity_tokens', capacity);
  }

  #collectRouters(): void {
    const inFlight = new Map<string, number>();
    for (const r of this.#routers) {
      for (const [id, n] of Object.entries(r.getMetrics().inFlight)) inFlight.set(id, (inFlight.get(id) ?? 0) + n);
    }
    const g = this.#m.get('capibara_routing_in_flight_requests') as Gauge<string>;
    g.reset();
    for (const [expert, n] of inFlight) g.set({ expert }, n);
  }

  async #collectBudgets(): Promise<void> {
    const sum = new Map<string, { used: number; n: number }>();
    for (const b of this.#budgets) {
      if (b.closed) continue;
      let m;
      try {
        m = await b.getMetrics();
      } catch {
        continue;
      }
      for (const [resource, u] of Object.entries(m.utilisation)) {
        if (typeof u !== 'number') continue;
        const e = sum.get(resource) ?? { used: 0, n: 0 };
        e.used += u;
        e.n++;
        sum.set(resource, e);
      }
    }
    const g = this.#m.get('capibara_budget_utilisation_ratio') as Gauge<string>;
    g.reset();
    for (const [resource, e] of sum) g.set({ resource }, e.used / e.n);
  }

  #collectAttention(): void {
    for (const a of this.#attention) {
      let m;
      try {
        m = a.getMetrics();
      } catch {
        continue;
      }
      this.#delta(a, 'calls', 'capibara_attention_calls_total', m.calls);
      this.#delta(a, 'attended', 'capibara_attention_kv_attended_bytes_total', m.kvBytesAttended);
      this.#delta(a, 'saved', 'capibara_attention_kv_saved_bytes_total', m.kvBytesSaved);
    }
  }

  #collectServers(): void {
    let running = 0;
    let waiting = 0;
    for (const s of this.#servers) {
      running += s.running;
      waiting += s.waiting;
    }
    this.#set('capibara_server_generations_running', running);
    this.#set('capibara_server_requests_waiting', waiting);
  }
}

function checkBuckets(value: unknown): number[] {
  if (!Array.isArray(value) || value.length === 0) throw v.typeError('options.durationBuckets', 'a non-empty array of increasing finite numbers > 0', value);
  value.forEach((b: unknown, i) => {
    v.finite(`options.durationBuckets[${i}]`, b, { positive: true });
    if (i > 0 && (b as number) <= (value[i - 1] as number)) throw v.rangeError(`options.durationBuckets[${i}]`, `a number > ${value[i - 1]}`, b);
  });
  return value as number[];
}
