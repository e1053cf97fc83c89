/**
 * The expert graph of request-level routing: weighted directed edges saying how well an expert
 * serves as a fallback for (or hand-off from) another, learned from outcomes.
 * @module
 */

import * as v from '../../validate';

/** Learned weights stay inside [MIN_WEIGHT, MAX_WEIGHT], so one streak never makes an edge unrecoverable. */
const MIN_WEIGHT = 0.01;
const MAX_WEIGHT = 0.99;
const OPTION_KEYS = ['learningRate', 'defaultWeight', 'onRewire'] as const;

/**
 * A {@link ExpertGraph.rewire} update that changed the order of `from`'s fallbacks.
 *
 * @example
 * ```ts
 * const onRewire = (e: RewireEvent) => console.log(`${e.from}→${e.to}: ${e.before.toFixed(2)} → ${e.after.toFixed(2)}`);
 * ```
 */
export interface RewireEvent {
  /** The expert that failed over. */
  from: string;
  /** The fallback that was tried. */
  to: string;
  /** Edge weight before the update. */
  before: number;
  /** Edge weight after the update. */
  after: number;
  /** Whether the fallback succeeded. */
  success: boolean;
}

/**
 * What {@link ExpertGraph.rewire} did.
 *
 * @example
 * ```ts
 * const r: RewireResult = graph.rewire('gpt', 'claude', true);
 * if (r.reordered) console.log('new fallback order', graph.fallbacks('gpt'));
 * ```
 */
export interface RewireResult extends RewireEvent {
  /** Whether the update changed the order of `from`'s fallbacks (and so counted as a rewiring event). */
  reordered: boolean;
}

/**
 * Options of {@link ExpertGraph}.
 *
 * @example
 * ```ts
 * const opts: ExpertGraphOptions = { learningRate: 0.1, onRewire: (e) => metrics.rewired.inc() };
 * ```
 */
export interface ExpertGraphOptions {
  /** Step of the moving average in {@link ExpertGraph.rewire}, in (0, 1]; default 0.2. */
  learningRate?: number;
  /** Weight of an edge never set nor learned, in [0, 1]; default 0.5. */
  defaultWeight?: number;
  /** Called when a rewire update changes the order of `from`'s fallbacks. */
  onRewire?: (event: RewireEvent) => void;
}

/**
 * Serialised state of an {@link ExpertGraph} (JSON-safe), from {@link ExpertGraph.toJSON}.
 *
 * @example
 * ```ts
 * const json: ExpertGraphJSON = { version: 1, nodes: ['a', 'b'], edges: [['a', 'b', 0.7]], rewiringEvents: 3 };
 * ```
 */
export interface ExpertGraphJSON {
  /** Layout version, 1. */
  version: 1;
  /** Node ids in insertion order. */
  nodes: string[];
  /** Edges set or learned, as `[from, to, weight]`; every other pair has the default weight. */
  edges: Array<[string, string, number]>;
  /** {@link ExpertGraph.rewiringEvents} at the time of saving. */
  rewiringEvents: number;
}

/**
 * Weighted directed edges between experts: `weight(from, to)` in [0, 1] is the affinity of `to`
 * as a fallback for (or hand-off target from) `from`. Every ordered pair of distinct nodes has an
 * edge: `defaultWeight` until set with {@link ExpertGraph.setWeight} or learned with
 * {@link ExpertGraph.rewire}.
 *
 * Learning: after a fallback from `from` to `to`, `rewire` moves the weight by an exponential
 * moving average toward 1 (success) or 0 (failure),
 * `w ← clamp(w + learningRate × (target − w), 0.01, 0.99)`. Each update is bounded by
 * `learningRate` and weights stay in [0.01, 0.99], so a streak of failures demotes an edge
 * without ever making it unrecoverable.
 *
 * @example
 * ```ts
 * const graph = new ExpertGraph({ onRewire: (e) => console.log('rewired', e) });
 * for (const id of ['gpt', 'claude', 'llama']) graph.addNode(id);
 * graph.rewire('gpt', 'llama', true);   // llama saved a failed gpt call
 * graph.fallbacks('gpt');               // ['llama', 'claude']
 * ```
 */
export class ExpertGraph {
  /** Step of the moving average. */
  readonly learningRate: number;
  /** Weight of edges never set nor learned. */
  readonly defaultWeight: number;
  readonly #onRewire: ((event: RewireEvent) => void) | undefined;
  readonly #nodes = new Set<string>();
  /** Explicit edges only: from → (to → weight). */
  readonly #edges = new Map<string, Map<string, number>>();
  #rewiringEvents = 0;

  /**
   * @param options - Learning rate, default weight and event callback; see {@link ExpertGraphOptions}.
   * @example
   * ```ts
   * const graph = new ExpertGraph({ learningRate: 0.2, defaultWeight: 0.5 });
   * ```
   */
  constructor(options?: ExpertGraphOptions) {
    const o = v.options<ExpertGraphOptions>('options', options, OPTION_KEYS);
    this.learningRate = o.learningRate === undefined ? 0.2 : learningRate(o.learningRate);
    this.defaultWeight = o.defaultWeight === undefined ? 0.5 : v.unitInterval('options.defaultWeight', o.defaultWeight);
    this.#onRewire = v.optionalFunction('options.onRewire', o.onRewire);
  }

  /**
   * How many {@link ExpertGraph.rewire} calls changed the order of their `from`'s fallbacks
   * (over all other nodes, as {@link ExpertGraph.fallbacks} without candidates returns it) —
   * exactly the calls that emitted `onRewire`. Updates that move a weight without reordering,
   * and `setWeight` / `addNode` / `removeNode`, do not count. Restored by `fromJSON`.
   *
   * @example
   * ```ts
   * metrics.set('rewiring_events', graph.rewiringEvents);
   * ```
   */
  get rewiringEvents(): number {
    return this.#rewiringEvents;
  }

  /**
   * Adds an expert; its edges to and from every other node start at `defaultWeight`.
   *
   * @param id - Expert id, non-empty.
   * @returns False when it was already there (nothing changes).
   * @example
   * ```ts
   * graph.addNode('sql');
   * ```
   */
  addNode(id: string): boolean {
    v.nonEmptyString('id', id);
    if (this.#nodes.has(id)) return false;
    this.#nodes.add(id);
    return true;
  }

  /**
   * Removes an expert and every edge to or from it.
   *
   * @param id - Expert id.
   * @returns Whether it was there.
   * @example
   * ```ts
   * graph.removeNode('retired-model');
   * ```
   */
  removeNode(id: string): boolean {
    v.nonEmptyString('id', id);
    if (!this.#nodes.delete(id)) return false;
    this.#edges.delete(id);
    for (const out of this.#edges.values()) out.delete(id);
    return true;
  }

  /**
   * Whether the expert is a node.
   *
   * @param id - Expert id.
   * @returns True when present.
   * @example
   * ```ts
   * if (!graph.has('sql')) graph.addNode('sql');
   * ```
   */
  has(id: string): boolean {
    return this.#nodes.has(v.nonEmptyString('id', id));
  }

  /**
   * The node ids, in insertion order.
   *
   * @returns A new array.
   * @example
   * ```ts
   * for (const id of graph.nodes()) console.log(id, graph.fallbacks(id));
   * ```
   */
  nodes(): string[] {
    return [...this.#nodes];
  }

  /**
   * Weight of the edge `from → to`: set, learned, or `defaultWeight`.
   *
   * @param from - A node.
   * @param to - Another node.
   * @returns The weight, in [0, 1].
   * @example
   * ```ts
   * graph.weight('gpt', 'claude'); // 0.5 until set or learned
   * ```
   */
  weight(from: string, to: string): number {
    this.#pair(from, to);
    return this.#weight(from, to);
  }

  /**
   * Sets the weight of the edge `from → to` (a prior, or an operator's override).
   *
   * @param from - A node.
   * @param to - Another node.
   * @param weight - In [0, 1]; `rewire` brings values outside [0.01, 0.99] inside on its next update.
   * @example
   * ```ts
   * graph.setWeight('sql', 'postgres-dba', 0.9);
   * ```
   */
  setWeight(from: string, to: string, weight: number): void {
    this.#pair(from, to);
    this.#set(from, to, v.unitInterval('weight', weight));
  }

  /**
   * The other nodes as fallbacks of `from`: by weight descending, ties by id (code-unit order).
   *
   * @param from - A node.
   * @param candidates - Restrict to these nodes (e.g. the experts available now); `from` itself
   *   and duplicates are skipped. Default: every other node.
   * @returns Node ids, best fallback first.
   * @example
   * ```ts
   * const next = graph.fallbacks('gpt', experts.filter((id) => health.isAvailable(id)))[0];
   * ```
   */
  fallbacks(from: string, candidates?: readonly string[]): string[] {
    this.#node('from', from);
    let ids: string[];
    if (candidates === undefined) {
      ids = [...this.#nodes].filter((id) => id !== from);
    } else {
      if (!Array.isArray(candidates)) throw v.typeError('candidates', 'Array of node ids', candidates);
      const seen = new Set<string>();
      candidates.forEach((c, i) => {
        this.#node(`candidates[${i}]`, c);
        if (c !== from) seen.add(c);
      });
      ids = [...seen];
    }
    const w = new Map(ids.map((id) => [id, this.#weight(from, id)]));
    return ids.sort((a, b) => w.get(b)! - w.get(a)! || (a < b ? -1 : a > b ? 1 : 0));
  }

  /**
   * Learns from a fallback `from → to`: moves the edge weight toward 1 on success, toward 0 on
   * failure, by `learningRate` of the distance, clamped to [0.01, 0.99]. When that changes the
   * order of `from`'s fallbacks, counts one {@link ExpertGraph.rewiringEvents} and calls `onRewire`.
   *
   * @param from - The expert that failed over.
   * @param to - The fallback tried.
   * @param success - Whether the fallback served the request.
   * @returns The update and whether it reordered.
   * @example
   * ```ts
   * const r = graph.rewire('gpt', 'claude', false);
   * r.after < r.before; // true
   * ```
   */
  rewire(from: string, to: string, success: boolean): RewireResult {
    this.#pair(from, to);
    v.boolean('success', success);
    const before = this.#weight(from, to);
    const target = success ? 1 : 0;
    const after = Math.min(MAX_WEIGHT, Math.max(MIN_WEIGHT, before + this.learningRate * (target - before)));
    // Only `to` moves, so the order changes exactly when `to`'s rank among the others changes.
    const rankBefore = this.#rank(from, to, before);
    this.#set(from, to, after);
    const reordered = this.#rank(from, to, after) !== rankBefore;
    const event: RewireEvent = { from, to, before, after, success };
    if (reordered) {
      this.#rewiringEvents += 1;
      this.#onRewire?.(event);
    }
    return { ...event, reordered };
  }

  /**
   * The graph as JSON-safe data (options are not included: pass them to {@link ExpertGraph.fromJSON}).
   *
   * @returns Serialisable state.
   * @example
   * ```ts
   * await saveState('routing.json', { graph: graph.toJSON() });
   * ```
   */
  toJSON(): ExpertGraphJSON {
    const edges: Array<[string, string, number]> = [];
    for (const [from, out] of this.#edges) for (const [to, w] of out) edges.push([from, to, w]);
    return { version: 1, nodes: [...this.#nodes], edges, rewiringEvents: this.#rewiringEvents };
  }

  /**
   * Rebuilds a graph from {@link ExpertGraph.toJSON} output.
   *
   * @param json - Saved state (validated; a bad field throws naming it).
   * @param options - Options of the new graph.
   * @returns The restored graph.
   * @example
   * ```ts
   * const graph = ExpertGraph.fromJSON(saved.graph, { onRewire });
   * ```
   */
  static fromJSON(json: unknown, options?: ExpertGraphOptions): ExpertGraph {
    const g = new ExpertGraph(options);
    g.load(json);
    return g;
  }

  /**
   * Replaces this graph's nodes, edges and counter with saved state, keeping its options (for
   * an owner that built the graph with its own callback). All or nothing: a bad field throws,
   * naming it, before anything changes.
   *
   * @param json - {@link ExpertGraph.toJSON} output.
   * @example
   * ```ts
   * graph.load(saved.graph);
   * ```
   */
  load(json: unknown): void {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw v.typeError('json', 'ExpertGraphJSON object', json);
    const j = json as Partial<ExpertGraphJSON>;
    if (j.version !== 1) throw v.rangeError('json.version', '1', j.version);
    if (!Array.isArray(j.nodes)) throw v.typeError('json.nodes', 'Array', j.nodes);
    const nodes = new Set<string>();
    j.nodes.forEach((id: unknown, i) => {
      v.nonEmptyString(`json.nodes[${i}]`, id);
      if (nodes.has(id as string)) throw v.rangeError(`json.nodes[${i}]`, 'unique id', id);
      nodes.add(id as string);
    });
    if (!Array.isArray(j.edges)) throw v.typeError('json.edges', 'Array', j.edges);
    const edges: Array<[string, string, number]> = j.edges.map((e: unknown, i) => {
      const name = `json.edges[${i}]`;
      if (!Array.isArray(e) || e.length !== 3) throw v.typeError(name, '[from, to, weight]', e);
      for (const k of [0, 1]) {
        v.nonEmptyString(`${name}[${k}]`, e[k]);
        if (!nodes.has(e[k] as string)) throw v.rangeError(`${name}[${k}]`, 'a node of json.nodes', e[k]);
      }
      if (e[0] === e[1]) throw v.rangeError(`${name}[1]`, `node other than ${name}[0]`, e[1]);
      return [e[0] as string, e[1] as string, v.unitInterval(`${name}[2]`, e[2])];
    });
    const rewiringEvents = v.integer('json.rewiringEvents', j.rewiringEvents, 0);
    this.#nodes.clear();
    for (const id of nodes) this.#nodes.add(id);
    this.#edges.clear();
    for (const [from, to, w] of edges) this.#set(from, to, w);
    this.#rewiringEvents = rewiringEvents;
  }

  /** Number of other nodes ordered before `to` among `from`'s fallbacks if its weight were `w`. */
  #rank(from: string, to: string, w: number): number {
    let rank = 0;
    for (const id of this.#nodes) {
      if (id === from || id === to) continue;
      const x = this.#weight(from, id);
      if (x > w || (x === w && id < to)) rank += 1;
    }
    return rank;
  }

  #weight(from: string, to: string): number {
    return this.#edges.get(from)?.get(to) ?? this.defaultWeight;
  }

  #set(from: string, to: string, w: number): void {
    let out = this.#edges.get(from);
    if (out === undefined) this.#edges.set(from, (out = new Map()));
    out.set(to, w);
  }

  #node(name: string, id: unknown): string {
    v.nonEmptyString(name, id);
    if (!this.#nodes.has(id as string)) throw v.rangeError(name, 'a node of the graph', id);
    return id as string;
  }

  #pair(from: string, to: string): void {
    this.#node('from', from);
    this.#node('to', to);
    if (from === to) throw v.rangeError('to', 'node other than from', to);
  }
}


function learningRate(value: unknown): number {
  const name = 'options.learningRate';
  if (typeof value !== 'number') throw v.typeError(name, 'number in (0, 1]', value);
  if (!(value > 0 && value <= 1)) throw v.rangeError(name, 'number in (0, 1]', value);
  return value;
}
