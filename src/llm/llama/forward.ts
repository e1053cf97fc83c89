/**
 * One model pass of the decoder over a run of tokens: the embedding lookup in JS, the dense
 * parts in ONNX Runtime (graphs.ts, `layers + 1` runs), attention on a DuoKVCache in the addon
 * between them. RoPE is applied inside the graphs, before keys reach the cache.
 * @module
 */
import type * as Ort from 'onnxruntime-node';
import type { DuoKVCache } from '../../attention/index';
import { buildModel } from '../../onnx/graph';
import { createSession } from '../../onnx/session';
import type { LlamaConfig } from './config';
import { decoderGraph, EMBED_LIMIT } from './graphs';
import type { LlamaWeightType } from './types';
import { inverseFrequencies, ropeRows } from './rope';
import type { LlamaWeights } from './weights';

type Feeds = Record<string, Ort.Tensor>;
/** A session and the weights it takes as inputs (none unless its graph passed EMBED_LIMIT). */
type Stage = { session: Ort.InferenceSession; feeds: Feeds };

/**
 * Query × key pairs of a layer's step past which it attends on a worker thread (about a
 * millisecond of kernel work per KV head and up), so a long prefill chunk does not hold the event
 * loop; smaller steps — decode up to 1M cached tokens — attend inline, without the thread hop.
 */
const ASYNC_PAIRS = 1 << 20;

/** Where a pass's time went, added to by {@link Forward.run}. @internal */
export interface Timing {
  attentionMs: number;
  denseMs: number;
}

/** Receives a layer's attention inputs of a pass (q, k after RoPE). @internal */
export type Capture = (layer: number, q: Float32Array, k: Float32Array, v: Float32Array) => void;

/** The `layers + 1` sessions of graphs.ts: `stages[0]` is `first`, `stages[i]` joins layers i − 1 and i, the last one ends with `lm_head`. @internal */
export class Forward {
  readonly #ort: typeof Ort;
  readonly #c: LlamaConfig;
  readonly #embed: Float32Array;
  readonly #stages: Stage[];
  readonly #invFreq: Float32Array;
  readonly #threads: number;

  private constructor(ort: typeof Ort, c: LlamaConfig, embed: Float32Array, stages: Stage[], threads: number) {
    this.#ort = ort;
    this.#c = c;
    this.#embed = embed;
    this.#stages = stages;
    this.#threads = threads;
    this.#invFreq = inverseFrequencies(c.headDim, c.rope);
  }

  /**
   * Builds the graphs and their sessions (CPU, `threads` intra-op threads), one at a time so
   * only one graph's encoded bytes exist at once; the weights are ORT's afterwards, but the
   * embedding. `limit`: a graph's embedded float32 bytes (graphs.ts EMBED_LIMIT).
   */
  static async create(ort: typeof Ort, c: LlamaConfig, w: LlamaWeights, type: LlamaWeightType, threads: number, limit = EMBED_LIMIT): Promise<Forward> {
    const stages: Stage[] = [];
    try {
      for (let i = 0; i <= c.layers; i++) {
        const kind = i === 0 ? 'first' : i === c.layers ? 'last' : 'middle';
        const parts = { pre: w.layers[i], post: w.layers[i - 1], ...(kind === 'last' ? { head: { norm: w.norm, lmHead: w.lmHead } } : {}) };
        const graph = decoderGraph(kind, c, parts, type, limit);
        const what = kind === 'middle' ? `the graph of layers ${i - 1}–${i}` : `the ${kind} graph`;
        const { session } = await createSession(ort, buildModel(graph.spec), { providers: ['cpu'], threads, warningType: 'LlamaDecoderWarning', what });
        stages.push({ session, feeds: Object.fromEntries(graph.feeds.map((f) => [f.name, new ort.Tensor('float32', f.data, f.dims)])) });
      }
    } catch (err) {
      await Promise.all(stages.map((s) => s.session.release()));
      throw err;
    }
    return new Forward(ort, c, w.embed, stages, threads);
  }

  async release(): Promise<void> {
    await Promise.all(this.#stages.map((s) => s.session.release()));
  }

  /**
   * Runs `ids` (at positions `start …`) through every layer, attending on `cache` (which must
   * hold exactly `start` tokens and holds `start + ids.length` after), and returns the logits of
   * the chunk's rows `rows` (indices into the chunk), row-major `[rows.length, vocab]`.
   */
  async run(ids: readonly number[], start: number, cache: DuoKVCache, rows: readonly number[], timing: Timing, capture?: Capture): Promise<Float32Array> {
    const { Tensor } = this.#ort;
    const c = this.#c;
    const n = ids.length;
    const { hidden: H, headDim: D, queryHeads: NH } = c;
    let t0 = performance.now();
    const x = new Float32Array(n * H);
    for (let i = 0; i < n; i++) x.set(this.#embed.subarray(ids[i]! * H, (ids[i]! + 1) * H), i * H);
    const cos = new Float32Array((n * D) / 2);
    const sin = new Float32Array((n * D) / 2);
    ropeRows(this.#invFreq, start, n, cos, sin);
    const pos = new BigInt64Array(n);
    for (let i = 0; i < n; i++) pos[i] = BigInt(i);
    const rope: Feeds = { cos: new Tensor('float32', cos, [n, D / 2]), sin: new Tensor('float32', sin, [n, D / 2]), pos: new Tensor('int64', pos, [1, n]) };
    let xt: Ort.Tensor = new Tensor('float32', x, [n, H]);
    const stages = this.#stages;
    let out = await stages[0]!.session.run({ x: xt, ...rope, ...stages[0]!.feeds });
    let dense = performance.now() - t0;
    let attention = 0;
    const attend = { queryHeads: NH, threads: this.#threads };
    try {
      for (let l = 0; ; l++) {
        const q = out['q']!.data as Float32Array;
        const k = out['k']!.data as Float32Array;
        const v = out['v']!.data as Float32Array;
        capture?.(l, q, k, v);
        t0 = performance.now();
        const big = n * (start + n) >= ASYNC_PAIRS;
        const attn = new Tensor('float32', big ? await cache.attendAsync(l, q, k, v, attend) : cache.attend(l, q, k, v, attend), [n, NH * D]);
        const t1 = performance.now();
        attention += t1 - t0;
        if (l === c.layers - 1) {
          const r = new Tensor('int64', BigInt64Array.from(rows, BigInt), [rows.length]);
          out = await stages[l + 1]!.session.run({ x: xt, attn, rows: r, ...stages[l + 1]!.feeds });
          dense += performance.now() - t1;
          return out['logits']!.data as Float32Array;
        }
        out = await stages[l + 1]!.session.run({ x: xt, attn, ...rope, ...stages[l + 1]!.feeds });
        xt = out['x_out']!;
        dense += performance.now() - t1;
      }
    } finally {
      timing.attentionMs += attention;
      timing.denseMs += dense;
    }
  }
}
