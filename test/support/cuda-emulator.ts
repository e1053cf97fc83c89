/**
 * A JavaScript stand-in for the addon's CUDA KV-cache entry points (kvOpen, kvStore, kvAttend,
 * kvBytes, close), written from what native/cuda/attention.cu specifies: each KV head's rows
 * (retrieval: row p = position p; streaming: sink rows, then ring row sink + (p - sink) % ring),
 * a store that skips positions a later one in the same call overwrites, and attention of query
 * t at position pos0 + t over the positions each head keeps (float64 here). It lets the
 * TypeScript side of DuoKVCache({ device: 'cuda' }) and the kernel's storage scheme be checked
 * against the CPU cache without a GPU; it says nothing about the CUDA code itself.
 */
import { fromFloat16, toFloat16 } from '../../src/attention/float16';
import type { CudaDeviceBinding, CudaHandle } from '../../src/cuda-binding';
import { bf16 } from './attention-reference';

interface Cache {
  kvHeads: number; dim: number; sink: number; ring: number; type: 0 | 1; closed: boolean;
  streaming: Uint8Array;
  /** [layer][head]: rows of k and v, each row `dim` numbers. */
  k: number[][][][];
  v: number[][][][];
}

const round = (type: 0 | 1, x: Float32Array | Uint16Array): Float32Array =>
  x instanceof Uint16Array ? fromFloat16(x) : type === 0 ? fromFloat16(toFloat16(x)) : Float32Array.from(x, bf16);

export function cudaEmulator(): Partial<CudaDeviceBinding> {
  const caches = new Map<CudaHandle, Cache>();
  const get = (h: CudaHandle) => {
    const c = caches.get(h);
    if (c === undefined || c.closed) throw new Error('DuoKVCache is closed');
    return c;
  };
  return {
    kvOpen(layers, kvHeads, headDim, sink, ring, _maxTokens, type, streaming) {
      const h = {} as CudaHandle;
      const rows = () => Array.from({ length: layers }, () => Array.from({ length: kvHeads }, () => [] as number[][]));
      caches.set(h, { kvHeads, dim: headDim, sink, ring, type, closed: false, streaming: streaming.slice(), k: rows(), v: rows() });
      return h;
    },
    kvStore(h, layer, pos0, n, k, v) {
      const c = get(h);
      const kf = round(c.type, k);
      const vf = round(c.type, v);
      for (let i = 0; i < n; i++) {
        const P = pos0 + i;
        for (let hd = 0; hd < c.kvHeads; hd++) {
          let row = P;
          if (c.streaming[layer * c.kvHeads + hd]) {
            if (P < c.sink) row = P;
            else if (P >= pos0 + n - c.ring) row = c.sink + ((P - c.sink) % c.ring);
            else continue;
          }
          const at = (i * c.kvHeads + hd) * c.dim;
          c.k[layer]![hd]![row] = Array.from(kf.subarray(at, at + c.dim));
          c.v[layer]![hd]![row] = Array.from(vf.subarray(at, at + c.dim));
        }
      }
    },
    kvAttend(h, layer, pos0, queries, queryHeads, q, scale, recent, out, lse) {
      const c = get(h);
      const G = queryHeads / c.kvHeads;
      const d = c.dim;
      for (let t = 0; t < queries; t++) {
        const P = pos0 + t;
        for (let hq = 0; hq < queryHeads; hq++) {
          const hd = Math.floor(hq / G);
          const streaming = c.streaming[layer * c.kvHeads + hd] === 1;
          const rows: number[] = [];
          if (!streaming) for (let p = 0; p <= P; p++) rows.push(p);
          else {
            for (let p = 0; p < Math.min(c.sink, P + 1); p++) rows.push(p);
            for (let p = Math.max(c.sink, P - recent + 1); p <= P; p++) rows.push(c.sink + ((p - c.sink) % c.ring));
          }
          const qo = (t * queryHeads + hq) * d;
          const s = rows.map((r) => {
            const kr = c.k[layer]![hd]![r]!;
            let dot = 0;
            for (let i = 0; i < d; i++) dot += Math.fround(q[qo + i]! * scale) * kr[i]!;
            return dot;
          });
          const m = Math.max(...s);
          const w = s.map((x) => Math.exp(x - m));
          const z = w.reduce((a, b) => a + b, 0);
          for (let i = 0; i < d; i++) out[qo + i] = rows.reduce((a, r, j) => a + w[j]! * c.v[layer]![hd]![r]![i]!, 0) / z;
          if (lse !== null) lse[t * queryHeads + hq] = m + Math.log(z);
        }
      }
    },
    kvBytes(h) {
      const c = get(h);
      return c.k.flat().reduce((a, rows) => a + rows.length * 2 * c.dim * 2, 0);
    },
    close(h) {
      const c = caches.get(h);
      if (c !== undefined) c.closed = true;
    },
  };
}
