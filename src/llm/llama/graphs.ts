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
  const eps = 'rms_norm_eps';
  initializers.push({ name: eps, type: 'float32', dims: [], data: Float32Array.of(c.rmsNormEps) });

  // nn.Linear: y = x Wᵀ + b, W [out, in] as Hugging Face stores it (MatMulNBits' [N, K] too).
  const linear = (x: string, name: string, weight: Float32Array, out: number, inp: number, bias: Float32Array | undefined, result?: string, head = false) => {
    const b = bias === undefined ? undefined : param(`${name}_bias`, bias, [out]);
    if (type === 'float32') return node('Gemm', b === undefined ? [x, param(name, weight, [out, inp])] : [x, param(name, weight, [out, inp]), b], { transB: 1 }, result);
    const bits = type === 'int8' || head ? 8 : 4;
    const q = quantizeBlocks(weight, out, inp, bits);
    initializers.push(
      { name: `${name}_q`, type: 'uint8', dims: [out, q.blocksPerRow, (QUANT_BLOCK * bits) / 8], data: q.data },
      { name: `${name}_scales`, type: 'float32', dims: [out * q.blocksPerRow], data: q.scales },
    );
    const attrs = { K: inp, N: out, bits, block_size: QUANT_BLOCK, accuracy_level: 4 };
    if (b === undefined) return node('MatMulNBits', [x, `${name}_q`, `${name}_scales`], attrs, result, 'com.microsoft');
    return node('Add', [node('MatMulNBits', [x, `${name}_q`, `${name}_scales`], attrs, undefined, 'com.microsoft'), b], undefined, result);
  };
  // The op sequence of the exported models (scripts/make-tiny-model.mjs), so both round alike.
  const rmsNorm = (x: string, name: string, weight: Float32Array) => {
    const ms = node('ReduceMean', [node('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    const inv = node('Reciprocal', [node('Sqrt', [node('Add', [ms, eps])])]);
    return node('Mul', [node('Mul', [x, inv]), param(name, weight, [H])]);
  };

  const x = input('x', ['n', H]);
  let h = x;
  if (kind !== 'first') {
    const l = w.post!;
    const attn = input('attn', ['n', NH * D]);
    h = node('Add', [x, linear(attn, 'post.o', l.o, H, NH * D, l.oBias)]);
    const m = rmsNorm(h, 'post.norm', l.postNorm);
    const gate = linear(m, 'post.gate', l.gate, I, H, l.gateBias);
    const act = node('Mul', [node('Mul', [gate, node('Sigmoid', [gate])]), linear(m, 'post.up', l.up, I, H, l.upBias)]);
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
    const cos = node('Unsqueeze', [input('cos', ['n', D]), i64('axis1', [1])]);
    const sin = node('Unsqueeze', [input('sin', ['n', D]), i64('axis1', [1])]);
    const normed = rmsNorm(h, 'pre.norm', l.inputNorm);
    // Hugging Face's rotate_half RoPE on [n, heads, D]: x·cos + cat(−x₂, x₁)·sin.
    const rope = (flat: string, heads: number, out: string) => {
      const shaped = node('Reshape', [flat, i64(`shape_${heads}`, [0, heads, D])]);
      const halves = [`${out}_lo`, `${out}_hi`];
      nodes.push({ op: 'Split', inputs: [shaped], outputs: halves, attrs: { axis: -1 } });
      const rotated = node('Concat', [node('Neg', [halves[1]!]), halves[0]!], { axis: -1 });
      const y = node('Add', [node('Mul', [shaped, cos]), node('Mul', [rotated, sin])]);
      node('Reshape', [y, i64(`flat_${heads}`, [0, heads * D])], undefined, out);
    };
    rope(linear(normed, 'pre.q', l.q, NH * D, H, l.qBias), NH, 'q');
    rope(linear(normed, 'pre.k', l.k, KV * D, H, l.kBias), KV, 'k');
    linear(normed, 'pre.v', l.v, KV * D, H, l.vBias, 'v');
    output('q', ['n', NH * D]);
    output('k', ['n', KV * D]);
    output('v', ['n', KV * D]);
  }
  const unique = [...new Map(initializers.map((i) => [i.name, i])).values()];
  const domains = type === 'float32' ? {} : { domains: { 'com.microsoft': 1 } };
  return { spec: { inputs, outputs, nodes, initializers: unique, opset: 17, name: `llama-${kind}`, producer: '@capibara/core LlamaDecoder', ...domains }, feeds };
}
