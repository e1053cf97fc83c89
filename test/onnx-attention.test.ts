import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OnnxAttention } from '../src/attention/onnx-attention';
import type { AttentionOptions } from '../src/attention/types';
import { attentionInputs, maxAbsDiff, referenceAttention } from './support/attention-reference';
import { normal, rng } from './support/random';

const TOL = 1e-4;
let mha: OnnxAttention;
let gqa: OnnxAttention;

beforeAll(async () => {
  mha = await OnnxAttention.create();
  gqa = await OnnxAttention.create({ operator: 'GroupQueryAttention' });
});

afterAll(async () => {
  await mha?.close();
  await gqa?.close();
});

interface Case extends AttentionOptions {
  nq: number;
  nk: number;
}

function inputs(c: Case, seed: number) {
  return attentionInputs(c.nq, c.nk, c.queryHeads, c.kvHeads, c.headDim, seed);
}

const maxDiff = maxAbsDiff;

/** Runs `c` on both operators and compares each with the float64 reference. */
async function expectReference(c: Case, seed = 1, backends = [mha, gqa]) {
  const { nq, nk, ...options } = c;
  const { q, k, v } = inputs(c, seed);
  const want = referenceAttention(q, k, v, { ...options, streaming: options.streamingHeads }).output;
  for (const b of backends) {
    const got = await b.run(q, k, v, { ...options, threads: 1 });
    expect(maxDiff(got, want), `${b.operator} nq ${nq} nk ${nk}`).toBeLessThan(TOL);
  }
}

describe('OnnxAttention against the float64 reference', () => {
  it('multi-head attention: decode and causal prefill', async () => {
    const base = { queryHeads: 4, kvHeads: 4, headDim: 64 };
    await expectReference({ ...base, nq: 1, nk: 37 });
    await expectReference({ ...base, nq: 37, nk: 37 });
    await expectReference({ ...base, nq: 9, nk: 30 }, 2);
  });

  it('grouped-query attention 32/8 and 4/2, decode and prefill', async () => {
    await expectReference({ queryHeads: 32, kvHeads: 8, headDim: 128, nq: 1, nk: 50 });
    await expectReference({ queryHeads: 32, kvHeads: 8, headDim: 128, nq: 6, nk: 20 }, 3);
    await expectReference({ queryHeads: 4, kvHeads: 2, headDim: 64, nq: 1, nk: 70 }, 4);
    await expectReference({ queryHeads: 4, kvHeads: 2, headDim: 64, nq: 25, nk: 40 }, 5);
  });

  it('queryOffset: queries before the last key, and past it', async () => {
    const base = { queryHeads: 4, kvHeads: 2, headDim: 64, nk: 30 };
    await expectReference({ ...base, nq: 1, queryOffset: 10 });
    await expectReference({ ...base, nq: 5, queryOffset: 3 });
    await expectReference({ ...base, nq: 5, queryOffset: 27 }); // the last 3 see every key
    await expectReference({ ...base, nq: 4, queryOffset: 40 });
    await expectReference({ ...base, nq: 1, queryOffset: 0 });
  });

  it('cross-attention (causal false): more or fewer queries than keys, with streaming heads', async () => {
    const base = { queryHeads: 8, kvHeads: 2, headDim: 64, causal: false };
    await expectReference({ ...base, nq: 7, nk: 19 });
    await expectReference({ ...base, nq: 19, nk: 7 }, 2);
    await expectReference({ ...base, nq: 5, nk: 40, sink: 3, recent: 6, streamingHeads: [true, false] }, 3);
  });

  it('streaming heads mixed with retrieval heads: decode, prefill across chunks, GQA', async () => {
    const streamingHeads = [false, true, true, false];
    const base = { queryHeads: 8, kvHeads: 4, headDim: 64, sink: 4, recent: 8, streamingHeads };
    await expectReference({ ...base, nq: 1, nk: 60 });
    await expectReference({ ...base, nq: 1, nk: 10 }); // the window covers every key
    await expectReference({ ...base, nq: 150, nk: 150 }, 2); // streaming chunks of 64 queries
    await expectReference({ ...base, nq: 20, nk: 90, queryOffset: 50 }, 3);
    await expectReference({ ...base, streamingHeads: [true, true, true, true], nq: 12, nk: 40 }, 4);
  });

  it('head dimensions 64, 128 and 80, and an odd 20 (GroupQueryAttention falls back to MultiHeadAttention)', async () => {
    for (const headDim of [64, 128, 80, 20]) {
      await expectReference({ queryHeads: 4, kvHeads: 2, headDim, nq: 1, nk: 33 }, headDim);
      await expectReference({ queryHeads: 4, kvHeads: 2, headDim, nq: 8, nk: 33, sink: 2, recent: 5, streamingHeads: [false, true] }, headDim + 1);
    }
  });

  it('a custom scale', async () => {
    await expectReference({ queryHeads: 4, kvHeads: 2, headDim: 64, nq: 3, nk: 12, scale: 0.5 });
  });

  it('small score budgets split prefill into many chunks with the same result', async () => {
    const small = await OnnxAttention.create({ scoreBudget: 1000 });
    const smallGqa = await OnnxAttention.create({ scoreBudget: 1000, operator: 'GroupQueryAttention' });
    try {
      const c = { queryHeads: 4, kvHeads: 2, headDim: 64, nq: 30, nk: 50, sink: 2, recent: 4, streamingHeads: [true, false] };
      await expectReference(c, 7, [small, smallGqa]);
    } finally {
      await small.close();
      await smallGqa.close();
    }
  });

  it('float16 keys and values (Uint16Array bits)', async () => {
    const r = rng(9);
    const c = { queryHeads: 4, kvHeads: 2, headDim: 64, sink: 2, recent: 3, streamingHeads: [true, false] };
    const nq = 4;
    const nk = 16;
    // Halves with exponent 13..16: values in ±[0.25, 4), decoded independently for the reference.
    const half = (n: number) => Uint16Array.from({ length: n }, () => (r() < 0.5 ? 0x8000 : 0) | ((13 + Math.floor(r() * 4)) << 10) | Math.floor(r() * 1024));
    const decode = (h: Uint16Array) => Float64Array.from(h, (x) => (x & 0x8000 ? -1 : 1) * (1 + (x & 0x3ff) / 1024) * 2 ** (((x >> 10) & 0x1f) - 15));
    const q = normal(r, nq * 4 * 64, 0.2);
    const k = half(nk * 2 * 64);
    const v = half(nk * 2 * 64);
    const want = referenceAttention(q, decode(k), decode(v), { ...c, streaming: c.streamingHeads }).output;
    for (const b of [mha, gqa]) expect(maxDiff(await b.run(q, k, v, c), want)).toBeLessThan(TOL);
  });
});

describe('exact window edges of streaming heads', () => {
  // Zero queries give equal scores, and one-hot values make the output the visible set itself:
  // out[t, h, j] = 1 / |visible| for each visible key j, 0 otherwise.
  it('sees exactly the sink positions and the last recent positions, the query included', async () => {
    const nk = 24;
    const sink = 3;
    const recent = 5;
    const d = nk;
    const k = new Float32Array(nk * 2 * d);
    const v = new Float32Array(nk * 2 * d);
    for (let j = 0; j < nk; j++) for (let h = 0; h < 2; h++) v[(j * 2 + h) * d + j] = 1;
    const options = { queryHeads: 2, kvHeads: 2, headDim: d, sink, recent, streamingHeads: [true, false] };
    const visible = (i: number, streaming: boolean) =>
      Array.from({ length: nk }, (_, j) => (j <= i && (!streaming || j < sink || j > i - recent) ? 1 : 0));
    const check = (out: Float32Array, t: number, i: number) => {
      for (const [h, streaming] of [[0, true], [1, false]] as const) {
        const seen = Array.from(out.subarray((t * 2 + h) * d, (t * 2 + h + 1) * d), (x) => (x > 1e-6 ? 1 : 0));
        expect(seen, `query at ${i}, head ${h}`).toEqual(visible(i, streaming));
      }
    };
    for (const b of [mha, gqa]) {
      // Prefill: every position 0..23 at once.
      const all = await b.run(new Float32Array(nk * 2 * d), k, v, options);
      for (let t = 0; t < nk; t++) check(all, t, t);
      // Decode at each position, with the keys after it present (queryOffset).
      for (const i of [0, sink - 1, sink, sink + recent - 1, sink + recent, sink + recent + 1, nk - 1]) {
        check(await b.run(new Float32Array(2 * d), k, v, { ...options, queryOffset: i }), 0, i);
      }
    }
  });

  it('a streaming head with no sink, far past the last key, sees nothing and outputs zeros', async () => {
    const { q, k, v } = inputs({ queryHeads: 2, kvHeads: 2, headDim: 8, nq: 3, nk: 4 }, 11);
    const options = { queryHeads: 2, kvHeads: 2, headDim: 8, sink: 0, recent: 2, streamingHeads: [true, false], queryOffset: 3 };
    const want = referenceAttention(q, k, v, { ...options, streaming: options.streamingHeads }).output;
    expect(Array.from(want.subarray(2 * 16, 2 * 16 + 8))).toEqual(new Array(8).fill(0)); // query at 5: window (3, 5] minus key 4+
    for (const b of [mha, gqa]) {
      expect(maxDiff(await b.run(q, k, v, options), want)).toBeLessThan(TOL);
      expect(maxDiff(await b.run(q.subarray(32), k, v, { ...options, queryOffset: 5 }), want.subarray(32))).toBeLessThan(TOL);
    }
  });
});

describe('sessions, providers and lifecycle', () => {
  it('caches one session per graph signature: other lengths reuse it', async () => {
    const b = await OnnxAttention.create();
    try {
      const base = { queryHeads: 4, kvHeads: 2, headDim: 16, threads: 1 };
      for (const nk of [5, 17, 40]) {
        const { q, k, v } = inputs({ ...base, nq: 1, nk }, nk);
        await b.run(q, k, v, base);
      }
      expect(b.sessions).toBe(1);
      const { q, k, v } = inputs({ ...base, nq: 1, nk: 8 }, 3);
      await b.run(q, k, v, { ...base, sink: 1, recent: 2, streamingHeads: [true, false] });
      expect(b.sessions).toBe(3); // retrieval head 0 gathered in the graph; streaming head 1 copied with its window
    } finally {
      await b.close();
    }
  });

  it('keeps at most maxSessions sessions, releasing the least recently used, with the same results', async () => {
    const b = await OnnxAttention.create({ maxSessions: 2 });
    try {
      const runs = [16, 8, 16, 24, 16, 8].map((headDim, i) => ({ headDim, seed: i + 1 }));
      for (const { headDim, seed } of runs) {
        const c = { queryHeads: 4, kvHeads: 2, headDim, nq: 3, nk: 9 };
        const { q, k, v } = inputs(c, seed);
        const want = referenceAttention(q, k, v, { queryHeads: 4, kvHeads: 2, headDim }).output;
        expect(maxDiff(await b.run(q, k, v, { queryHeads: 4, kvHeads: 2, headDim, threads: 1 }), want)).toBeLessThan(TOL);
        expect(b.sessions).toBeLessThanOrEqual(2);
      }
      expect(b.sessions).toBe(2);
      await expect(OnnxAttention.create({ maxSessions: 0 })).rejects.toThrow('Expected integer >= 1 for options.maxSessions but received 0 of type number');
    } finally {
      await b.close();
    }
  });

  it('cuda requested where ORT has no CUDA provider: one warning, then CPU results', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const b = await OnnxAttention.create({ executionProviders: ['cuda', 'cpu'] });
      await new Promise((r) => setImmediate(r));
      const mine = warnings.filter((w) => w.name === 'OnnxAttentionWarning');
      if (b.executionProviders.includes('cuda')) {
        expect(mine).toEqual([]); // a machine with ORT's CUDA provider installed
      } else {
        expect(b.executionProviders).toEqual(['cpu']);
        expect(mine).toHaveLength(1);
        expect(mine[0]!.message).toMatch(/^execution providers \[cuda, cpu\] are not available \(.+\); running the attention graphs on the CPU$/);
        expect((mine[0] as Error & { code?: string }).code).toBe('CAPIBARA_ORT_PROVIDER');
      }
      await expectReference({ queryHeads: 4, kvHeads: 2, headDim: 64, nq: 3, nk: 20, sink: 2, recent: 4, streamingHeads: [true, false] }, 5, [b]);
      await b.close();
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('runs inside a Worker (the built package), with the same results as the main thread', async () => {
    const c = { queryHeads: 4, kvHeads: 2, headDim: 16, sink: 1, recent: 3, streamingHeads: [false, true], threads: 1 };
    const { q, k, v } = inputs({ ...c, nq: 5, nk: 12 }, 21);
    const here = await mha.run(q, k, v, c);
    const lib = resolve(__dirname, '..', 'lib', 'attention', 'onnx-attention.js');
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { OnnxAttention } = require(workerData.lib);
      (async () => {
        const attn = await OnnxAttention.create();
        const out = await attn.run(workerData.q, workerData.k, workerData.v, workerData.c);
        await attn.close();
        parentPort.postMessage(out);
      })();`;
    const there = await new Promise<Float32Array>((ok, fail) => {
      const w = new Worker(code, { eval: true, workerData: { lib, q, k, v, c } });
      w.once('message', ok);
      w.once('error', fail);
    });
    expect(Array.from(there)).toEqual(Array.from(here));
  });

  it('rejects bad arguments with the checker messages, bad create options, and calls after close', async () => {
    const { q, k, v } = inputs({ queryHeads: 4, kvHeads: 2, headDim: 8, nq: 1, nk: 3 }, 1);
    await expect(mha.run(q, k, v, { queryHeads: 4, kvHeads: 3, headDim: 8 })).rejects.toThrow('Expected queryHeads to be a multiple of kvHeads (3) but received 4');
    await expect(mha.run(new Float64Array(4) as never, k, v, { queryHeads: 4, kvHeads: 2, headDim: 8 })).rejects.toThrow(
      'Expected Float32Array for q but received Float64Array of length 4',
    );
    await expect(OnnxAttention.create({ operator: 'Attention' as never })).rejects.toThrow(
      "Expected one of 'MultiHeadAttention', 'GroupQueryAttention' for options.operator but received 'Attention' of type string",
    );
    await expect(OnnxAttention.create({ executionProviders: [] })).rejects.toThrow(
      'Expected non-empty array of provider names for options.executionProviders but received Array of length 0',
    );
    await expect(OnnxAttention.create({ scoreBudget: 0 })).rejects.toThrow('Expected integer >= 1 for options.scoreBudget but received 0 of type number');
    await expect(OnnxAttention.create({ threads: 1 } as never)).rejects.toThrow(
      "Unknown option 'threads' in options (expected one of: executionProviders, operator, scoreBudget, maxSessions)",
    );
    const b = await OnnxAttention.create();
    const pending = b.run(q, k, v, { queryHeads: 4, kvHeads: 2, headDim: 8 });
    await b.close();
    expect((await pending).length).toBe(32); // a call made before close finishes
    expect(b.closed).toBe(true);
    await b.close(); // idempotent
    await expect(b.run(q, k, v, { queryHeads: 4, kvHeads: 2, headDim: 8 })).rejects.toThrow('OnnxAttention is closed');
  });
});
