/**
 * DuoKVCache's storage types (float32, float16, bf16, int8) against a float64 reference over the
 * values each type holds: chunked prefill and decode, GQA ratios 1-8, head dims 64-256, a ring
 * that wraps, rollback, the async path; and the output error of the compact types against float32
 * on random and on model-like data (what the TSDoc and README report).
 */
import { describe, expect, it } from 'vitest';
import { fromFloat16, toFloat16 } from '../src/attention/float16';
import { HeadPattern } from '../src/attention/head-pattern';
import { DuoKVCache } from '../src/attention/kv-cache';
import type { KvCacheStorage } from '../src/attention/kv-format';
import { bf16, int8Cache, maxAbsDiff, referenceAttention, relativeError } from './support/attention-reference';
import { normal, rng } from './support/random';

const SINK = 4;
const RECENT = 32;
const ROLLBACK = 8;
const STREAMING = [false, true]; // head 0 retrieval, head 1 streaming

interface Shape {
  group: number;
  dim: number;
}

function inputs(n: number, s: Shape, seed: number, kvHeads = 2) {
  const r = rng(seed);
  return { q: normal(r, n * kvHeads * s.group * s.dim), k: normal(r, n * kvHeads * s.dim), v: normal(r, n * kvHeads * s.dim) };
}

/** The values a cache of `storage` attends over for a step at `pos0` (rows [0, end) of k/v). */
function held(storage: KvCacheStorage, k: Float32Array, v: Float32Array, dim: number, pos0: number, end: number) {
  const kk = k.subarray(0, end * 2 * dim);
  const vv = v.subarray(0, end * 2 * dim);
  switch (storage) {
    case 'float32':
      return { k: kk, v: vv };
    case 'float16':
      return { k: fromFloat16(toFloat16(kk)), v: fromFloat16(toFloat16(vv)) };
    case 'bf16':
      return { k: kk.map(bf16), v: vv.map(bf16) };
    case 'int8':
      return int8Cache(kk, vv, 2, dim, pos0, STREAMING);
  }
}

/** Largest |out − ref| a storage type may show, for values of unit scale. */
const TOLERANCE: Record<KvCacheStorage, number> = {
  float32: 1e-4,
  float16: 1e-4,
  // The kernel rounds the query and the softmax weights to bfloat16 (what vdpbf16ps computes).
  bf16: 2e-2,
  // The kernel quantises the query × key steps to 15 bits and the weights × value steps to 16 bits.
  int8: 2e-3,
};

function cache(storage: KvCacheStorage, s: Shape, maxTokens = 400) {
  return new DuoKVCache({
    layers: 1, kvHeads: 2, headDim: s.dim, headPattern: HeadPattern.fromMask([STREAMING.map((x) => !x)]), sink: SINK, recent: RECENT,
    maxTokens, maxRollback: ROLLBACK, storage,
  });
}

/** Feeds tokens [from, from + Σ chunks) in chunks; each step's output against the reference over what the cache holds. */
function checkFeed(c: DuoKVCache, x: ReturnType<typeof inputs>, s: Shape, from: number, chunks: number[], tol: number) {
  const qh = 2 * s.group;
  let t = from;
  for (const n of chunks) {
    const sl = (a: Float32Array, w: number) => a.subarray(t * w, (t + n) * w);
    const out = c.attend(0, sl(x.q, qh * s.dim), sl(x.k, 2 * s.dim), sl(x.v, 2 * s.dim), { queryHeads: qh });
    const h = held(c.storage, x.k, x.v, s.dim, t, t + n);
    const ref = referenceAttention(sl(x.q, qh * s.dim), h.k, h.v, {
      queryHeads: qh, kvHeads: 2, headDim: s.dim, queryOffset: t, sink: SINK, recent: RECENT, streaming: STREAMING,
    });
    expect(maxAbsDiff(out, ref.output), `${c.storage} group ${s.group} dim ${s.dim} step at ${t}`).toBeLessThan(tol);
    t += n;
  }
}

const STORAGES: KvCacheStorage[] = ['float32', 'float16', 'bf16', 'int8'];
const SHAPES: Shape[] = [
  ...[64, 80, 96, 128, 256].map((dim) => ({ group: 4, dim })),
  ...[1, 2, 3, 8].flatMap((group) => [64, 128].map((dim) => ({ group, dim }))),
];
// Chunks that end inside blocks and across them, then decode steps; 140 tokens wrap the ring (4 + 32 + 8).
const CHUNKS = [70, 1, 1, 50, 3, 1, 14];

describe('DuoKVCache storage types vs a float64 reference over what they hold', () => {
  for (const storage of STORAGES) {
    for (const s of SHAPES) {
      it(`${storage}, group ${s.group}, head dim ${s.dim}: chunked prefill and decode`, () => {
        const x = inputs(140, s, s.dim * 10 + s.group);
        checkFeed(cache(storage, s), x, s, 0, CHUNKS, TOLERANCE[storage]);
      });
    }
  }

  for (const storage of STORAGES) {
    it(`${storage}: rollback within the ring (and within int8's float32 rows) continues as if the rolled-back tokens never came`, () => {
      const s = { group: 2, dim: 64 };
      const a = inputs(200, s, 7);
      const b = inputs(200, s, 8);
      const c = cache(storage, s);
      checkFeed(c, a, s, 0, [130, 6], TOLERANCE[storage]);
      c.truncate(130);
      // The same first 130 tokens, then b's.
      const mix = (x: Float32Array, y: Float32Array, w: number) => Float32Array.from([...x.subarray(0, 130 * w), ...y.subarray(130 * w, 160 * w)]);
      const m = { q: mix(a.q, b.q, 4 * 64), k: mix(a.k, b.k, 2 * 64), v: mix(a.v, b.v, 2 * 64) };
      checkFeed(c, m, s, 130, [1, 1, 28], TOLERANCE[storage]);
    });
  }

  it('bf16: every token is seen at the precision it is stored in, so one-shot, chunked and token-by-token prefill agree (within bfloat16 arithmetic)', () => {
    const s = { group: 4, dim: 64 };
    const x = inputs(100, s, 3);
    const run = (chunks: number[]) => {
      const c = cache('bf16', s);
      const outs: number[] = [];
      let t = 0;
      for (const n of chunks) {
        const sl = (a: Float32Array, w: number) => a.subarray(t * w, (t + n) * w);
        outs.push(...c.attend(0, sl(x.q, 8 * 64), sl(x.k, 2 * 64), sl(x.v, 2 * 64), { queryHeads: 8 }));
        t += n;
      }
      return Float32Array.from(outs);
    };
    const whole = run([100]);
    // A step's own keys go through the dense path (float32 query and weights), stored ones through
    // the bfloat16 blocks (bfloat16 query and weights): the same values, arithmetic apart.
    expect(maxAbsDiff(run([37, 1, 62]), whole)).toBeLessThan(TOLERANCE.bf16);
    expect(maxAbsDiff(run(Array<number>(100).fill(1)), whole)).toBeLessThan(TOLERANCE.bf16);
  });

  it('int8: a rollback past the float32 rows dequantises the block it lands in; the block is quantised again when it fills', () => {
    const s = { group: 2, dim: 64 };
    const x = inputs(300, s, 11);
    const c = new DuoKVCache({ layers: 1, kvHeads: 2, headDim: 64, headPattern: HeadPattern.allRetrieval(1, 2), sink: 0, recent: 1, maxTokens: 400, maxRollback: 0, storage: 'int8' });
    c.append(0, x.k.subarray(0, 260 * 128), x.v.subarray(0, 260 * 128));
    c.truncate(70);
    // Positions 64..69 now hold block 1's dequantised values; against the float32 values they
    // are within the int8 error, and further tokens attend as usual.
    const q = x.q.subarray(70 * 4 * 64, 71 * 4 * 64);
    const out = c.attend(0, q, x.k.subarray(70 * 128, 71 * 128), x.v.subarray(70 * 128, 71 * 128), { queryHeads: 4 });
    const h = int8Cache(x.k.subarray(0, 71 * 128), x.v.subarray(0, 71 * 128), 2, 64, 70, [false, false]);
    const ref = referenceAttention(q, h.k, h.v, { queryHeads: 4, kvHeads: 2, headDim: 64, queryOffset: 70 });
    // Block 1 (64..69) is the dequantised block in the cache but float32 in the reference: int8 error.
    expect(relativeError(out, ref.output)).toBeLessThan(2e-2);
    expect(c.length()).toBe(71);
  });

  for (const storage of STORAGES) {
    it(`${storage}: attendAsync equals attend`, async () => {
      const s = { group: 4, dim: 80 };
      const x = inputs(150, s, 5);
      const a = cache(storage, s);
      const b = cache(storage, s);
      const qh = 8;
      let t = 0;
      for (const n of [90, 1, 59]) {
        const sl = (arr: Float32Array, w: number) => arr.subarray(t * w, (t + n) * w);
        const sync = a.attend(0, sl(x.q, qh * 80), sl(x.k, 160), sl(x.v, 160), { queryHeads: qh });
        const async_ = await b.attendAsync(0, sl(x.q, qh * 80), sl(x.k, 160), sl(x.v, 160), { queryHeads: qh, threads: 2 });
        expect(maxAbsDiff(async_, sync)).toBeLessThan(1e-5);
        t += n;
      }
    });
  }
});

describe('compact storage accuracy (one decode step over 4,096 positions, 128 dims, against a float32 cache)', () => {
  const N = 4096;
  const D = 128;
  const outliers = [3, 17, 64, 100];
  // Model-like: a few key channels with a large offset and spread (as RoPE'd keys show), the
  // query larger in those channels, and a heavy sink token's value.
  function data(kind: 'random' | 'model') {
    const r = rng(kind === 'random' ? 21 : 22);
    const k = normal(r, N * 2 * D);
    const v = normal(r, N * 2 * D);
    const q = normal(r, 8 * D);
    if (kind === 'model') {
      for (let t = 0; t < N; t++) {
        for (let h = 0; h < 2; h++) {
          for (const d of outliers) k[(t * 2 + h) * D + d] = 6 + 4 * k[(t * 2 + h) * D + d]!;
        }
      }
      for (let i = 0; i < 2 * D; i++) v[i]! *= 8;
      for (let i = 0; i < q.length; i++) if (outliers.includes(i % D)) q[i]! *= 3;
    }
    return { q, k, v };
  }
  const step = (storage: KvCacheStorage, x: ReturnType<typeof data>) => {
    const c = new DuoKVCache({ layers: 1, kvHeads: 2, headDim: D, headPattern: HeadPattern.allRetrieval(1, 2), sink: 4, recent: 64, maxTokens: N + 1, storage });
    c.append(0, x.k.subarray(0, (N - 1) * 2 * D), x.v.subarray(0, (N - 1) * 2 * D));
    return c.attend(0, x.q, x.k.subarray((N - 1) * 2 * D), x.v.subarray((N - 1) * 2 * D), { queryHeads: 8 });
  };
  // Bounds a little above what was measured (random / model-like): float16 0.03 % / 0.12 %,
  // bf16 0.41 % / 0.74 %, int8 0.76 % / 1.03 % (TSDoc of DuoKVCacheOptions.storage, README).
  const BOUND: Record<'random' | 'model', Record<string, number>> = {
    random: { float16: 1e-3, bf16: 6e-3, int8: 1.2e-2 },
    model: { float16: 2e-3, bf16: 1e-2, int8: 1.5e-2 },
  };
  for (const kind of ['random', 'model'] as const) {
    it(`${kind} data`, () => {
      const x = data(kind);
      const f32 = step('float32', x);
      for (const storage of ['float16', 'bf16', 'int8'] as const) {
        expect(relativeError(step(storage, x), f32), `${storage} on ${kind} data`).toBeLessThan(BOUND[kind][storage]!);
      }
    });
  }
});

describe('split-K: a decode step over few KV heads shares each head\'s keys between threads', () => {
  for (const storage of STORAGES) {
    it(`${storage}: one KV head, 20,000 positions, 2 and 3 threads equal 1 thread (output and lse)`, () => {
      const s = { group: 8, dim: 64 };
      const n = 20000;
      const r = rng(31);
      const k = normal(r, n * s.dim);
      const v = normal(r, n * s.dim);
      const c = new DuoKVCache({ layers: 1, kvHeads: 1, headDim: s.dim, headPattern: HeadPattern.allRetrieval(1, 1), sink: 0, recent: 1, maxTokens: n + 1, storage });
      c.append(0, k.subarray(0, (n - 1) * s.dim), v.subarray(0, (n - 1) * s.dim));
      const q = normal(r, 8 * s.dim);
      const run = (threads: number) => {
        const lse = new Float32Array(8);
        const out = c.attend(0, q, k.subarray((n - 1) * s.dim), v.subarray((n - 1) * s.dim), { queryHeads: 8, threads, lse });
        c.truncate(n - 1);
        return { out, lse };
      };
      const one = run(1);
      for (const threads of [2, 3]) {
        const many = run(threads);
        // bfloat16 rounds each weight exp(s − m) with m the running max of the range it is in.
        expect(maxAbsDiff(many.out, one.out)).toBeLessThan(storage === 'bf16' ? 1e-3 : 1e-5);
        expect(maxAbsDiff(many.lse, one.lse)).toBeLessThan(1e-4);
      }
      if (storage === 'float32') {
        const ref = referenceAttention(q, k, v, { queryHeads: 8, kvHeads: 1, headDim: s.dim });
        expect(maxAbsDiff(one.out, ref.output)).toBeLessThan(1e-4);
        expect(maxAbsDiff(one.lse, ref.lse)).toBeLessThan(1e-3);
      }
    });
  }
});
