// Router balance statistics over one batch: the quantities the Switch, ST-MoE and
// DeepSeek-V3 papers use to judge (and train against) load imbalance.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "gating/kernels.h"

namespace capibara {
namespace gating {

int64_t RouterStats(const float* logits, const int32_t* indices, const StatsParams& p, StatsResult& out) {
  const int64_t T = p.tokens, E = p.experts;
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < T * E; ++i)
    if (!(logits[i] <= FLT_MAX)) return i;
  for (int64_t s = 0; s < T * p.k; ++s)
    if (indices[s] < -1 || indices[s] > E) return -(2 + s);

  std::fill(out.mean_prob, out.mean_prob + E, 0.0);
  std::fill(out.loads, out.loads + E, 0);
  std::vector<double> prob(static_cast<size_t>(E));
  double z_sum = 0, h_sum = 0;
  int64_t counted = 0;
  for (int64_t t = 0; t < T; ++t) {
    const float* x = logits + t * E;
    double m = -inf;
    for (int64_t e = 0; e < E; ++e) m = std::max(m, static_cast<double>(x[e]));
    if (m == -inf) continue;  // every expert masked: no distribution for this token
    ++counted;
    double z = 0;
    for (int64_t e = 0; e < E; ++e) z += std::exp(static_cast<double>(x[e]) - m);
    const double lse = m + std::log(z);
    z_sum += lse * lse;
    double norm = 0;
    for (int64_t e = 0; e < E; ++e) {
      double v;
      if (p.scoring == Scoring::kSigmoid)
        v = x[e] == -std::numeric_limits<float>::infinity() ? 0.0 : 1.0 / (1.0 + std::exp(-static_cast<double>(x[e])));
      else
        v = std::exp(static_cast<double>(x[e]) - m);
      prob[e] = v;
      norm += v;
    }
    double h = 0;
    for (int64_t e = 0; e < E; ++e) {
      const double q = norm > 0 ? prob[e] / norm : 0.0;
      out.mean_prob[e] += q;
      if (q > 0) h -= q * std::log(q);
    }
    h_sum += h;
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
