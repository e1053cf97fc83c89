/**
 * The attention graphs of the ONNX Runtime backend, one per signature. Sequence lengths are
 * symbolic, so one session serves every length.
 * @module
 */
import { buildModel, type OnnxInitializerSpec, type OnnxNodeSpec, type OnnxValueSpec } from '../onnx/graph';

/**
 * `mha`: com.microsoft.MultiHeadAttention over `query [1, rows, heads * headDim]` (a query group
 * folded into rows), `key`/`value [1, keys, kvHeadsIn * headDim]` and, with `bias`, an additive
 * `bias [1, 1, rows, keys]` shared by the heads.
 * `gqa`: com.microsoft.GroupQueryAttention over `query [1, new, heads * group * headDim]`, the new
 * tokens' `key`/`value [1, new, kvHeadsIn * headDim]` and the earlier ones, `past_key`/`past_value
 * [1, past, kvHeadsIn * headDim]` (transposed to the BNSH layout GQA wants inside the graph), with
 * `seqlens_k` and `total_sequence_length`; causal, bottom-right aligned.
 * Either gathers KV heads `gather` out of `kvHeadsIn` first (null: all of them).
 * `precision: 'float16'` (gqa only) runs GroupQueryAttention in float16, as ONNX Runtime's CUDA
 * kernel of it requires (it takes float16 or bfloat16 only): the graph keeps float32 inputs and
 * output and casts them around the operator, so a caller feeds the same tensors either way.
 */
export interface GraphSignature {
  kind: 'mha' | 'gqa';
  kvHeadsIn: number;
  gather: number[] | null;
  headDim: number;
  /** Query heads per KV head: the GQA group (1 for `mha`, where the group is folded into rows). */
  group: number;
  scale: number;
  bias: boolean;
  /** Element type GroupQueryAttention computes in; default `'float32'` (see above). */
  precision?: 'float32' | 'float16';
}

/** ONNX TensorProto.DataType of float16, Cast's `to`. */
const ONNX_FLOAT16 = 10;
/** ONNX TensorProto.DataType of float32. */
const ONNX_FLOAT = 1;

const f32 = (name: string, shape: (number | string)[]): OnnxValueSpec => ({ name, type: 'float32', shape });
const i64 = (name: string, values: number[]): OnnxInitializerSpec => ({
  name, type: 'int64', dims: [values.length], data: BigInt64Array.from(values, (x) => BigInt(x)),
});

/** Model bytes for `sig`. */
export function attentionModel(sig: GraphSignature): Uint8Array {
  const { kvHeadsIn, gather, headDim: d } = sig;
  const heads = gather?.length ?? kvHeadsIn;
  const nodes: OnnxNodeSpec[] = [];
  const initializers: OnnxInitializerSpec[] = [];
  if (gather) initializers.push(i64('split_shape', [0, 0, kvHeadsIn, d]), i64('heads', gather), i64('joined_shape', [0, 0, heads * d]));
  // [1, L, kvHeadsIn * d] → [1, L, heads, d] with only the group's heads (a Gather copies just those).
  const pick = (x: string): string => {
    if (!gather) return x;
    nodes.push({ op: 'Reshape', inputs: [x, 'split_shape'], outputs: [`${x}_split`] });
    nodes.push({ op: 'Gather', inputs: [`${x}_split`, 'heads'], outputs: [`${x}_heads`], attrs: { axis: 2 } });
    return `${x}_heads`;
  };
  const joined = (x: string): string => {
    if (!gather) return x;
    const g = pick(x);
    nodes.push({ op: 'Reshape', inputs: [g, 'joined_shape'], outputs: [`${x}_joined`] });
    return `${x}_joined`;
  };
  const scale = { float: sig.scale };
  const inputs: OnnxValueSpec[] = [];
  if (sig.kind === 'mha') {
    inputs.push(f32('query', [1, 'rows', heads * d]), f32('key', [1, 'keys', kvHeadsIn * d]), f32('value', [1, 'keys', kvHeadsIn * d]));
    if (sig.bias) inputs.push(f32('bias', [1, 1, 'rows', 'keys']));
    nodes.push({
      op: 'MultiHeadAttention', domain: 'com.microsoft',
      inputs: ['query', joined('key'), joined('value'), ...(sig.bias ? ['', '', 'bias'] : [])],
      outputs: ['output'],
      attrs: { num_heads: heads, scale },
    });
    return buildModel({ inputs, outputs: [f32('output', [1, 'rows', heads * d])], nodes, initializers, name: 'duo_mha', producer: '@capibara/core attention' });
  }
  const qWidth = heads * sig.group * d;
  inputs.push(
    f32('query', [1, 'new', qWidth]), f32('key', [1, 'new', kvHeadsIn * d]), f32('value', [1, 'new', kvHeadsIn * d]),
    f32('past_key', [1, 'past', kvHeadsIn * d]), f32('past_value', [1, 'past', kvHeadsIn * d]),
    { name: 'seqlens_k', type: 'int32', shape: [1] }, { name: 'total_sequence_length', type: 'int32', shape: [] },
  );
  if (!gather) initializers.push(i64('split_shape', [0, 0, kvHeadsIn, d]));
  const bnsh = (x: string): string => {
    const g = gather ? pick(x) : x;
    if (!gather) nodes.push({ op: 'Reshape', inputs: [x, 'split_shape'], outputs: [`${x}_split`] });
    nodes.push({ op: 'Transpose', inputs: [gather ? g : `${x}_split`], outputs: [`${x}_bnsh`], attrs: { perm: [0, 2, 1, 3] } });
    return `${x}_bnsh`;
  };
  const half = sig.precision === 'float16';
  const cast = (x: string, to: number, suffix: string): string => {
    if (!half) return x;
    nodes.push({ op: 'Cast', inputs: [x], outputs: [`${x}_${suffix}`], attrs: { to } });
    return `${x}_${suffix}`;
  };
  const gqaInputs = [cast('query', ONNX_FLOAT16, 'f16'), joined('key'), joined('value'), bnsh('past_key'), bnsh('past_value')];
  nodes.push({
    op: 'GroupQueryAttention', domain: 'com.microsoft',
    inputs: [...gqaInputs.map((x, i) => (i === 0 ? x : cast(x, ONNX_FLOAT16, 'f16'))), 'seqlens_k', 'total_sequence_length'],
    // present_* are required outputs of the operator; left out of the graph's outputs, they never reach JS.
    outputs: [half ? 'output_f16' : 'output', 'present_key', 'present_value'],
    attrs: { num_heads: heads * sig.group, kv_num_heads: heads, scale },
  });
  if (half) nodes.push({ op: 'Cast', inputs: ['output_f16'], outputs: ['output'], attrs: { to: ONNX_FLOAT } });
  return buildModel({ inputs, outputs: [f32('output', [1, 'new', qWidth])], nodes, initializers, name: half ? 'duo_gqa_f16' : 'duo_gqa', producer: '@capibara/core attention' });
}
