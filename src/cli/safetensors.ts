/**
 * Reads attention captures saved as safetensors files (8-byte little-endian header length, a
 * JSON header of `{ name: { dtype, shape, data_offsets } , __metadata__ }`, then the data): the
 * format PyTorch users write with `safetensors.torch.save_file`.
 * @module
 * @internal
 */
import { open } from 'node:fs/promises';

/** One tensor's entry in the header. */
export interface TensorInfo {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A file's header: its tensors and metadata. */
export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Where the data starts in the file. */
  dataStart: number;
}

const MAX_HEADER = 100 * 1024 * 1024;

/** Reads and checks the header of `path`. */
export async function readHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(8);
    if ((await fh.read(head, 0, 8, 0)).bytesRead !== 8) throw new Error(`${path} is not a safetensors file: shorter than 8 bytes`);
    const n = Number(head.readBigUInt64LE(0));
    if (n > MAX_HEADER || 8 + n > size) throw new Error(`${path} is not a safetensors file: a header of ${n} bytes in a file of ${size}`);
    const json = Buffer.alloc(n);
    await fh.read(json, 0, n, 8);
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${path} is not a safetensors file: its header is not JSON (${(err as Error).message})`);
    }
    const tensors = new Map<string, TensorInfo>();
    for (const [name, t] of Object.entries(parsed)) {
      if (name === '__metadata__') continue;
      const info = t as Partial<TensorInfo>;
      const [b, e] = info.data_offsets ?? [];
      if (typeof info.dtype !== 'string' || !Array.isArray(info.shape) || !Number.isInteger(b) || !Number.isInteger(e) || b! > e! || 8 + n + e! > size) {
        throw new Error(`${path}: tensor '${name}' has a malformed entry in the header`);
      }
      tensors.set(name, { dtype: info.dtype, shape: info.shape as number[], data_offsets: [b!, e!] });
    }
    return { tensors, metadata: (parsed['__metadata__'] as Record<string, string> | undefined) ?? {}, dataStart: 8 + n };
  } finally {
    await fh.close();
  }
}

const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/** Reads tensor `name` as float32 (F32, F16 and BF16 are converted). */
export async function readFloat32(path: string, header: SafetensorsHeader, name: string): Promise<{ data: Float32Array; shape: number[] }> {
  const t = header.tensors.get(name);
  if (t === undefined) throw new Error(`${path} has no tensor '${name}' (it has: ${[...header.tensors.keys()].join(', ') || 'none'})`);
  const width = BYTES[t.dtype];
  if (width === undefined) throw new Error(`${path}: tensor '${name}' is ${t.dtype}; F32, F16 and BF16 are read`);
  const count = t.shape.reduce((a, b) => a * b, 1);
  const [b, e] = t.data_offsets;
  if (e - b !== count * width) throw new Error(`${path}: tensor '${name}' holds ${e - b} bytes, not the ${count * width} its shape [${t.shape.join(', ')}] of ${t.dtype} needs`);
  const bytes = Buffer.alloc(e - b);
  const fh = await open(path, 'r');
  try {
    await fh.read(bytes, 0, e - b, header.dataStart + b);
  } finally {
    await fh.close();
  }
  const out = new Float32Array(count);
  if (t.dtype === 'F32') for (let i = 0; i < count; i++) out[i] = bytes.readFloatLE(4 * i);
  else if (t.dtype === 'BF16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) u[i] = bytes.readUInt16LE(2 * i) << 16;
  } else for (let i = 0; i < count; i++) out[i] = half(bytes.readUInt16LE(2 * i));
  return { data: out, shape: t.shape };
}

function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f === 0 ? s * Infinity : NaN;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Writes tensors as a safetensors file's bytes (F32), for tests and examples. */
export function encodeSafetensors(tensors: Record<string, { data: Float32Array; shape: number[] }>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json), ...Object.values(tensors).map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]);
}
