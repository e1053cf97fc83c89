/**
 * Builds small ONNX models in memory, so the attention backend, benchmarks and test fixtures
 * need no shipped or downloaded `.onnx` files: the bytes go straight to
 * `InferenceSession.create` or to a file.
 * @module
 */
import type { onnx as OnnxProto } from 'onnx-proto';

/**
 * Element types, by the names onnxruntime-node's `Tensor` uses.
 *
 * @example
 * ```ts
 * const t: OnnxElementType = 'float32';
 * ```
 */
export type OnnxElementType = 'float32' | 'float64' | 'float16' | 'int8' | 'uint8' | 'int32' | 'int64' | 'bool';

/**
 * A graph input or output: a number in `shape` is a fixed dimension, a string a symbolic one
 * (any length at run time, so one session serves every length).
 *
 * @example
 * ```ts
 * const logits: OnnxValueSpec = { name: 'logits', type: 'float32', shape: ['tokens', 64] };
 * ```
 */
export interface OnnxValueSpec {
  /** Tensor name. */
  name: string;
  /** Element type. */
  type: OnnxElementType;
  /** Dimensions: numbers are fixed, strings symbolic. */
  shape: (number | string)[];
}

/**
 * An attribute value. Integers become INT(S), other numbers FLOAT(S), strings STRING;
 * `{ float: 1 }` and `{ floats: [1, 2] }` force floats where a float attribute holds an integral value.
 *
 * @example
 * ```ts
 * const attrs: Record<string, OnnxAttributeValue> = { num_heads: 8, scale: { float: 1 }, axes: [0, 1] };
 * ```
 */
export type OnnxAttributeValue =
  | number
  | string
  | number[]
  | {
      /** A FLOAT attribute, even when integral. */
      float: number;
    }
  | {
      /** A FLOATS attribute, even when every value is integral. */
      floats: number[];
    };

/**
 * One node of the graph.
 *
 * @example
 * ```ts
 * const node: OnnxNodeSpec = { op: 'MultiHeadAttention', domain: 'com.microsoft', inputs: ['q', 'k', 'v'], outputs: ['o'], attrs: { num_heads: 8 } };
 * ```
 */
export interface OnnxNodeSpec {
  /** Operator type, such as `'Softmax'` or `'MultiHeadAttention'`. */
  op: string;
  /** Operator set domain: `''` (ai.onnx, the default) or `'com.microsoft'` for ONNX Runtime's contrib operators. */
  domain?: string;
  /** Input tensor names; `''` leaves an optional input out. */
  inputs: string[];
  /** Output tensor names; `''` leaves an optional output out. */
  outputs: string[];
  /** Attributes. */
  attrs?: Record<string, OnnxAttributeValue>;
  /** Node name; default `<op>_<index>`. */
  name?: string;
}

/**
 * A constant tensor of the graph, stored as raw little-endian bytes (every platform ONNX Runtime
 * ships for is little-endian).
 *
 * @example
 * ```ts
 * const k: OnnxInitializerSpec = { name: 'k', type: 'int64', dims: [1], data: BigInt64Array.of(2n) };
 * ```
 */
export interface OnnxInitializerSpec {
  /** Tensor name. */
  name: string;
  /** Element type; `data` must hold elements of that type. */
  type: OnnxElementType;
  /** Dimensions. */
  dims: number[];
  /** The elements, row-major. */
  data: ArrayBufferView;
}

/**
 * A model with one graph.
 *
 * @example
 * ```ts
 * const spec: OnnxModelSpec = {
 *   inputs: [{ name: 'x', type: 'float32', shape: ['n', 4] }],
 *   outputs: [{ name: 'y', type: 'float32', shape: ['n', 4] }],
 *   nodes: [{ op: 'Softmax', inputs: ['x'], outputs: ['y'], attrs: { axis: -1 } }],
 * };
 * ```
 */
export interface OnnxModelSpec {
  /** Graph inputs. */
  inputs: OnnxValueSpec[];
  /** Graph outputs. */
  outputs: OnnxValueSpec[];
  /** Nodes in topological order. */
  nodes: OnnxNodeSpec[];
  /** Constant tensors. */
  initializers?: OnnxInitializerSpec[];
  /** ai.onnx opset; default 13, the first where Softmax works on one axis only. */
  opset?: number;
  /** Versions of other operator set domains the nodes use; a domain not listed gets version 1. */
  domains?: Record<string, number>;
  /** Graph name; default `'graph'`. */
  name?: string;
  /** `producer_name` recorded in the model; default `'@capibara/core'`. */
  producer?: string;
}

type Proto = typeof OnnxProto;
let proto: Proto | undefined;
// Loaded on first use: importing the package stays cheap for callers that never build a graph.
function onnxProto(): Proto {
  proto ??= (require('onnx-proto') as { onnx: Proto }).onnx;
  return proto;
}

const ELEMENT_TYPES: readonly OnnxElementType[] = ['float32', 'float64', 'float16', 'int8', 'uint8', 'int32', 'int64', 'bool'];

function dataType(p: Proto, type: unknown): number {
  const { DataType } = p.TensorProto;
  switch (type) {
    case 'float32': return DataType.FLOAT;
    case 'float64': return DataType.DOUBLE;
    case 'float16': return DataType.FLOAT16;
    case 'int8': return DataType.INT8;
    case 'uint8': return DataType.UINT8;
    case 'int32': return DataType.INT32;
    case 'int64': return DataType.INT64;
    case 'bool': return DataType.BOOL;
    default:
      throw new TypeError(`Expected one of ${ELEMENT_TYPES.join(', ')} for type but received ${String(type)}`);
  }
}

function valueInfo(p: Proto, { name, type, shape }: OnnxValueSpec): OnnxProto.IValueInfoProto {
  const dim = shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType: dataType(p, type), shape: { dim } } } };
}

function attribute(p: Proto, name: string, value: OnnxAttributeValue): OnnxProto.IAttributeProto {
  const { AttributeType } = p.AttributeProto;
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: AttributeType.INT, i: value } : { name, type: AttributeType.FLOAT, f: value };
  }
  if (Array.isArray(value)) {
    return value.every(Number.isInteger) ? { name, type: AttributeType.INTS, ints: value } : { name, type: AttributeType.FLOATS, floats: value };
  }
  if (value && typeof (value as { float?: unknown }).float === 'number') return { name, type: AttributeType.FLOAT, f: (value as { float: number }).float };
  if (value && Array.isArray((value as { floats?: unknown }).floats)) return { name, type: AttributeType.FLOATS, floats: (value as { floats: number[] }).floats };
  throw new TypeError(`Unsupported value for attribute ${name}: ${String(value)}`);
}

function initializer(p: Proto, { name, type, dims, data }: OnnxInitializerSpec): OnnxProto.ITensorProto {
  return { name, dataType: dataType(p, type), dims, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/**
 * Encodes an ONNX model (IR version 8) with one graph. Nodes of other domains than ai.onnx
 * (`domain: 'com.microsoft'`) add that domain to the model's operator sets.
 *
 * @param spec Inputs, outputs, nodes, initializers and operator set versions.
 * @returns Model bytes for `InferenceSession.create` or a file.
 * @throws TypeError for an unknown element type or attribute value; Error when the model does
 * not verify against the ONNX schema.
 *
 * @example
 * ```ts
 * import * as ort from 'onnxruntime-node';
 * const bytes = buildModel({
 *   inputs: [{ name: 'x', type: 'float32', shape: ['n', 4] }],
 *   outputs: [{ name: 'y', type: 'float32', shape: ['n', 4] }],
 *   nodes: [{ op: 'Softmax', inputs: ['x'], outputs: ['y'], attrs: { axis: -1 } }],
 * });
 * const session = await ort.InferenceSession.create(bytes);
 * ```
 */
export function buildModel(spec: OnnxModelSpec): Uint8Array {
  const p = onnxProto();
  const { inputs, outputs, nodes, initializers = [], opset = 13, domains = {}, name = 'graph', producer = '@capibara/core' } = spec;
  const opsetImport: OnnxProto.IOperatorSetIdProto[] = [{ domain: '', version: opset }];
  for (const domain of new Set(nodes.map((n) => n.domain ?? '').filter((d) => d !== ''))) {
    opsetImport.push({ domain, version: domains[domain] ?? 1 });
  }
  const model: OnnxProto.IModelProto = {
    irVersion: 8,
    producerName: producer,
    opsetImport,
    graph: {
      name,
      input: inputs.map((i) => valueInfo(p, i)),
      output: outputs.map((o) => valueInfo(p, o)),
      initializer: initializers.map((i) => initializer(p, i)),
      node: nodes.map((n, i) => ({
        name: n.name ?? `${n.op}_${i}`,
        opType: n.op,
        domain: n.domain ?? '',
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attribute(p, k, v)),
      })),
    },
  };
  const err = p.ModelProto.verify(model);
  if (err) throw new Error(`invalid ONNX model: ${err}`);
  return p.ModelProto.encode(p.ModelProto.create(model)).finish();
}
