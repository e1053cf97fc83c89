// Router projection logits = hidden · W^T. Tiles of 4 tokens share every load of a weight
// row, and dot products run over independent lanes so they vectorize without -ffast-math.
#include <algorithm>

#include "common/dispatch.h"
#include "common/parallel.h"
#include "gating/kernels.h"

namespace capibara {
namespace gating {
namespace {

constexpr int kTile = 4;

CAPIBARA_MULTIVERSION
void TokenBlock(const float* hidden, const float* weight, int64_t t0, int64_t t1, int64_t H, int64_t E, float* out) {
  int64_t t = t0;
  for (; t + kTile <= t1; t += kTile) {
    const float* h0 = hidden + t * H;
    for (int64_t e = 0; e < E; ++e) {
      const float* w = weight + e * H;
      float acc[kTile][kLanes] = {};
      int64_t i = 0;
      for (; i + kLanes <= H; i += kLanes)
        for (int r = 0; r < kTile; ++r)
          for (int l = 0; l < kLanes; ++l) acc[r][l] += h0[r * H + i + l] * w[i + l];
      for (int r = 0; r < kTile; ++r) {
        float s = 0;
        for (int64_t j = i; j < H; ++j) s += h0[r * H + j] * w[j];
        for (int l = 0; l < kLanes; ++l) s += acc[r][l];
        out[(t + r) * E + e] = s;
      }
    }
  }
  for (; t < t1; ++t) {
    const float* h = hidden + t * H;
    for (int64_t e = 0; e < E; ++e) {
      const float* w = weight + e * H;
      float acc[kLanes] = {};
      int64_t i = 0;
      for (; i + kLanes <= H; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] += h[i + l] * w[i + l];
      float s = 0;
      for (; i < H; ++i) s += h[i] * w[i];
      for (int l = 0; l < kLanes; ++l) s += acc[l];
      out[t * E + e] = s;
    }
  }
}

}  // namespace

void RouterLogits(const float* hidden, const float* weight, int64_t tokens, int64_t hidden_size, int64_t experts,
                  float* out, int threads) {
  const int64_t blocks = (tokens + kTile - 1) / kTile;
  const int n = ThreadsFor(tokens * hidden_size * experts, threads, int64_t{1} << 20);
  ParallelFor(blocks, n, [&](int64_t b0, int64_t b1) {
    TokenBlock(hidden, weight, b0 * kTile, std::min(tokens, b1 * kTile), hidden_size, experts, out);
  });
}

}  // namespace gating
}  // namespace capibara
