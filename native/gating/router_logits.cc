// Router projection logits = hidden · W^T. Tiles of 4 tokens share every load of a weight
// row, and dot products run over independent lanes so they vectorize without -ffast-math.
// The loops are gating/router_logits_rows.inc, compiled per ISA and picked by common/isa.h
// like every other kernel (so CAPIBARA_ISA governs them too).
#include <algorithm>

#include "common/isa.h"
#include "common/parallel.h"
#include "common/vec.h"
#include "gating/kernels.h"

namespace capibara {
namespace gating {
namespace {

constexpr int kTile = 4;

#define CAPIBARA_KERNEL_BODY "gating/router_logits_rows.inc"
#include "common/isa_each.inc"

}  // namespace

void RouterLogits(const float* hidden, const float* weight, int64_t tokens, int64_t hidden_size, int64_t experts,
                  float* out, int threads) {
  const int64_t blocks = (tokens + kTile - 1) / kTile;
  const int n = ThreadsFor(tokens * hidden_size * experts, threads, int64_t{1} << 20);
  ParallelFor(blocks, n, [&](int64_t b0, int64_t b1) {
    CAPIBARA_DISPATCH(TokenBlock, hidden, weight, b0 * kTile, std::min(tokens, b1 * kTile), hidden_size, experts, out);
  });
}

}  // namespace gating
}  // namespace capibara
