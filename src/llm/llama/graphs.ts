/**
 * The decoder's ONNX graphs, built at load time. Attention runs outside them (on the DuoKVCache),
 * so one token costs `layers + 1` ONNX Runtime runs, each of its own session:
 * - `first`: RMSNorm and the q/k/v projections of layer 0, RoPE on q and k;
 * - `middle`, one per layer boundary: layer i's output projection, residual, RMSNorm and SwiGLU
 *   MLP, then layer i + 1's norm, projections and RoPE;
 * - `last`: layer L−1's output projection and MLP, the final norm and `lm_head` on chosen rows.
 * Weights are embedded as initializers (float32, or quantised for MatMulNBits), so ONNX Runtime
 * pre-packs them once at load; past {@link EMBED_LIMIT} bytes a graph takes the rest of its
 * float32 weights as inputs. Activations are token-major: x `[n, hidden]`, q
 * `[n, queryHeads × headDim]`, k and v `[n, kvHeads × headDim]` — the layout DuoKVCache.attend takes.
 * @module
 */
import type { OnnxModelSpec, OnnxNodeSpec, OnnxInitializerSpec, OnnxValueSpec } from '../../onnx/graph';
import type { LlamaConfig } from './config';
import type { LlamaWeightType } from './types';
import { QUANT_BLOCK, quantizeBlocks } from './quantize';
import type { LayerWeights } from './weights';

/** Which graph. @internal */
export type GraphKind = 'first' | 'middle' | 'last';

/** The weights one graph carries: layer i's attention input (`pre`), layer j's rest (`post`), the head. @internal */
export interface GraphWeights {
  pre?: LayerWeights;
  post?: LayerWeights;
  head?: { norm: Float32Array; lmHead: Float32Array };
}

/** A graph and the float32 weights left out of it as inputs, fed on every run. @internal */
export interface DecoderGraph {
  spec: OnnxModelSpec;
  feeds: { name: string; data: Float32Array; dims: number[] }[];
}

/**
 * Float32 weight bytes a graph embeds before it takes the rest as inputs: ONNX Runtime parses a
 * model of at most 2 GB, and an `lm_head` of 128K × 4096 float32 alone passes that. Embedded
 * weights let ORT pre-pack them once (measured 1.5–2.7× faster Gemm at one token than weights
 * fed as inputs); inputs are read in place on every run.
 * @internal
 */
export const EMBED_LIMIT = 1 << 30;

/** Builds one graph: `first` carries `pre` of layer 0, `middle` `post` of layer i and `pre` of i + 1, `last` `post` and the head. @internal */
export function decoderGraph(kind: GraphKind, c: LlamaConfig, w: GraphWeights, type: LlamaWeightType, limit = EMBED_LIMIT): DecoderGraph {
  const { hidden: H, intermediate: I, queryHeads: NH, kvHeads: KV, headDim: D, vocabSize: V } = c;
  const nodes: OnnxNodeSpec[] = [];
  const initializers: OnnxInitializerSpec[] = [];
  const inputs: OnnxValueSpec[] = [];
  const outputs: OnnxValueSpec[] = [];
  const feeds: DecoderGraph['feeds'] = [];
  let embedded = 0;
  let count = 0;
  const node = (op: string, ins: string[], attrs?: OnnxNodeSpec['attrs'], out?: string, domain?: string): string => {
    const o = out ?? `${op}_${count++}`;
    nodes.push({ op, inputs: ins, outputs: [o], ...(attrs ? { attrs } : {}), ...(domain ? { domain } : {}) });
    return o;
  };
  const input = (name: string, shape: (number | string)[], type: OnnxValueSpec['type'] = 'float32') => (inputs.push({ name, type, shape }), name);
  const output = (name: string, shape: (number | string)[]) => outputs.push({ name, type: 'float32', shape });
  const i64 = (name: string, data: number[]) => (initializers.push({ name, type: 'int64', dims: [data.length], data: BigInt64Array.from(data, BigInt) }), name);
  const param = (name: string, data: Float32Array, dims: number[]): string => {
    if (embedded + data.byteLength > limit) {
      feeds.push({ name, data, dims });
      return input(name, dims);
    }
    embedded += data.byteLength;
    initializers.push({ name, type: 'float32', dims, data });
    return name;
  };

  // nn.Linear: y = x Wᵀ + b, W [out, in] as Hugging Face stores it (MatMulNBits' [N, K] too).
  const linear = (x: string, name: string, weight: Float32Array, out: number, inp: number, bias: Float32Array | undefined, result?: string, head = false) => {
    const b = bias === undefined ? undefined : param(`${name}_bias`, bias, [out]);
    if (type === 'float32') {
      const ins = [x, param(name, weight, [out, inp])];
      if (b !== undefined) ins.push(b);
      return node('Gemm', ins, { transB: 1 }, result);
    }
    const bits = type === 'int8' || head ? 8 : 4;
    const q = quantizeBlocks(weight, out, inp, bits);
    initializers.push(
      { name: `${name}_q`, type: 'uint8', dims: [out, q.blocksPerRow, (QUANT_BLOCK * bits) / 8], data: q.data },
      { name: `${name}_scales`, type: 'float32', dims: [out * q.blocksPerRow], data: q.scales },
    );
    const attrs = { K: inp, N: out, bits, block_size: QUANT_BLOCK, accuracy_level: 4 };
    const y = node('MatMulNBits', [x, `${name}_q`, `${name}_scales`], attrs, b === undefined ? result : undefined, 'com.microsoft');
    return b === undefined ? y : node('Add', [y, b], undefined, result);
  };
  // Several linears of one input as one (their weights stacked by rows: one pass over x, one node),
  // then split back; quantisation is per row, so stacking changes no value.
  const stacked = (x: string, name: string, parts: { weight: Float32Array; rows: number; bias?: Float32Array | undefined }[], inp: number) => {
    const rows = parts.reduce((a, p) => a + p.rows, 0);
    const weight = new Float32Array(rows * inp);
    const bias = parts.some((p) => p.bias) ? new Float32Array(rows) : undefined;
    let at = 0;
    for (const p of parts) {
      weight.set(p.weight, at * inp);
      if (p.bias) bias!.set(p.bias, at);
      at += p.rows;
    }
    const outs = parts.map((_, i) => `${name}_${i}`);
    nodes.push({ op: 'Split', inputs: [linear(x, name, weight, rows, inp, bias), i64(`${name}_split`, parts.map((p) => p.rows))], outputs: outs, attrs: { axis: -1 } });
    return outs;
  };
  // RMSNorm as one fused node (ONNX Runtime's SimplifiedLayerNormalization: x / sqrt(mean(x²) + ε) · w).
  const rmsNorm = (x: string, name: string, weight: Float32Array) =>
    node('SimplifiedLayerNormalization', [x, param(name, weight, [H])], { axis: -1, epsilon: { float: c.rmsNormEps } });

  const x = input('x', ['n', H]);
  let h = x;
  if (kind !== 'first') {
    const l = w.post!;
    const attn = input('attn', ['n', NH * D]);
    h = node('Add', [x, linear(attn, 'post.o', l.o, H, NH * D, l.oBias)]);
    const m = rmsNorm(h, 'post.norm', l.postNorm);
    const [gate, up] = stacked(m, 'post.gate_up', [{ weight: l.gate, rows: I, bias: l.gateBias }, { weight: l.up, rows: I, bias: l.upBias }], H);
    const act = node('Mul', [node('Mul', [gate!, node('Sigmoid', [gate!])]), up!]);
    h = node('Add', [h, linear(act, 'post.down', l.down, H, I, l.downBias)]);
  }
  if (kind === 'last') {
    const rows = input('rows', ['r'], 'int64');
    const picked = node('Gather', [h, rows], { axis: 0 });
    linear(rmsNorm(picked, 'head.norm', w.head!.norm), 'head.lm_head', w.head!.lmHead, V, H, undefined, 'logits', true);
    output('logits', ['r', V]);
  } else {
    const l = w.pre!;
    if (kind === 'middle') {
      nodes.push({ op: 'Identity', inputs: [h], outputs: ['x_out'] });
      output('x_out', ['n', H]);
    }
    const normed = rmsNorm(h, 'pre.norm', l.inputNorm);
    // Hugging Face's rotate_half RoPE (x·cos + cat(−x₂, x₁)·sin) as com.microsoft RotaryEmbedding on
    // [1, n, heads × D]: `pos` [1, n] picks row t of the chunk's `cos` / `sin` [n, D / 2] for token t.
    for (const name of ['cos', 'sin']) input(name, ['n', D / 2]);
    input('pos', [1, 'n'], 'int64');
    const axis0 = i64('axis0', [0]);
    const rope = (flat: string, heads: number, out: string) => {
      const y = node('RotaryEmbedding', [node('Unsqueeze', [flat, axis0]), 'pos', 'cos', 'sin'], { interleaved: 0, num_heads: heads }, undefined, 'com.microsoft');
      node('Squeeze', [y, axis0], undefined, out);
    };
    const [q, k, v] = stacked(normed, 'pre.qkv', [{ weight: l.q, rows: NH * D, bias: l.qBias }, { weight: l.k, rows: KV * D, bias: l.kBias }, { weight: l.v, rows: KV * D, bias: l.vBias }], H);
    rope(q!, NH, 'q');
    rope(k!, KV, 'k');
    nodes.push({ op: 'Identity', inputs: [v!], outputs: ['v'] });
    output('q', ['n', NH * D]);
    output('k', ['n', KV * D]);
    output('v', ['n', KV * D]);
  }
  const unique = [...new Map(initializers.map((i) => [i.name, i])).values()];
  return { spec: { inputs, outputs, nodes, initializers: unique, opset: 17, name: `llama-${kind}`, producer: '@capibara/core LlamaDecoder' }, feeds };
}
