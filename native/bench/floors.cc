// The benchmark floors (bench/floors.h), compiled per ISA from bench/floor_rows.inc and
// dispatched by common/isa.h exactly as the production kernels are.
#include "bench/floors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "common/isa.h"
#include "common/parallel.h"
#include "common/vec.h"
#include "memory/kernels.h"

namespace capibara {
namespace bench {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Up to this many experts the gating floors go through tiles (faster there, measured).
constexpr int64_t kTileFloorMaxExperts = 16;

#define CAPIBARA_KERNEL_BODY "bench/floor_rows.inc"
#include "common/isa_each.inc"

}  // namespace

double GatingFloor(const float* logits, int64_t tokens, int64_t experts, bool normaliser) {
  return CAPIBARA_DISPATCH(GatingFloor, logits, tokens, experts, normaliser);
}

uint64_t ReadFloor(const int8_t* bytes, int64_t n, int threads) {
  if (threads <= 1) return CAPIBARA_DISPATCH(ReadFloor, bytes, n);
  // Parts of whole cache lines, one per thread; the folds XORed together.
  const int64_t parts = std::min<int64_t>(threads, std::max<int64_t>(1, n / 64));
  const int64_t part = (n / parts + 63) / 64 * 64;
  std::vector<uint64_t> folds(static_cast<size_t>(parts), 0);
  ParallelFor(parts, static_cast<int>(parts), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t from = std::min(n, i * part), to = std::min(n, from + part);
      folds[static_cast<size_t>(i)] = CAPIBARA_DISPATCH(ReadFloor, bytes + from, to - from);
    }
  });
  uint64_t h = 0;
  for (uint64_t f : folds) h ^= f;
  return h;
}

const char* FloorIsa() { return IsaName(CurrentIsa()); }

}  // namespace bench
}  // namespace capibara
