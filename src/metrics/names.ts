/**
 * The metric names, in one place: `capibara_<part>_<what>_<unit>` (Prometheus naming, base
 * units: seconds, bytes, tokens, ratio; counters end in `_total`).
 * @module
 */

const LIST = [
  // routing
  { name: 'capibara_routing_decisions_total', type: 'counter', labels: ['expert'], help: 'Routing decisions (routeQuery calls), by the expert chosen.' },
  { name: 'capibara_routing_outcomes_total', type: 'counter', labels: ['expert', 'result'], help: 'Outcomes recorded with the router, by expert and result (success, failure).' },
  { name: 'capibara_routing_fallbacks_total', type: 'counter', labels: ['expert'], help: 'Pipeline requests answered by a fallback expert instead of the one chosen, by the expert that answered.' },
  { name: 'capibara_routing_call_duration_seconds', type: 'histogram', labels: ['expert'], help: 'Latency of expert calls as recorded with the router, by expert.' },
  { name: 'capibara_routing_rewirings_total', type: 'counter', labels: [], help: 'Fallback-order changes made by the expert graph.' },
  { name: 'capibara_routing_in_flight_requests', type: 'gauge', labels: ['expert'], help: 'Requests routed to each expert and not yet settled.' },
  // memory
  { name: 'capibara_memory_items', type: 'gauge', labels: [], help: 'Live memory items.' },
  { name: 'capibara_memory_used_tokens', type: 'gauge', labels: [], help: 'Tokens of the live memory items.' },
  { name: 'capibara_memory_capacity_tokens', type: 'gauge', labels: [], help: 'Memory capacity in tokens.' },
  { name: 'capibara_memory_searches_total', type: 'counter', labels: ['cache'], help: 'retrieveMemory calls, by whether the query cache answered (hit, miss).' },
  { name: 'capibara_memory_evictions_total', type: 'counter', labels: [], help: 'Memory items evicted to make room.' },
  { name: 'capibara_memory_search_duration_seconds', type: 'histogram', labels: [], help: 'Search time of the pipeline memory stage (MemAgent searchTimeMs).' },
  { name: 'capibara_memory_retrieved_items_total', type: 'counter', labels: [], help: 'Memory items put into pipeline prompts.' },
  { name: 'capibara_memory_retrieved_tokens_total', type: 'counter', labels: [], help: 'Tokens of the memory items put into pipeline prompts.' },
  { name: 'capibara_memory_stored_total', type: 'counter', labels: [], help: 'Exchanges stored as memories by the pipeline.' },
  // budgets
  { name: 'capibara_budget_approvals_total', type: 'counter', labels: ['resource'], help: 'Budget requests approved, by resource.' },
  { name: 'capibara_budget_denials_total', type: 'counter', labels: ['resource'], help: 'Budget requests denied, by resource.' },
  { name: 'capibara_budget_violations_total', type: 'counter', labels: ['cause'], help: 'Budget violations, by cause (request, commit).' },
  { name: 'capibara_budget_alerts_total', type: 'counter', labels: [], help: 'Soft-threshold alerts.' },
  { name: 'capibara_budget_expirations_total', type: 'counter', labels: [], help: 'Reservations that expired before being settled.' },
  { name: 'capibara_budget_store_errors_total', type: 'counter', labels: [], help: 'Budget store failures.' },
  { name: 'capibara_budget_utilisation_ratio', type: 'gauge', labels: ['resource'], help: 'Committed + reserved over limit of the current windows, by resource (BudgetForcing.getMetrics).' },
  { name: 'capibara_budget_reserved_tokens_total', type: 'counter', labels: [], help: 'Tokens reserved by the pipeline budget stage.' },
  { name: 'capibara_budget_committed_tokens_total', type: 'counter', labels: [], help: 'Tokens committed by the pipeline budget stage (prompt + generated).' },
  { name: 'capibara_budget_releases_total', type: 'counter', labels: [], help: 'Pipeline reservations released unused (failed or aborted requests).' },
  // thinking
  { name: 'capibara_thinking_sessions_total', type: 'counter', labels: ['kind', 'stop_reason'], help: 'Thinking runs completed: s1 (thinking bounds) or multi-round sessions, by stop reason.' },
  { name: 'capibara_thinking_rounds_total', type: 'counter', labels: ['mode'], help: 'Multi-round thinking rounds, by the mode whose instruction was sent (none: no mode).' },
  { name: 'capibara_thinking_confidence_ratio', type: 'histogram', labels: [], help: 'Confidence of completed multi-round sessions: the share of rounds that gave the final answer.' },
  { name: 'capibara_thinking_tokens_total', type: 'counter', labels: [], help: 'Thinking tokens generated (thinking modes).' },
  // attention
  { name: 'capibara_attention_calls_total', type: 'counter', labels: [], help: 'DuoAttention processAttention calls.' },
  { name: 'capibara_attention_kv_attended_bytes_total', type: 'counter', labels: [], help: 'KV-cache bytes attended to.' },
  { name: 'capibara_attention_kv_saved_bytes_total', type: 'counter', labels: [], help: 'KV-cache bytes not read thanks to streaming heads.' },
  { name: 'capibara_attention_decode_seconds_total', type: 'counter', labels: ['expert'], help: 'Attention kernel time inside the LlamaDecoder generate calls of pipeline requests, by expert.' },
  { name: 'capibara_attention_kv_cache_bytes', type: 'gauge', labels: ['expert', 'heads'], help: "Bytes a LlamaDecoder expert's KV cache held after its last pipeline request: as split by its head pattern (heads=duo), and with every head full (heads=full)." },
  // generation
  { name: 'capibara_llm_generated_tokens_total', type: 'counter', labels: ['expert'], help: 'Tokens generated by the pipeline, by expert (thinking included).' },
  { name: 'capibara_llm_prompt_tokens_total', type: 'counter', labels: ['expert'], help: 'Prompt tokens of answered pipeline requests, by expert.' },
  { name: 'capibara_llm_generation_duration_seconds', type: 'histogram', labels: ['expert'], help: 'Time in the expert generate calls of a pipeline request, by expert.' },
  // pipeline
  { name: 'capibara_pipeline_requests_total', type: 'counter', labels: ['outcome'], help: 'Pipeline runs, by outcome (ok, refused, failed, aborted).' },
  { name: 'capibara_pipeline_stages_total', type: 'counter', labels: ['stage', 'status'], help: 'Pipeline stages, by stage and status (done, skipped, denied, failed).' },
  { name: 'capibara_pipeline_stage_duration_seconds', type: 'histogram', labels: ['stage'], help: 'Wall time of each pipeline stage that ran (generation: time in the generate calls).' },
  { name: 'capibara_pipeline_request_duration_seconds', type: 'histogram', labels: [], help: 'Wall time of answered pipeline runs.' },
  { name: 'capibara_pipeline_overhead_seconds', type: 'histogram', labels: [], help: 'What the stages added to answered runs: total − generation − waiting for a turn.' },
  // server
  { name: 'capibara_http_requests_total', type: 'counter', labels: ['route', 'method', 'status'], help: 'HTTP requests answered, by route, method and status.' },
  { name: 'capibara_http_request_duration_seconds', type: 'histogram', labels: ['route'], help: 'Wall time of HTTP requests, by route.' },
  { name: 'capibara_server_generations_running', type: 'gauge', labels: [], help: 'Generations running (the slot is held).' },
  { name: 'capibara_server_requests_waiting', type: 'gauge', labels: [], help: 'Requests waiting for the generation slot.' },
] as const satisfies ReadonlyArray<MetricInfo>;

/**
 * Every metric {@link CapibaraMetrics} registers: name, type, labels and what it counts.
 *
 * @example
 * ```ts
 * for (const m of METRICS) console.log(m.name, m.type, m.labels.join(','), m.help);
 * ```
 */
export const METRICS: readonly MetricInfo[] = LIST;

/**
 * One entry of {@link METRICS}.
 *
 * @example
 * ```ts
 * const m: MetricInfo = { name: 'capibara_memory_items', type: 'gauge', labels: [], help: 'Live memory items.' };
 * ```
 */
export interface MetricInfo {
  /** The Prometheus name. */
  readonly name: string;
  /** `counter`, `gauge` or `histogram`. */
  readonly type: 'counter' | 'gauge' | 'histogram';
  /** Its label names. */
  readonly labels: readonly string[];
  /** What it measures (the `# HELP` line). */
  readonly help: string;
}

/**
 * The shape of every name of {@link METRICS}: `capibara_<part>_<what>_<unit>`.
 *
 * @example
 * ```ts
 * const name: MetricName = 'capibara_pipeline_requests_total';
 * ```
 */
export type MetricName = `capibara_${string}`;

/** The names of {@link METRICS} exactly. @internal */
export type KnownMetric = (typeof LIST)[number]['name'];
