// Builds small ONNX models in memory, so benchmarks and test fixtures need no shipped or
// downloaded .onnx files. Bytes go straight to InferenceSession.create or to a file.
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;

// Element types by the names onnxruntime-node's Tensor uses.
const DTYPES = {
  float32: DataType.FLOAT,
  float64: DataType.DOUBLE,
  float16: DataType.FLOAT16,
  int8: DataType.INT8,
  uint8: DataType.UINT8,
  int32: DataType.INT32,
  int64: DataType.INT64,
  bool: DataType.BOOL,
};

function dtype(name) {
  const t = DTYPES[name];
  if (t === undefined) throw new TypeError(`Expected one of ${Object.keys(DTYPES).join(', ')} for type but received ${name}`);
  return t;
}

// { name, type: 'float32', shape: [4096, 'tokens'] }: a number is a fixed dim, a string a symbolic one.
function valueInfo({ name, type, shape }) {
  const dim = shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType: dtype(type), shape: { dim } } } };
}

// Integers become INT(S), other numbers FLOAT(S); `{ float: 1 }` / `{ floats: [1, 2] }` force floats
// where a float attribute happens to hold an integral value.
function attribute(name, value) {
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: AttributeType.INT, i: value } : { name, type: AttributeType.FLOAT, f: value };
  }
  if (Array.isArray(value)) {
    return value.every(Number.isInteger)
      ? { name, type: AttributeType.INTS, ints: value }
      : { name, type: AttributeType.FLOATS, floats: value };
  }
  if (value && typeof value.float === 'number') return { name, type: AttributeType.FLOAT, f: value.float };
  if (value && Array.isArray(value.floats)) return { name, type: AttributeType.FLOATS, floats: value.floats };
  throw new TypeError(`Unsupported value for attribute ${name}: ${String(value)}`);
}

// { name, type: 'int64', dims: [1], data: BigInt64Array | Float32Array | ... }, stored as raw
// little-endian bytes (every platform ORT ships for is little-endian).
function initializer({ name, type, dims, data }) {
  const rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return { name, dataType: dtype(type), dims, rawData };
}

/**
 * Encodes an ai.onnx model (IR version 8) with one graph.
 * @param {object} spec
 * @param {{ name: string, type: string, shape: (number|string)[] }[]} spec.inputs
 * @param {{ name: string, type: string, shape: (number|string)[] }[]} spec.outputs
 * @param {{ op: string, inputs: string[], outputs: string[], attrs?: object, name?: string }[]} spec.nodes
 * @param {{ name: string, type: string, dims: number[], data: ArrayBufferView }[]} [spec.initializers]
 * @param {number} [spec.opset] ai.onnx opset; 13 is the first where Softmax works on one axis only.
 * @param {string} [spec.name] graph name
 * @param {string} [spec.producer] producer_name recorded in the model
 * @returns {Uint8Array} model bytes for `InferenceSession.create`
 */
export function buildModel({ inputs, outputs, nodes, initializers = [], opset = 13, name = 'bench', producer = '@capibara/core bench' }) {
  const model = {
    irVersion: 8,
    producerName: producer,
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name,
      input: inputs.map(valueInfo),
      output: outputs.map(valueInfo),
      initializer: initializers.map(initializer),
      node: nodes.map((n, i) => ({
        name: n.name ?? `${n.op}_${i}`,
        opType: n.op,
        domain: '',
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attribute(k, v)),
      })),
    },
  };
  const err = onnx.ModelProto.verify(model);
  if (err) throw new Error(`invalid ONNX model: ${err}`);
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
