// Attention kernels: plain C++ over raw pointers, no Node-API. One call attends the queries of
// every KV head's group to that head's keys, which arrive as position-tagged segments: a dense
// [keys, kvHeads, dim] tensor is one segment per head, a DuoAttention cache is a full segment for
// a retrieval head and sink + ring pieces + the new chunk for a streaming head.
#pragma once
#include <cstdint>
#include <vector>

namespace capibara {
namespace attention {

// Rows `count` of keys (and values) at positions first, first + 1, …; row r at k + r * stride
// elements. Elements are float32, or IEEE float16 bits when Params::f16.
struct Segment {
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t stride = 0;
  int64_t count = 0;
  int64_t first = 0;
};

struct Params {
  int64_t queries = 0;     // tokens of q
  int64_t group = 1;       // query heads per KV head
  int64_t kv_heads = 1;
  int64_t dim = 1;
  int64_t pos0 = 0;        // position of query 0 (causal)
  bool causal = true;
  int64_t horizon = 0;     // non-causal: every query sees positions <= horizon
  int64_t sink = 0;
  int64_t recent = 0;
  float scale = 1.f;
  bool f16 = false;
  int threads = 1;
};

// q and out are [queries, kv_heads * group, dim]; lse (may be null) is [queries, kv_heads * group].
// segments[h] lists KV head h's pieces; streaming[h] != 0 applies the sink + recent window.
// A query that sees no key gets a zero output and lse = -Infinity.
void Attend(const Params& p, const float* q, const std::vector<std::vector<Segment>>& segments,
            const uint8_t* streaming, float* out, float* lse);

}  // namespace attention
}  // namespace capibara
