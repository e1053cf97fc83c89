// Dispatch plan on the device, equal to native/gating/dispatch.cc: vLLM's moe_align_block_size
// (count per expert, pad to the block size, exclusive scan, scatter) with DeepSpeed's position
// dropping (every token's first choice before any second choice). All of it rests on one
// primitive, a stable rank: each item's index among the earlier items with the same key, in a
// fixed item order, so the plan is deterministic (atomics only count; order comes from warp
// ballots inside fixed chunks and a scan over chunks).
#include <cstdint>

#include "cuda/kernels.h"

namespace capibara {
namespace cuda {
namespace {

constexpr int kChunk = 2048;  // items per warp in the count and rank passes

enum Mode : int32_t {
  kSlots = 0,     // item = slot, key = its expert when routed here
  kPriority = 1,  // item i = choice i / T of token i % T, key = its expert when routed here
  kKept = 2,      // item = slot, key = its expert when kept
  kDropped = 3,   // item = slot, key = 0 when dropped
};

struct Items {
  const int32_t* indices;
  const int32_t* keep;  // per slot: 1 kept, 0 dropped, -1 not routed here
  int64_t tokens;
  int32_t k, experts;
  Mode mode;
  __device__ __forceinline__ int64_t Slot(int64_t i) const {
    return mode == kPriority ? (i % tokens) * k + i / tokens : i;
  }
  __device__ __forceinline__ int32_t Key(int64_t s) const {
    const int32_t e = indices[s];
    switch (mode) {
      case kKept: return keep[s] == 1 ? e : -1;
      case kDropped: return keep[s] == 0 ? 0 : -1;
      default: return (e >= 0 && e < experts) ? e : -1;
    }
  }
};

// count[key * chunks + chunk] = items of the chunk with that key.
__global__ void CountKernel(Items it, int64_t n, int32_t keys, int32_t* count) {
  extern __shared__ int32_t c[];
  const int32_t chunks = gridDim.x;
  for (int32_t e = threadIdx.x; e < keys; e += 32) c[e] = 0;
  __syncwarp();
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kChunk;
  for (int64_t i = begin + threadIdx.x; i < n && i < begin + kChunk; i += 32) {
    const int32_t key = it.Key(it.Slot(i));
    if (key >= 0) atomicAdd(&c[key], 1);
  }
  __syncwarp();
  for (int32_t e = threadIdx.x; e < keys; e += 32) count[static_cast<int64_t>(e) * chunks + blockIdx.x] = c[e];
}

// Exclusive scan over chunks per key; total[key] = the key's items.
__global__ void ScanKernel(int32_t keys, int32_t chunks, int32_t* count, int32_t* total) {
  const int32_t e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= keys) return;
  int32_t run = 0;
  int32_t* row = count + static_cast<int64_t>(e) * chunks;
  for (int32_t c = 0; c < chunks; ++c) {
    const int32_t v = row[c];
    row[c] = run;
    run += v;
  }
  total[e] = run;
}

// rank[slot] = the item's index among the items with its key, in item order; -1 without a key.
__global__ void RankKernel(Items it, int64_t n, int32_t keys, const int32_t* base, int32_t* rank) {
  extern __shared__ int32_t run[];
  const int32_t chunks = gridDim.x;
  for (int32_t e = threadIdx.x; e < keys; e += 32) run[e] = base[static_cast<int64_t>(e) * chunks + blockIdx.x];
  __syncwarp();
  const unsigned lane = threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kChunk;
  for (int64_t b = begin; b < n && b < begin + kChunk; b += 32) {
    const int64_t i = b + lane;
    const bool live = i < n && i < begin + kChunk;
    const int64_t s = live ? it.Slot(i) : 0;
    const int32_t key = live ? it.Key(s) : -2;
    const unsigned same = __match_any_sync(0xffffffffu, key);
    const int32_t r = key >= 0 ? run[key] + __popc(same & ((1u << lane) - 1)) : -1;
    __syncwarp();
    if (key >= 0 && (__ffs(same) - 1) == static_cast<int>(lane)) run[key] += __popc(same);
    __syncwarp();
    if (live) rank[s] = r;
  }
}

// loads, counts, padded offsets and the plan's sizes, in one thread (experts are few).
__global__ void OffsetsKernel(DispatchParams p, const int32_t* loads, int32_t* counts, int32_t* offsets,
                              long long* sizes, const int32_t* dropped_total) {
  int64_t at = 0;
  offsets[0] = 0;
  for (int32_t e = 0; e < p.experts; ++e) {
    const int32_t c = p.capacity < 0 ? loads[e] : static_cast<int32_t>(min(static_cast<int64_t>(loads[e]), static_cast<int64_t>(p.capacity)));
    counts[e] = c;
    at += (static_cast<int64_t>(c) + p.block_size - 1) / p.block_size * p.block_size;
    offsets[e + 1] = static_cast<int32_t>(at);
  }
  sizes[0] = at;
  sizes[1] = dropped_total != nullptr ? *dropped_total : 0;
}

// keep[s] from the priority ranks; invalid slots reported in sizes[2].
__global__ void KeepKernel(const int32_t* indices, int64_t slots, int32_t experts, int64_t capacity,
                           const int32_t* prio_rank, int32_t* keep, long long* sizes) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= slots) return;
  const int32_t e = indices[s];
  if (e < -1 || e > experts) atomicMin(reinterpret_cast<unsigned long long*>(sizes + 2), static_cast<unsigned long long>(s));
  const bool routed = e >= 0 && e < experts;
  keep[s] = !routed ? -1 : (capacity < 0 || prio_rank[s] < capacity) ? 1 : 0;
}

__global__ void ScatterKernel(const int32_t* indices, const int32_t* keep, const int32_t* place_rank,
                              const int32_t* drop_rank, int64_t slots, const int32_t* offsets, int32_t* permutation,
                              int32_t* slot_position, int32_t* dropped) {
  const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (s >= slots) return;
  int32_t pos = -1;
  if (keep[s] == 1) {
    pos = offsets[indices[s]] + place_rank[s];
    permutation[pos] = static_cast<int32_t>(s);
  } else if (keep[s] == 0) {
    dropped[drop_rank[s]] = static_cast<int32_t>(s);
  }
  slot_position[s] = pos;
}

int32_t Chunks(int64_t n) { return static_cast<int32_t>(n == 0 ? 1 : (n + kChunk - 1) / kChunk); }

// Stable ranks of `it` over n items into rank[slot], totals per key into total.
cudaError_t Rank(const Items& it, int64_t n, int32_t keys, int32_t* count, int32_t* total, int32_t* rank,
                 cudaStream_t stream) {
  const int32_t chunks = Chunks(n);
  const size_t shared = sizeof(int32_t) * static_cast<size_t>(keys);
  CountKernel<<<chunks, 32, shared, stream>>>(it, n, keys, count);
  ScanKernel<<<(keys + 127) / 128, 128, 0, stream>>>(keys, chunks, count, total);
  RankKernel<<<chunks, 32, shared, stream>>>(it, n, keys, count, rank);
  return cudaGetLastError();
}

}  // namespace

int64_t DispatchScratch(const DispatchParams& p) {
  const int64_t slots = p.tokens * p.k;
  // count matrix, totals (experts + 1 for the dropped total), and four per-slot arrays.
  return static_cast<int64_t>(p.experts) * Chunks(slots) + p.experts + 1 + 4 * slots;
}

cudaError_t DispatchPlan(const int32_t* indices, const DispatchParams& p, int32_t* scratch, int32_t* loads,
                         int32_t* counts, int32_t* offsets, int32_t* permutation, int32_t* slot_position,
                         int32_t* dropped, long long* sizes, cudaStream_t stream) {
  const int64_t slots = p.tokens * p.k;
  int32_t* count = scratch;
  int32_t* drop_total = count + static_cast<int64_t>(p.experts) * Chunks(slots);
  int32_t* prio = drop_total + 1;
  int32_t* keep = prio + slots;
  int32_t* place = keep + slots;
  int32_t* drop = place + slots;
  (void)drop;
  const long long init[3] = {0, 0, -1};
  cudaError_t err = cudaMemcpyAsync(sizes, init, sizeof init, cudaMemcpyHostToDevice, stream);
  if (err == cudaSuccess && slots > 0)
    err = cudaMemsetAsync(permutation, 0xff, sizeof(int32_t) * static_cast<size_t>(slots + static_cast<int64_t>(p.experts) * (p.block_size - 1)), stream);
  if (err != cudaSuccess) return err;
  Items it{indices, keep, p.tokens, p.k, p.experts, kSlots};
  // loads (and, dropless, the ranks that place each slot).
  err = Rank(it, slots, p.experts, count, loads, p.capacity < 0 ? place : prio, stream);
  if (err != cudaSuccess) return err;
  const unsigned blocks = static_cast<unsigned>((slots + 255) / 256);
  if (p.capacity >= 0) {
    it.mode = kPriority;
    if ((err = Rank(it, slots, p.experts, count, counts, prio, stream)) != cudaSuccess) return err;
  }
  if (slots > 0) KeepKernel<<<blocks, 256, 0, stream>>>(indices, slots, p.experts, p.capacity, prio, keep, sizes);
  if (p.capacity >= 0) {
    it.mode = kKept;
    if ((err = Rank(it, slots, p.experts, count, counts, place, stream)) != cudaSuccess) return err;
    it.mode = kDropped;
    if ((err = Rank(it, slots, 1, count, drop_total, drop, stream)) != cudaSuccess) return err;
  }
  OffsetsKernel<<<1, 1, 0, stream>>>(p, loads, counts, offsets, sizes, p.capacity >= 0 ? drop_total : nullptr);
  if (slots > 0)
    ScatterKernel<<<blocks, 256, 0, stream>>>(indices, keep, place, drop, slots, offsets, permutation, slot_position,
                                              dropped);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace capibara
