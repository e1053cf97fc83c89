// The benchmark floors (bench/floors.h), compiled per ISA from bench/floor_rows.inc and
// dispatched by common/isa.h exactly as the production kernels are.
#include "bench/floors.h"

#include <cstring>
#include <limits>
#include <vector>

#include "common/isa.h"
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

uint64_t ReadFloor(const int8_t* bytes, int64_t n) { return CAPIBARA_DISPATCH(ReadFloor, bytes, n); }

const char* FloorIsa() { return IsaName(CurrentIsa()); }

}  // namespace bench
}  // namespace capibara
