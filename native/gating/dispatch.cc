// Capacity-limited dispatch plan: which token slots each expert receives, grouped and
// padded to a block size so grouped GEMMs can run over fixed-size tiles (vLLM's
// moe_align_block_size), with DeepSpeed-style dropping when a capacity is set.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "gating/kernels.h"

namespace capibara {
namespace gating {

DispatchPlanner::DispatchPlanner(const int32_t* indices, const DispatchParams& p)
    : indices_(indices),
      p_(p),
      keep_(static_cast<size_t>(p.tokens * p.k)),
      counts_(static_cast<size_t>(p.experts)),
      loads_(static_cast<size_t>(p.experts)) {}

// Keeps slot s if its expert still has room, else drops it.
void DispatchPlanner::Admit(int64_t s) {
  int32_t& c = counts_[indices_[s]];
  if (c < p_.capacity) {
    ++c;
  } else {
    keep_[s] = 0;
    ++dropped_count_;
  }
}

int64_t DispatchPlanner::Plan() {
  const int64_t slots = p_.tokens * p_.k;
  const int32_t E = p_.experts;
  std::fill(loads_.begin(), loads_.end(), 0);
  for (int64_t s = 0; s < slots; ++s) {
    const int32_t e = indices_[s];
    if (e < -1 || e > E) return s;
    const bool routed = e >= 0 && e < E;
    keep_[s] = routed ? 1 : -1;
    if (routed) ++loads_[e];
  }
  dropped_count_ = 0;
  if (p_.capacity < 0) {
    counts_ = loads_;
  } else if (p_.policy == DropPolicy::kPosition) {
    // GShard/DeepSpeed priority: every token's first choice before any second choice,
    // tokens in order within a choice rank.
    std::fill(counts_.begin(), counts_.end(), 0);
    for (int32_t j = 0; j < p_.k; ++j)
      for (int64_t s = j; s < slots; s += p_.k)
        if (keep_[s] == 1) Admit(s);
  } else {
    // Highest weight first within each expert; equal weights keep the earlier slot.
    std::fill(counts_.begin(), counts_.end(), 0);
    std::vector<int64_t> order;
    order.reserve(static_cast<size_t>(slots));
    for (int64_t s = 0; s < slots; ++s)
      if (keep_[s] == 1) order.push_back(s);
    const float* w = p_.weights;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      const int32_t ea = indices_[a], eb = indices_[b];
      if (ea != eb) return ea < eb;
      return w[a] > w[b];
    });
    for (int64_t s : order) Admit(s);
  }
  padded_total_ = 0;
  for (int32_t e = 0; e < E; ++e)
    padded_total_ += (static_cast<int64_t>(counts_[e]) + p_.block_size - 1) / p_.block_size * p_.block_size;
  return -1;
}

void DispatchPlanner::Fill(DispatchResult& out) const {
  const int64_t slots = p_.tokens * p_.k;
  const int32_t E = p_.experts;
  out.offsets[0] = 0;
  for (int32_t e = 0; e < E; ++e) {
    out.loads[e] = loads_[e];
    out.counts[e] = counts_[e];
    const int32_t padded = (counts_[e] + p_.block_size - 1) / p_.block_size * p_.block_size;
    out.offsets[e + 1] = out.offsets[e] + padded;
    // Only the padding at the end of each segment needs the sentinel; the rest is written below.
    std::fill(out.permutation + out.offsets[e] + counts_[e], out.permutation + out.offsets[e + 1], -1);
  }
  std::vector<int32_t> cursor(out.offsets, out.offsets + E);
  int64_t d = 0;
  for (int64_t s = 0; s < slots; ++s) {
    const int8_t k = keep_[s];
    int32_t pos = -1;
    if (k == 1) {
      pos = cursor[indices_[s]]++;
      out.permutation[pos] = static_cast<int32_t>(s);
    } else if (k == 0) {
      out.dropped[d++] = static_cast<int32_t>(s);
    }
    out.slot_position[s] = pos;
  }
}

}  // namespace gating
}  // namespace capibara
