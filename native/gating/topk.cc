// Fused score -> top-k -> weights, one vectorized pass over each row of logits in the
// common case. The per-row kernel body is gating/topk_rows.inc, compiled per ISA.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "common/isa.h"
#include "common/parallel.h"
#include "common/vec.h"
#include "gating/kernels.h"

namespace capibara {
namespace gating {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Token-per-lane tiles pay k compare-and-blend steps per expert; the row path pays a fixed
// cost per token (a threshold, then ranking a handful of candidates) and one pass per expert.
// Without bias or groups, tiles win up to 128 experts, and up to 512 for k <= 4 (measured
// on AVX-512, 4,096 tokens); with bias or groups, up to kTileMaxExperts.
constexpr int64_t kTileFastMaxExperts = 128;
constexpr int64_t kTileFastMaxExpertsSmallK = 512;
constexpr int kTileSmallK = 4;
constexpr int64_t kTileMaxExperts = 1024;
// Tiles are instantiated for k = 1..kTileMaxK; larger k takes the row path.
constexpr int kTileMaxK = 8;
// Per-lane group bookkeeping lives in stack arrays of this size.
constexpr int kTileMaxGroups = 64;

// The k best (value, expert) pairs seen so far, best first. Strictly greater values win,
// so among equal values the lower expert index (seen first) stays ahead.
struct TopK {
  float* v;
  int32_t* i;
  int k;
  int filled = 0;
  CAPIBARA_INLINE float Threshold() const { return filled < k ? kNegInf : v[k - 1]; }
  CAPIBARA_INLINE void Push(float x, int32_t e) {
    int pos = filled < k ? filled++ : k - 1;
    while (pos > 0 && v[pos - 1] < x) {
      v[pos] = v[pos - 1];
      i[pos] = i[pos - 1];
      --pos;
    }
    v[pos] = x;
    i[pos] = e;
  }
};

struct Scratch {
  std::vector<float> top_v, score, select, group_v, cand_v, sorted_v, tile, pad, pad_w;
  std::vector<int32_t> top_i, group_i, cand_i, sorted_i, pad_i;
  std::vector<uint8_t> group_on;
};

// Whether a call goes through the token-per-lane tiles (the same for every token of the call).
bool UsesTiles(const TopkParams& p) {
  const bool general = p.bias != nullptr || p.groups > 1;
  const int64_t max_experts = general           ? kTileMaxExperts
                              : p.k <= kTileSmallK ? kTileFastMaxExpertsSmallK
                                                   : kTileFastMaxExperts;
  return p.k <= kTileMaxK && p.groups <= kTileMaxGroups && p.experts <= max_experts;
}

// The ISA variants of the kernel body.
#define CAPIBARA_KERNEL_BODY "gating/topk_rows.inc"
#include "common/isa_each.inc"


}  // namespace

TopkStatus TopkGating(const float* logits, const TopkParams& p, float* weights, int32_t* indices) {
  const bool general = p.bias != nullptr || p.groups > 1;
  std::mutex mu;
  int64_t first_bad = -1;
  const int threads = ThreadsFor(p.tokens * p.experts, p.threads);
  // Threads take whole 16-token tiles, so a token takes the same path (and rounding) whatever the thread count.
  const int64_t tiles = (p.tokens + kLanes - 1) / kLanes;
  ParallelFor(tiles, threads, [&](int64_t tile_begin, int64_t tile_end) {
    const int64_t begin = tile_begin * kLanes, end = std::min(p.tokens, tile_end * kLanes);
    Scratch s;
    s.top_v.resize(static_cast<size_t>(p.k));
    s.top_i.resize(static_cast<size_t>(p.k));
    // Candidates: at most one per expert, plus one vector of slack for full-width stores.
    const size_t cand = static_cast<size_t>(p.experts + kLanes);
    s.cand_v.resize(cand);
    s.cand_i.resize(cand);
    s.sorted_v.resize(cand);
    s.sorted_i.resize(cand);
    // Logits tile, plus a score tile for the general path.
    if (UsesTiles(p)) {
      s.tile.resize(static_cast<size_t>(2 * p.experts * kLanes));
      s.pad.resize(static_cast<size_t>(p.experts * kLanes));
      s.pad_w.resize(static_cast<size_t>(p.k * kLanes));
      s.pad_i.resize(static_cast<size_t>(p.k * kLanes));
    }
    if (general) {
      s.score.resize(static_cast<size_t>(p.experts + kLanes));
      s.select.resize(static_cast<size_t>(p.experts));
      s.group_v.resize(static_cast<size_t>(p.topk_groups));
      s.group_i.resize(static_cast<size_t>(p.topk_groups));
      s.group_on.resize(static_cast<size_t>(p.groups));
    }
    const int64_t bad = CAPIBARA_DISPATCH(Rows, logits, p, begin, end, s, weights, indices);
    if (bad >= 0) {
      std::lock_guard<std::mutex> lock(mu);
      if (first_bad < 0 || bad < first_bad) first_bad = bad;
    }
  });
  return TopkStatus{first_bad};
}

const char* KernelIsa() { return IsaName(CurrentIsa()); }

}  // namespace gating
}  // namespace capibara
