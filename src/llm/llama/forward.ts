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
import { decoderGraph, HEAD, POST, PRE } from './graphs';
import { inverseFrequencies, ropeRows } from './rope';
import type { LayerWeights, LlamaWeights } from './weights';

type Feeds = Record<string, Ort.Tensor>;
type Sessions = { first: Ort.InferenceSession; middle: Ort.InferenceSession; last: Ort.InferenceSession };

/** Where a pass's time went, added to by {@link Forward.run}. @internal */
export interface Timing {
  attentionMs: number;
  denseMs: number;
}

/** Receives a layer's attention inputs of a pass (q, k after RoPE). @internal */
export type Capture = (layer: number, q: Float32Array, k: Float32Array, v: Float32Array) => void;

/** The three sessions and the weight feeds of every layer. @internal */
export class Forward {
  readonly #ort: typeof Ort;
  readonly #c: LlamaConfig;
  readonly #embed: Float32Array;
  readonly #sessions: Sessions;
  readonly #pre: Feeds[];
  readonly #post: Feeds[];
  readonly #head: Feeds;
  readonly #invFreq: Float32Array;
  readonly #threads: number;

  private constructor(ort: typeof Ort, c: LlamaConfig, w: LlamaWeights, sessions: Sessions, threads: number) {
    this.#ort = ort;
    this.#c = c;
    this.#embed = w.embed;
    this.#sessions = sessions;
    this.#threads = threads;
    const { Tensor } = ort;
    const { hidden: H, intermediate: I, queryHeads: NH, kvHeads: KV, headDim: D, vocabSize: V } = c;
    const t = (data: Float32Array, dims: number[]) => new Tensor('float32', data, dims);
    const pre = (l: LayerWeights): Feeds => {
      const f: Feeds = { [PRE.norm]: t(l.inputNorm, [H]), [PRE.q]: t(l.q, [NH * D, H]), [PRE.k]: t(l.k, [KV * D, H]), [PRE.v]: t(l.v, [KV * D, H]) };
      if (l.qBias) f[PRE.qBias] = t(l.qBias, [NH * D]);
      if (l.kBias) f[PRE.kBias] = t(l.kBias, [KV * D]);
      if (l.vBias) f[PRE.vBias] = t(l.vBias, [KV * D]);
      return f;
    };
    const post = (l: LayerWeights): Feeds => {
      const f: Feeds = {
        [POST.o]: t(l.o, [H, NH * D]), [POST.norm]: t(l.postNorm, [H]), [POST.gate]: t(l.gate, [I, H]), [POST.up]: t(l.up, [I, H]), [POST.down]: t(l.down, [H, I]),
      };
      if (l.oBias) f[POST.oBias] = t(l.oBias, [H]);
      if (l.gateBias) f[POST.gateBias] = t(l.gateBias, [I]);
      if (l.upBias) f[POST.upBias] = t(l.upBias, [I]);
      if (l.downBias) f[POST.downBias] = t(l.downBias, [H]);
      return f;
    };
    this.#pre = w.layers.map(pre);
    this.#post = w.layers.map(post);
    this.#head = { [HEAD.norm]: t(w.norm, [H]), [HEAD.lmHead]: t(w.lmHead, [V, H]) };
    this.#invFreq = inverseFrequencies(D, c.rope);
  }

  /** Builds the graphs and their sessions (CPU, `threads` intra-op threads). */
  static async create(ort: typeof Ort, c: LlamaConfig, w: LlamaWeights, threads: number): Promise<Forward> {
    const sessions: Partial<Sessions> = {};
    try {
      for (const kind of ['first', 'middle', 'last'] as const) {
        if (kind === 'middle' && c.layers === 1) continue;
        const bytes = buildModel(decoderGraph(kind, c));
        sessions[kind] = (await createSession(ort, bytes, { providers: ['cpu'], threads, warningType: 'LlamaDecoderWarning', what: `the ${kind} graph` })).session;
      }
    } catch (err) {
      await Promise.all(Object.values(sessions).map((s) => s.release()));
      throw err;
    }
    return new Forward(ort, c, w, sessions as Sessions, threads);
  }

  async release(): Promise<void> {
    await Promise.all(Object.values(this.#sessions).map((s) => s?.release()));
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
    const cos = new Float32Array(n * D);
    const sin = new Float32Array(n * D);
    ropeRows(this.#invFreq, start, n, cos, sin);
    const rope: Feeds = { cos: new Tensor('float32', cos, [n, D]), sin: new Tensor('float32', sin, [n, D]) };
    let xt: Ort.Tensor = new Tensor('float32', x, [n, H]);
    let out = await this.#sessions.first.run({ x: xt, ...rope, ...this.#pre[0] });
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
        const attn = new Tensor('float32', cache.attend(l, q, k, v, attend), [n, NH * D]);
        const t1 = performance.now();
        attention += t1 - t0;
        if (l === c.layers - 1) {
          const r = new Tensor('int64', BigInt64Array.from(rows, BigInt), [rows.length]);
          out = await this.#sessions.last.run({ x: xt, attn, rows: r, ...this.#post[l], ...this.#head });
          dense += performance.now() - t1;
          return out['logits']!.data as Float32Array;
        }
        out = await this.#sessions.middle.run({ x: xt, attn, ...rope, ...this.#post[l], ...this.#pre[l + 1] });
        xt = out['x_out']!;
        dense += performance.now() - t1;
      }
    } finally {
      timing.attentionMs += attention;
      timing.denseMs += dense;
    }
  }
}
