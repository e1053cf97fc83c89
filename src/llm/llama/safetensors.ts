/**
 * Reads the weights of a Hugging Face model folder: `model.safetensors`, or the shards listed in
 * `model.safetensors.index.json` (`weight_map`: tensor → file). Only the headers are parsed up
 * front; each tensor is read from its file straight into the array the decoder keeps (float32
 * in place, float16 and bfloat16 widened to float32), so the files are never held whole in memory.
 * Format (../shared/ANCHORS.md): 8-byte little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__": {…} }`, then the data.
 * @module
 */
import { existsSync } from 'node:fs';
import { type FileHandle, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fromFloat16 } from '../../attention/index';

/** Where one tensor lies. @internal */
export interface TensorEntry {
  /** The file holding it. */
  file: string;
  /** `F32`, `F16`, `BF16` (others are refused when read). */
  dtype: string;
  shape: number[];
  /** Absolute byte offset of its data in the file. */
  offset: number;
  /** Bytes of data. */
  bytes: number;
}

const WIDTH: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
const MAX_HEADER = 100 * 1024 * 1024;
const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * The tensors of a model folder, by name, with open file handles to read them.
 * @internal
 */
export class SafetensorsFolder {
  readonly #entries: Map<string, TensorEntry>;
  readonly #handles: Map<string, FileHandle>;
  /** How messages name the weights: `model.safetensors` or the index file. */
  readonly source: string;

  private constructor(source: string, entries: Map<string, TensorEntry>, handles: Map<string, FileHandle>) {
    this.source = source;
    this.#entries = entries;
    this.#handles = handles;
  }

  /** Opens `dir`'s weights (the index when there is one, else `model.safetensors`) and reads every header. */
  static async open(dir: string): Promise<SafetensorsFolder> {
    const indexPath = join(dir, INDEX);
    let files: string[];
    let weightMap: Record<string, string> | undefined;
    let source: string;
    if (existsSync(indexPath)) {
      source = indexPath;
      let json: unknown;
      try {
        json = JSON.parse(await readFile(indexPath, 'utf8'));
      } catch (err) {
        throw new Error(`${indexPath} is not valid JSON: ${(err as Error).message}`, { cause: err });
      }
      const map = (json as { weight_map?: unknown } | null)?.weight_map;
      if (map === null || typeof map !== 'object' || Array.isArray(map) || Object.values(map).some((f) => typeof f !== 'string' || f.includes('/'))) {
        throw new Error(`${indexPath}: expected weight_map, an object of tensor name → shard file name`);
      }
      weightMap = map as Record<string, string>;
      files = [...new Set(Object.values(weightMap))].map((f) => join(dir, f));
    } else if (existsSync(join(dir, SINGLE))) {
      source = join(dir, SINGLE);
      files = [source];
    } else {
      throw new Error(`${dir}: no weights: expected ${SINGLE} or ${INDEX} (a sharded model)`);
    }
    const entries = new Map<string, TensorEntry>();
    const handles = new Map<string, FileHandle>();
    try {
      for (const file of files) {
        let fh: FileHandle;
        try {
          fh = await open(file, 'r');
        } catch (err) {
          throw new Error(`${source}: cannot open ${file}: ${(err as Error).message}`, { cause: err });
        }
        handles.set(file, fh);
        for (const [name, e] of (await readHeader(fh, file)).entries) {
          if (weightMap !== undefined && join(dir, weightMap[name] ?? '') !== file) continue; // the index decides where a tensor lives
          entries.set(name, e);
        }
      }
      if (weightMap !== undefined) {
        for (const [name, f] of Object.entries(weightMap)) {
          if (!entries.has(name)) throw new Error(`${source}: tensor '${name}' is mapped to ${f}, which does not hold it`);
        }
      }
    } catch (err) {
      await Promise.all([...handles.values()].map((h) => h.close()));
      throw err;
    }
    return new SafetensorsFolder(source, entries, handles);
  }

  /** Whether the weights hold tensor `name`. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** Tensor names. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /**
   * Reads tensor `name`, which must have shape `shape`, as float32.
   * @throws Error naming the file, the tensor and the expected shape: missing, another shape, another type.
   */
  async read(name: string, shape: readonly number[]): Promise<Float32Array> {
    const e = this.#entries.get(name);
    if (e === undefined) throw new Error(`${this.source}: missing tensor '${name}' (expected shape ${shapeText(shape)})`);
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${e.file}: tensor '${name}' has shape ${shapeText(e.shape)}, expected ${shapeText(shape)}`);
    }
    return readTensor(this.#handles.get(e.file)!, e, name);
  }

  /** Closes the files. */
  async close(): Promise<void> {
    await Promise.all([...this.#handles.values()].map((h) => h.close()));
    this.#handles.clear();
  }
}

async function readExactly(fh: FileHandle, into: Uint8Array, position: number, file: string, name: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new Error(`${file}: tensor '${name}' ends past the end of the file`);
    done += bytesRead;
  }
}

/**
 * Parses and checks the header of the safetensors file open as `fh`: each tensor's place, and
 * the `__metadata__` strings.
 * @throws Error naming `file` when it is not a safetensors file or an entry is malformed.
 * @internal
 */
export async function readHeader(fh: FileHandle, file: string): Promise<{ entries: Map<string, TensorEntry>; metadata: Record<string, string> }> {
  const size = (await fh.stat()).size;
  const head = new Uint8Array(8);
  if ((await fh.read(head, 0, 8, 0)).bytesRead !== 8) throw new Error(`${file} is not a safetensors file: shorter than 8 bytes`);
  const n = Number(Buffer.from(head).readBigUInt64LE(0));
  if (n > MAX_HEADER || 8 + n > size) throw new Error(`${file} is not a safetensors file: a header of ${n} bytes in a file of ${size}`);
  const json = Buffer.alloc(n);
  await fh.read(json, 0, n, 8);
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file} is not a safetensors file: its header is not JSON (${(err as Error).message})`, { cause: err });
  }
  const entries = new Map<string, TensorEntry>();
  for (const [name, t] of Object.entries(parsed)) {
    if (name === '__metadata__') continue;
    const info = t as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const [b, e] = Array.isArray(info.data_offsets) ? (info.data_offsets as number[]) : [];
    const shapeOk = Array.isArray(info.shape) && info.shape.every((d) => Number.isInteger(d) && d >= 0);
    if (typeof info.dtype !== 'string' || !shapeOk || !Number.isInteger(b) || !Number.isInteger(e) || b! > e! || 8 + n + e! > size) {
      throw new Error(`${file}: tensor '${name}' has a malformed entry in the header`);
    }
    entries.set(name, { file, dtype: info.dtype, shape: info.shape as number[], offset: 8 + n + b!, bytes: e! - b! });
  }
  const metadata = parsed['__metadata__'];
  return { entries, metadata: metadata !== null && typeof metadata === 'object' ? (metadata as Record<string, string>) : {} };
}

/**
 * Reads tensor `name` at `e` from `fh` as float32 (F32 in place, F16 and BF16 widened).
 * @throws Error naming the file and the tensor: another type, a size its shape does not need, a short file.
 * @internal
 */
export async function readTensor(fh: FileHandle, e: TensorEntry, name: string): Promise<Float32Array> {
  const width = WIDTH[e.dtype];
  if (width === undefined) throw new Error(`${e.file}: tensor '${name}' is ${e.dtype}; F32, F16 and BF16 tensors are supported`);
  const count = e.shape.reduce((a, b) => a * b, 1);
  if (e.bytes !== count * width) {
    throw new Error(`${e.file}: tensor '${name}' holds ${e.bytes} bytes, not the ${count * width} its shape ${shapeText(e.shape)} of ${e.dtype} needs`);
  }
  const out = new Float32Array(count);
  if (e.dtype === 'F32') {
    await readExactly(fh, new Uint8Array(out.buffer), e.offset, e.file, name);
    return out;
  }
  const half = new Uint16Array(count);
  await readExactly(fh, new Uint8Array(half.buffer), e.offset, e.file, name);
  if (e.dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = half[i]! << 16;
    return out;
  }
  return fromFloat16(half, out);
}

