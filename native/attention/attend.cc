// Attention over position-tagged key segments (attention/kernels.h). Work is split into tiles
// (one KV head × up to kTileRows query rows) handed out to threads from a shared counter, the
// costliest first, so a causal prefill's long late tiles do not end up on one thread.
// Let GCC fuse a * b + c into FMA (ISO C++ mode turns contraction off): the dot products and
// accumulations are latency-bound chains of multiply-adds. Results may differ across ISAs in the
// last bits, well inside the 1e-4 the tests hold the kernels to.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "attention/kernels.h"
#include "common/isa.h"
#include "common/parallel.h"
#include "common/vec.h"

namespace capibara {
namespace attention {
namespace {

// Keys per block: scores of a 64-row tile stay in L1 next to the block's transposed keys.
constexpr int64_t kBlock = 32;
// Query rows per tile: enough rows to reuse each key/value row loaded, few enough that the
// tile's queries and accumulators (2 × 64 × 128 floats) stay in L2.
constexpr int64_t kTileRows = 64;
constexpr int64_t kMaxW = 16;
// How many key blocks ahead rows are prefetched while a block is computed: at 32K-token decode,
// 1 to 4 blocks measured alike (±10 %, on a shared machine) and all beat none by ~1.4×.
constexpr int64_t kPrefetchBlocks = 2;

struct Tile {
  int64_t head = 0, t0 = 0, tokens = 0, rows = 0, pad = 0, group = 1;
  int64_t lo = 0, hi = 0;  // horizons of the first and last token
  bool causal = true, streaming = false;
  int64_t Horizon(int64_t r) const { return causal ? lo + r / group : lo; }
};

struct TileScratch {
  std::vector<float> buf;
  float *q, *acc, *s, *kt, *kf, *vf, *pad_rows, *m, *l;
  TileScratch(int64_t rows, int64_t pad) {
    const int64_t sizes[] = {rows * pad, rows * pad, rows * kBlock, kBlock * pad, kBlock * pad, kBlock * pad,
                             kMaxW * pad, rows, rows};
    int64_t total = 0;
    for (int64_t s : sizes) total += (s + kMaxW - 1) / kMaxW * kMaxW;
    buf.assign(static_cast<size_t>(total), 0.f);
    float* at = buf.data();
    float** slots[] = {&q, &acc, &s, &kt, &kf, &vf, &pad_rows, &m, &l};
    for (int i = 0; i < 9; ++i) {
      *slots[i] = at;
      at += (sizes[i] + kMaxW - 1) / kMaxW * kMaxW;
    }
  }
};

// The next key block of a segment: its first k and v row (bytes), rows, row stride and width in bytes.
struct Ahead {
  const char* k = nullptr;
  const char* v = nullptr;
  int64_t rows = 0, stride = 0, bytes = 0;
};

#define CAPIBARA_KERNEL_BODY "attention/attend_rows.inc"
#include "common/isa_each.inc"

}  // namespace

void Attend(const Params& p, const float* q, const std::vector<std::vector<Segment>>& segments,
            const uint8_t* streaming, float* out, float* lse) {
  const int64_t heads = p.kv_heads * p.group, width = CAPIBARA_DISPATCH(Lanes);
  const int64_t pad = (p.dim + width - 1) / width * width;
  const int64_t tile_tokens = std::max<int64_t>(1, kTileRows / p.group);
  const int64_t tiles_per_head = (p.queries + tile_tokens - 1) / tile_tokens;
  const int64_t tasks = tiles_per_head * p.kv_heads;
  if (tasks == 0) return;

  // Keys a task may read, for the thread count: a decode step at 4K context across 8 heads is
  // worth two threads, a short prompt is not.
  // In double: keys × queries of a huge call would overflow int64.
  double keys = 0;
  for (const auto& segs : segments)
    for (const Segment& s : segs) keys += static_cast<double>(s.count);
  const double estimate = keys * static_cast<double>(p.dim * p.group) * static_cast<double>(std::max<int64_t>(1, p.queries));
  const int64_t work = estimate >= 9e18 ? INT64_MAX : static_cast<int64_t>(estimate);
  const int threads = static_cast<int>(std::min<int64_t>(ThreadsFor(work, p.threads, int64_t{1} << 20), tasks));

  std::atomic<int64_t> next{0};
  ParallelFor(threads, threads, [&](int64_t, int64_t) {
    TileScratch sc(tile_tokens * p.group, pad);
    for (int64_t task; (task = next.fetch_add(1)) < tasks;) {
      // Later tiles of a causal prefill see more keys: hand them out first.
      const int64_t tile_index = tiles_per_head - 1 - task / p.kv_heads;
      Tile t;
      t.head = task % p.kv_heads;
      t.t0 = tile_index * tile_tokens;
      t.tokens = std::min(tile_tokens, p.queries - t.t0);
      t.group = p.group;
      t.rows = t.tokens * p.group;
      t.pad = pad;
      t.causal = p.causal;
      t.streaming = streaming != nullptr && streaming[t.head] != 0;
      t.lo = p.causal ? p.pos0 + t.t0 : p.horizon;
      t.hi = p.causal ? t.lo + t.tokens - 1 : p.horizon;

      for (int64_t r = 0; r < t.rows; ++r) {
        const int64_t tok = t.t0 + r / p.group, h = t.head * p.group + r % p.group;
        const float* src = q + (tok * heads + h) * p.dim;
        float* dst = sc.q + r * pad;
        for (int64_t e = 0; e < p.dim; ++e) dst[e] = src[e] * p.scale;
        std::fill(dst + p.dim, dst + pad, 0.f);
        std::fill(sc.acc + r * pad, sc.acc + (r + 1) * pad, 0.f);
        sc.m[r] = -std::numeric_limits<float>::infinity();
        sc.l[r] = 0.f;
      }
      CAPIBARA_DISPATCH(RunTile, p, t, segments[static_cast<size_t>(t.head)], sc);
      for (int64_t r = 0; r < t.rows; ++r) {
        const int64_t tok = t.t0 + r / p.group, h = t.head * p.group + r % p.group;
        float* dst = out + (tok * heads + h) * p.dim;
        const float l = sc.l[r], inv = l > 0.f ? 1.f / l : 0.f;
        for (int64_t e = 0; e < p.dim; ++e) dst[e] = sc.acc[r * pad + e] * inv;
        if (lse != nullptr)
          lse[tok * heads + h] = l > 0.f ? sc.m[r] + std::log(l) : -std::numeric_limits<float>::infinity();
      }
    }
  });
}

}  // namespace attention
}  // namespace capibara
