/**
 * Reads attention captures saved as safetensors files (the format PyTorch users write with
 * `safetensors.torch.save_file`), through the decoder's safetensors reader, and writes them for
 * tests and examples.
 * @module
 * @internal
 */
import { open } from 'node:fs/promises';
import { readSafetensorsHeader, readSafetensorsTensor, type SafetensorsEntry } from '../llm/index';

/** A file's header: its tensors and metadata. */
export interface SafetensorsHeader {
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

/** Reads and checks the header of `path`. */
export async function readHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await open(path, 'r');
  try {
    const { entries, metadata } = await readSafetensorsHeader(fh, path);
    return { tensors: entries, metadata };
  } finally {
    await fh.close();
  }
}

/** Reads tensor `name` as float32 (F32, F16 and BF16 are converted). */
export async function readFloat32(path: string, header: SafetensorsHeader, name: string): Promise<{ data: Float32Array; shape: number[] }> {
  const t = header.tensors.get(name);
  if (t === undefined) throw new Error(`${path} has no tensor '${name}' (it has: ${[...header.tensors.keys()].join(', ') || 'none'})`);
  const fh = await open(path, 'r');
  try {
    return { data: await readSafetensorsTensor(fh, t, name), shape: t.shape };
  } finally {
    await fh.close();
  }
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
