// Router balance statistics over one batch: the quantities the Switch, ST-MoE and
// DeepSeek-V3 papers use to judge (and train against) load imbalance. The per-row work
// (exp, log, sums) is gating/stats_rows.inc, vectorized per ISA; totals are float64.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/isa.h"
#include "common/vec.h"
#include "gating/kernels.h"

namespace capibara {
namespace gating {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Rows summed in float before each flush into the float64 totals.
constexpr int64_t kFlushRows = 32;

#define CAPIBARA_KERNEL_BODY "gating/stats_rows.inc"
#include "common/isa_each.inc"

}  // namespace

int64_t RouterStats(const float* logits, const int32_t* indices, const StatsParams& p, StatsResult& out) {
  const int64_t T = p.tokens, E = p.experts;
  for (int64_t s = 0; s < T * p.k; ++s)
    if (indices[s] < -1 || indices[s] > E) return -(2 + s);

  std::fill(out.mean_prob, out.mean_prob + E, 0.0);
  std::fill(out.loads, out.loads + E, 0);
  std::vector<float> row(static_cast<size_t>(E + kLanes)), block(static_cast<size_t>(E + kLanes));
  double z_sum = 0, h_sum = 0;
  int64_t counted = 0;
  for (int64_t t0 = 0; t0 < T; t0 += kFlushRows) {
    const int64_t t1 = std::min(T, t0 + kFlushRows);
    std::fill(block.begin(), block.end(), 0.f);
    const int64_t bad = CAPIBARA_DISPATCH(StatsBlock, logits, t0, t1, E, p.scoring, row.data(), block.data(), &z_sum,
                                          &h_sum, &counted);
    if (bad >= 0) return bad;
    for (int64_t e = 0; e < E; ++e) out.mean_prob[e] += block[e];
  }
  for (int64_t s = 0; s < T * p.k; ++s)
    if (indices[s] >= 0 && indices[s] < E) ++out.loads[indices[s]];

  const double slots = static_cast<double>(T) * p.k;
  double aux = 0, total = 0, max_load = 0;
  for (int64_t e = 0; e < E; ++e) {
    out.mean_prob[e] = counted ? out.mean_prob[e] / static_cast<double>(counted) : 0.0;
    out.load_fraction[e] = slots > 0 ? out.loads[e] / slots : 0.0;
    aux += out.load_fraction[e] * out.mean_prob[e];
    total += out.loads[e];
    max_load = std::max(max_load, static_cast<double>(out.loads[e]));
  }
  const double mean = total / static_cast<double>(E);
  double var = 0;
  for (int64_t e = 0; e < E; ++e) var += (out.loads[e] - mean) * (out.loads[e] - mean);
  var /= static_cast<double>(E);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out.aux_loss = counted && slots > 0 ? static_cast<double>(E) * aux : nan;
  out.z_loss = counted ? z_sum / static_cast<double>(counted) : nan;
  out.entropy = counted ? h_sum / static_cast<double>(counted) : nan;
  out.max_vio = mean > 0 ? (max_load - mean) / mean : nan;
  out.cv2 = mean > 0 ? var / (mean * mean) : nan;
  out.counted_tokens = counted;
  return -1;
}

}  // namespace gating
}  // namespace capibara
