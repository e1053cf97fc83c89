// DuoAttention: calibrate which KV heads need the full cache on captured Q/K/V (here synthetic:
// one head per layer is planted to look far back, the others look at recent tokens), save the
// pattern in DuoAttention's own file format, then decode with the split cache and compare with
// full attention. Run: node examples/attention.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuoAttention, DuoKVCache, HeadPattern, calibrateHeads } from '@capibara/core';

const LAYERS = 2, QH = 8, KVH = 4, D = 64, N = 512, SINK = 4, RECENT = 64;
let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
const randn = (n) => Float32Array.from({ length: n }, rand);

// Captured attention inputs of one calibration text per layer. Most heads are local: each query
// matches the previous token's key. KV head `layer + 1` is the "retrieval head": its queries
// match the key of a token far in the past.
function capture(layer) {
  const q = randn(N * QH * D), k = randn(N * KVH * D), v = randn(N * KVH * D);
  const far = layer + 1;
  for (let t = 1; t < N; t++) {
    for (let h = 0; h < KVH; h++) {
      const j = h === far && t > RECENT + SINK ? (t * 7) % (t - RECENT) : t - 1;
      for (let g = 0; g < QH / KVH; g++) for (let e = 0; e < D; e++) q[(t * QH + h * (QH / KVH) + g) * D + e] = 4 * k[(j * KVH + h) * D + e];
    }
  }
  return { layer, q, k, v };
}

const samples = [capture(0), capture(1)];
const { pattern, scores } = await calibrateHeads(samples, {
  layers: LAYERS, queryHeads: QH, kvHeads: KVH, headDim: D, sink: SINK, recent: RECENT, retrievalRatio: 0.25, method: 'both',
});
console.log('head scores per layer:', [0, 1].map((l) => Array.from(scores.subarray(l * KVH, (l + 1) * KVH), (s) => s.toFixed(3))));
console.log('retrieval heads per layer:', [0, 1].map((l) => pattern.retrievalHeads(l)));

// DuoAttention's files: full_attention_heads.tsv + config.json, checked against a model config on load.
const dir = mkdtempSync(join(tmpdir(), 'capibara-duo-'));
await pattern.save(dir);
const loaded = await HeadPattern.load(dir, { modelConfig: { num_hidden_layers: LAYERS, num_attention_heads: QH, num_key_value_heads: KVH } });
rmSync(dir, { recursive: true });

// Decode layer 0 token by token through the split cache (prefill the first half in one chunk).
const cache = new DuoKVCache({ layers: LAYERS, kvHeads: KVH, headDim: D, headPattern: loaded, sink: SINK, recent: RECENT, maxTokens: N });
const { q, k, v } = samples[0];
const rows = (x, heads, a, b) => x.subarray(a * heads * D, b * heads * D);
cache.attend(0, rows(q, QH, 0, N / 2), rows(k, KVH, 0, N / 2), rows(v, KVH, 0, N / 2), { queryHeads: QH });
for (let t = N / 2; t < N; t++) cache.attend(0, rows(q, QH, t, t + 1), rows(k, KVH, t, t + 1), rows(v, KVH, t, t + 1), { queryHeads: QH });
console.log(`KV cache: ${cache.bytesUsed()} bytes held vs ${cache.bytesFullCache()} for a full cache (${((cache.bytesUsed() / cache.bytesFullCache()) * 100).toFixed(0)} %)`);

// The facade: one call with the layer's split, quality measured against full attention.
const duo = new DuoAttention({ numHeads: QH, kvHeads: KVH, headDim: D, headPattern: loaded, sink: SINK, recent: RECENT });
const split = await duo.processAttention({ q, k, v, layer: 0, checkQuality: true });
const streamingOnly = await new DuoAttention({ numHeads: QH, kvHeads: KVH, headDim: D, sink: SINK, recent: RECENT })
  .processAttention({ q, k, v, type: 'temporal', checkQuality: true });
console.log(`calibrated split: quality ${split.quality.toFixed(4)}, ${split.kvBytesSaved} KV bytes saved; every head streaming: quality ${streamingOnly.quality.toFixed(4)}`);
console.log(duo.getMetrics());
await duo.close();
