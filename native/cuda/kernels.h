// CUDA kernels of the addon: host launchers over device pointers, no Node-API (the bindings in
// native/cuda/*_binding.cc own the memory and turn errors into JS errors). Every launcher queues
// work on `stream` and returns the launch's error; nothing here synchronises.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace capibara {
namespace cuda {

// ---- MoE gating (gating.cu): the CPU kernel's math (native/gating/topk_rows.inc) per token.
struct GatingParams {
  int64_t tokens = 0;
  int32_t experts = 0;
  int32_t k = 1;
  int32_t scoring = 0;  // gating::Scoring
  bool renormalize = true;
  float route_scale = 1.f;
  int32_t groups = 1;
  int32_t topk_groups = 1;
  int32_t group_score = 0;  // gating::GroupScore
  int32_t range_start = 0;
  int32_t range_end = 0;
  // The CPU kernel sums a row's softmax normaliser in 16 interleaved partials on its row path and
  // in expert order on its token-tile path; the device follows the path the CPU would take.
  bool sum16 = false;
};
// Most experts per token the device kernel selects (its per-thread top-k lives in registers).
constexpr int kMaxDeviceK = 32;
constexpr int kMaxDeviceGroups = 64;
// bad: one uint64 on the device, set to min(flat index of a NaN / +Infinity logit); preset to ~0.
cudaError_t GatingTopk(const float* logits, const float* bias, const GatingParams& p, float* weights, int32_t* indices,
                       unsigned long long* bad, cudaStream_t stream);

// ---- Dispatch plan (dispatch.cu), vLLM moe_align_block_size with DeepSpeed position dropping.
struct DispatchParams {
  int64_t tokens = 0;
  int32_t k = 1;
  int32_t experts = 1;
  int64_t capacity = -1;  // -1 = dropless
  int32_t block_size = 1;
};
// Device scratch the plan needs, in int32 elements.
int64_t DispatchScratch(const DispatchParams& p);
// Outputs as native/gating/kernels.h DispatchResult, on the device; `sizes` (device, 3 int64):
// padded total, dropped count, first invalid slot (-1 if none). permutation must hold
// tokens * k + experts * (block_size - 1) elements (the most the padded total can be).
cudaError_t DispatchPlan(const int32_t* indices, const DispatchParams& p, int32_t* scratch, int32_t* loads,
                         int32_t* counts, int32_t* offsets, int32_t* permutation, int32_t* slot_position,
                         int32_t* dropped, long long* sizes, cudaStream_t stream);

// ---- DuoAttention decode over the device KV cache (attention.cu).
enum class KvType : int32_t { kF16 = 0, kBf16 = 1 };
// Stores n token-major rows [n, kv_heads, dim] (float32, or float16 bits when src_f16) at
// positions pos0.. into each head's rows: retrieval heads at row p of their full buffer,
// streaming heads at their sink slot or ring slot (positions a later one in the same call
// overwrites are skipped).
struct KvStoreParams {
  int32_t kv_heads = 0, dim = 0, sink = 0, ring = 0, n = 0;
  int64_t pos0 = 0;
  KvType type = KvType::kF16;
  bool src_f16 = false;
};
// Per KV head: its base row pointer (device) of keys and values, and 1 if streaming.
struct KvHeadTable {
  void* const* k;  // [kv_heads] device pointers
  void* const* v;
  const uint8_t* streaming;  // [kv_heads]
};
cudaError_t KvStore(const void* src_k, const void* src_v, const KvHeadTable& heads, const KvStoreParams& p,
                    cudaStream_t stream);

struct AttendParams {
  int32_t queries = 1, query_heads = 0, kv_heads = 0, dim = 0;
  int64_t pos0 = 0;  // position of query 0; query t sits at pos0 + t and every position <= it is stored
  int32_t sink = 0, recent = 1, ring = 1;
  float scale = 1.f;
  KvType type = KvType::kF16;
  int32_t split = 512;  // positions per split-K block
  int32_t splits = 1;   // ceil(most visible positions / split)
};
// Query heads a block of the decode kernel takes (of the `group` sharing one KV head): 4 or 8.
inline int32_t QueryHeadsPerBlock(int32_t group) { return group <= 4 ? 4 : 8; }
// Partial results need splits * queries * query_heads * (dim + 2) floats of scratch.
int64_t AttendScratch(const AttendParams& p);
// out [queries, query_heads, dim] float32; lse [queries, query_heads] or null.
cudaError_t Attend(const float* q, const KvHeadTable& heads, const AttendParams& p, float* scratch, float* out,
                   float* lse, cudaStream_t stream);

// ---- Benchmark helpers (bench.cu).
// dst = src, `bytes` a multiple of 16: the bandwidth floor the benchmarks compare against.
cudaError_t Copy(void* dst, const void* src, int64_t bytes, cudaStream_t stream);
// The plain baseline: softmax of every row into probs [T, E], then each row sorted (bitonic,
// descending) and its first k renormalised. Needs experts <= 1024.
cudaError_t BaselineSoftmaxSort(const float* logits, int64_t tokens, int32_t experts, int32_t k, float* probs,
                                float* weights, int32_t* indices, cudaStream_t stream);

}  // namespace cuda
}  // namespace capibara
