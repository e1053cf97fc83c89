/**
 * The decoder's ONNX graphs, built at load time. Attention runs outside them (on the DuoKVCache),
 * so one token costs `layers + 1` ONNX Runtime runs:
 * - `first`: RMSNorm and the q/k/v projections of layer 0, RoPE on q and k;
 * - `middle` (one session for every layer boundary): layer i's output projection, residual,
 *   RMSNorm and SwiGLU MLP, then layer i + 1's norm, projections and RoPE;
 * - `last`: layer L−1's output projection and MLP, the final norm and `lm_head` on chosen rows.
 * Weights are graph inputs, fed from the arrays read out of the safetensors files (ONNX Runtime
 * reads inputs in place), so no weight is copied into a protobuf and one `middle` session serves
 * every layer. Activations are token-major: x `[n, hidden]`, q `[n, queryHeads × headDim]`, k and v
 * `[n, kvHeads × headDim]` — the layout DuoKVCache.attend takes.
 * @module
 */
import type { OnnxModelSpec, OnnxNodeSpec, OnnxInitializerSpec, OnnxValueSpec } from '../../onnx/graph';
import type { LlamaConfig } from './config';

/** Which graph. @internal */
export type GraphKind = 'first' | 'middle' | 'last';

/** Names of the weight inputs of the attention-input half (`pre.`) and the rest of a layer (`post.`). @internal */
export const PRE = { norm: 'pre.norm', q: 'pre.q', k: 'pre.k', v: 'pre.v', qBias: 'pre.q_bias', kBias: 'pre.k_bias', vBias: 'pre.v_bias' } as const;
/** @internal */
export const POST = {
  o: 'post.o', oBias: 'post.o_bias', norm: 'post.norm', gate: 'post.gate', up: 'post.up', down: 'post.down',
  gateBias: 'post.gate_bias', upBias: 'post.up_bias', downBias: 'post.down_bias',
} as const;
/** @internal */
export const HEAD = { norm: 'head.norm', lmHead: 'head.lm_head' } as const;

/** Builds one graph's spec. @internal */
export function decoderGraph(kind: GraphKind, c: LlamaConfig): OnnxModelSpec {
  const { hidden: H, intermediate: I, queryHeads: NH, kvHeads: KV, headDim: D, vocabSize: V } = c;
  const nodes: OnnxNodeSpec[] = [];
  const initializers: OnnxInitializerSpec[] = [];
  const inputs: OnnxValueSpec[] = [];
  const outputs: OnnxValueSpec[] = [];
  let count = 0;
  const node = (op: string, ins: string[], attrs?: OnnxNodeSpec['attrs'], out?: string): string => {
    const o = out ?? `${op}_${count++}`;
    nodes.push({ op, inputs: ins, outputs: [o], ...(attrs ? { attrs } : {}) });
    return o;
  };
  const input = (name: string, shape: (number | string)[], type: OnnxValueSpec['type'] = 'float32') => (inputs.push({ name, type, shape }), name);
  const output = (name: string, shape: (number | string)[]) => outputs.push({ name, type: 'float32', shape });
  const i64 = (name: string, data: number[]) => (initializers.push({ name, type: 'int64', dims: [data.length], data: BigInt64Array.from(data, BigInt) }), name);
  const eps = 'rms_norm_eps';
  initializers.push({ name: eps, type: 'float32', dims: [], data: Float32Array.of(c.rmsNormEps) });

  // nn.Linear: y = x Wᵀ + b, W [out, in] as Hugging Face stores it.
  const linear = (x: string, w: string, out: number, inp: number, bias: string | undefined, result?: string) => {
    input(w, [out, inp]);
    const ins = [x, w];
    if (bias !== undefined) ins.push(input(bias, [out]));
    return node('Gemm', ins, { transB: 1 }, result);
  };
  // The op sequence of the exported models (scripts/make-tiny-model.mjs), so both round alike.
  const rmsNorm = (x: string, w: string) => {
    input(w, [H]);
    const ms = node('ReduceMean', [node('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    const inv = node('Reciprocal', [node('Sqrt', [node('Add', [ms, eps])])]);
    return node('Mul', [node('Mul', [x, inv]), w]);
  };

  const x = input('x', ['n', H]);
  let h = x;
  if (kind !== 'first') {
    const attn = input('attn', ['n', NH * D]);
    h = node('Add', [x, linear(attn, POST.o, H, NH * D, c.oBias ? POST.oBias : undefined)]);
    const m = rmsNorm(h, POST.norm);
    const gate = linear(m, POST.gate, I, H, c.mlpBias ? POST.gateBias : undefined);
    const act = node('Mul', [node('Mul', [gate, node('Sigmoid', [gate])]), linear(m, POST.up, I, H, c.mlpBias ? POST.upBias : undefined)]);
    h = node('Add', [h, linear(act, POST.down, H, I, c.mlpBias ? POST.downBias : undefined)]);
  }
  if (kind === 'last') {
    const rows = input('rows', ['r'], 'int64');
    const picked = node('Gather', [h, rows], { axis: 0 });
    linear(rmsNorm(picked, HEAD.norm), HEAD.lmHead, V, H, undefined, 'logits');
    output('logits', ['r', V]);
  } else {
    if (kind === 'middle') {
      nodes.push({ op: 'Identity', inputs: [h], outputs: ['x_out'] });
      output('x_out', ['n', H]);
    }
    const cos = node('Unsqueeze', [input('cos', ['n', D]), i64('axis1', [1])]);
    const sin = node('Unsqueeze', [input('sin', ['n', D]), i64('axis1', [1])]);
    const normed = rmsNorm(h, PRE.norm);
    // Hugging Face's rotate_half RoPE on [n, heads, D]: x·cos + cat(−x₂, x₁)·sin.
    const rope = (flat: string, heads: number, out: string) => {
      const shaped = node('Reshape', [flat, i64(`shape_${heads}`, [0, heads, D])]);
      const halves = [`${out}_lo`, `${out}_hi`];
      nodes.push({ op: 'Split', inputs: [shaped], outputs: halves, attrs: { axis: -1 } });
      const rotated = node('Concat', [node('Neg', [halves[1]!]), halves[0]!], { axis: -1 });
      const y = node('Add', [node('Mul', [shaped, cos]), node('Mul', [rotated, sin])]);
      node('Reshape', [y, i64(`flat_${heads}`, [0, heads * D])], undefined, out);
    };
    rope(linear(normed, PRE.q, NH * D, H, c.qkvBias ? PRE.qBias : undefined), NH, 'q');
    rope(linear(normed, PRE.k, KV * D, H, c.qkvBias ? PRE.kBias : undefined), KV, 'k');
    linear(normed, PRE.v, KV * D, H, c.qkvBias ? PRE.vBias : undefined, 'v');
    output('q', ['n', NH * D]);
    output('k', ['n', KV * D]);
    output('v', ['n', KV * D]);
  }
  const unique = [...new Map(initializers.map((i) => [i.name, i])).values()];
  return { inputs, outputs, nodes, initializers: unique, opset: 17, name: `llama-${kind}`, producer: '@capibara/core LlamaDecoder' };
}
