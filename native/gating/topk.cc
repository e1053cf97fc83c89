// Fused score -> top-k -> weights, one pass over each row of logits in the common case.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "common/dispatch.h"
#include "common/fastmath.h"
#include "common/parallel.h"
#include "gating/kernels.h"

namespace capibara {
namespace gating {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

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

// One pass over a row: top-k by value, the row max, and whether a NaN/+Inf is present.
// Lanes are independent so the compare/max work vectorizes; only lanes that beat the
// current k-th value fall through to the scalar insertion. Returns the bad column or -1.
CAPIBARA_MULTIVERSION
int64_t ScanRow(const float* x, int64_t n, float* top_v, int32_t* top_i, int k, int* filled, float* row_max) {
  TopK top{top_v, top_i, k, 0};
  float lmax[kLanes];
  for (int l = 0; l < kLanes; ++l) lmax[l] = kNegInf;
  int64_t e = 0;
  for (; e + kLanes <= n; e += kLanes) {
    const float thr = top.Threshold();
    int hit = 0, bad = 0;
    for (int l = 0; l < kLanes; ++l) {
      const float v = x[e + l];
      lmax[l] = v > lmax[l] ? v : lmax[l];
      hit |= v > thr;
      bad |= !(v <= FLT_MAX);
    }
    if (bad) break;
    if (hit) {
      for (int l = 0; l < kLanes; ++l)
        if (x[e + l] > top.Threshold()) top.Push(x[e + l], static_cast<int32_t>(e + l));
    }
  }
  float m = kNegInf;
  for (int l = 0; l < kLanes; ++l) m = lmax[l] > m ? lmax[l] : m;
  for (; e < n; ++e) {
    const float v = x[e];
    if (!(v <= FLT_MAX)) {
      // Reached on the tail or after a bad vector step: report the first bad column.
      for (int64_t j = 0; j < n; ++j)
        if (!(x[j] <= FLT_MAX)) return j;
    }
    m = v > m ? v : m;
    if (v > top.Threshold()) top.Push(v, static_cast<int32_t>(e));
  }
  *filled = top.filled;
  *row_max = m;
  return -1;
}

CAPIBARA_MULTIVERSION
float ExpSum(const float* x, int64_t n, float m) {
  float acc[kLanes] = {};
  int64_t e = 0;
  for (; e + kLanes <= n; e += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += FastExp(x[e + l] - m);
  float s = 0.f;
  for (; e < n; ++e) s += FastExp(x[e] - m);
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

// score[e] = the unbiased router score (softmax probability or sigmoid); masked -> 0.
// Returns the bad column or -1.
CAPIBARA_MULTIVERSION
int64_t Scores(const float* x, int64_t n, Scoring scoring, float* score) {
  for (int64_t e = 0; e < n; ++e)
    if (!(x[e] <= FLT_MAX)) return e;
  if (scoring == Scoring::kSigmoid) {
    for (int64_t e = 0; e < n; ++e) {
      const float s = 1.f / (1.f + FastExp(-x[e]));
      score[e] = x[e] == kNegInf ? 0.f : s;
    }
    return -1;
  }
  float m = kNegInf;
  for (int64_t e = 0; e < n; ++e) m = x[e] > m ? x[e] : m;
  if (m == kNegInf) {
    std::fill(score, score + n, 0.f);
    return -1;
  }
  float z = 0.f;
  for (int64_t e = 0; e < n; ++e) {
    score[e] = FastExp(x[e] - m);
    z += score[e];
  }
  const float inv = 1.f / z;
  for (int64_t e = 0; e < n; ++e) score[e] *= inv;
  return -1;
}

struct Scratch {
  std::vector<float> top_v, score, select, group_v;
  std::vector<int32_t> top_i, group_i;
  std::vector<uint8_t> group_on;
};

// Writes one token's weights from the unbiased scores of its winners.
inline void Finish(const TopkParams& p, const float* win_score, const int32_t* win_idx, int filled, float* w,
                   int32_t* idx) {
  double sum = 0;
  for (int j = 0; j < filled; ++j) sum += win_score[j];
  const double norm = (p.renormalize && sum > 0) ? p.route_scale / sum : p.route_scale;
  for (int j = 0; j < filled; ++j) {
    const int32_t e = win_idx[j];
    w[j] = static_cast<float>(win_score[j] * norm);
    idx[j] = (e >= p.range_start && e < p.range_end) ? e : static_cast<int32_t>(p.experts);
  }
  for (int j = filled; j < p.k; ++j) {
    w[j] = 0.f;
    idx[j] = -1;
  }
}

// Fast path: no bias and no groups, so selection on raw logits equals selection on scores.
int64_t RowFast(const float* x, const TopkParams& p, Scratch& s, float* w, int32_t* idx) {
  int filled = 0;
  float m = 0;
  const int64_t bad = ScanRow(x, p.experts, s.top_v.data(), s.top_i.data(), p.k, &filled, &m);
  if (bad >= 0) return bad;
  float* win = s.top_v.data();
  if (p.scoring == Scoring::kSigmoid) {
    for (int j = 0; j < filled; ++j) win[j] = 1.f / (1.f + FastExp(-win[j]));
  } else if (filled > 0) {
    const float z = p.renormalize ? 1.f : ExpSum(x, p.experts, m);
    for (int j = 0; j < filled; ++j) win[j] = FastExp(win[j] - m) / z;
  }
  Finish(p, win, s.top_i.data(), filled, w, idx);
  return -1;
}

// General path: scores for every expert, selection on score + bias, optional group limit.
int64_t RowGeneral(const float* x, const TopkParams& p, Scratch& s, float* w, int32_t* idx) {
  const int64_t n = p.experts;
  const int64_t bad = Scores(x, n, p.scoring, s.score.data());
  if (bad >= 0) return bad;
  float* sel = s.select.data();
  for (int64_t e = 0; e < n; ++e) sel[e] = x[e] == kNegInf ? kNegInf : s.score[e] + (p.bias ? p.bias[e] : 0.f);

  if (p.groups > 1) {
    const int64_t g_size = n / p.groups;
    TopK groups{s.group_v.data(), s.group_i.data(), p.topk_groups, 0};
    for (int32_t g = 0; g < p.groups; ++g) {
      float a = kNegInf, b = kNegInf;  // best and second best of the group
      for (int64_t e = g * g_size; e < (g + 1) * g_size; ++e) {
        if (sel[e] > a) {
          b = a;
          a = sel[e];
        } else if (sel[e] > b) {
          b = sel[e];
        }
      }
      float gs = a;
      if (p.group_score == GroupScore::kTop2Sum && b != kNegInf) gs = a + b;
      if (gs > groups.Threshold()) groups.Push(gs, g);
    }
    std::fill(s.group_on.begin(), s.group_on.end(), 0);
    for (int j = 0; j < groups.filled; ++j) s.group_on[s.group_i[j]] = 1;
    for (int64_t e = 0; e < n; ++e)
      if (!s.group_on[e / g_size]) sel[e] = kNegInf;
  }

  TopK top{s.top_v.data(), s.top_i.data(), p.k, 0};
  for (int64_t e = 0; e < n; ++e)
    if (sel[e] > top.Threshold()) top.Push(sel[e], static_cast<int32_t>(e));
  for (int j = 0; j < top.filled; ++j) s.top_v[j] = s.score[s.top_i[j]];
  Finish(p, s.top_v.data(), s.top_i.data(), top.filled, w, idx);
  return -1;
}

}  // namespace

TopkStatus TopkGating(const float* logits, const TopkParams& p, float* weights, int32_t* indices) {
  const bool general = p.bias != nullptr || p.groups > 1;
  std::mutex mu;
  int64_t first_bad = -1;
  const int threads = ThreadsFor(p.tokens * p.experts, p.threads);
  ParallelFor(p.tokens, threads, [&](int64_t begin, int64_t end) {
    Scratch s;
    s.top_v.resize(p.k);
    s.top_i.resize(p.k);
    if (general) {
      s.score.resize(p.experts);
      s.select.resize(p.experts);
      s.group_v.resize(p.topk_groups);
      s.group_i.resize(p.topk_groups);
      s.group_on.resize(p.groups);
    }
    for (int64_t t = begin; t < end; ++t) {
      const float* x = logits + t * p.experts;
      float* w = weights + t * p.k;
      int32_t* idx = indices + t * p.k;
      const int64_t bad = general ? RowGeneral(x, p, s, w, idx) : RowFast(x, p, s, w, idx);
      if (bad >= 0) {
        std::lock_guard<std::mutex> lock(mu);
        const int64_t flat = t * p.experts + bad;
        if (first_bad < 0 || flat < first_bad) first_bad = flat;
        return;
      }
    }
  });
  return TopkStatus{first_bad};
}

CAPIBARA_MULTIVERSION
double FloorMaxSum(const float* logits, int64_t tokens, int64_t experts) {
  double total = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    const float* x = logits + t * experts;
    float lmax[kLanes], lsum[kLanes] = {};
    for (int l = 0; l < kLanes; ++l) lmax[l] = kNegInf;
    int64_t e = 0;
    for (; e + kLanes <= experts; e += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        lmax[l] = x[e + l] > lmax[l] ? x[e + l] : lmax[l];
        lsum[l] += x[e + l];
      }
    float m = kNegInf, s = 0;
    for (; e < experts; ++e) {
      m = x[e] > m ? x[e] : m;
      s += x[e];
    }
    for (int l = 0; l < kLanes; ++l) {
      m = lmax[l] > m ? lmax[l] : m;
      s += lsum[l];
    }
    total += m + s;
  }
  return total;
}

CAPIBARA_MULTIVERSION
double FloorSoftmaxNormaliser(const float* logits, int64_t tokens, int64_t experts) {
  double total = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    const float* x = logits + t * experts;
    float lmax[kLanes];
    for (int l = 0; l < kLanes; ++l) lmax[l] = kNegInf;
    int64_t e = 0;
    for (; e + kLanes <= experts; e += kLanes)
      for (int l = 0; l < kLanes; ++l) lmax[l] = x[e + l] > lmax[l] ? x[e + l] : lmax[l];
    float m = kNegInf;
    for (; e < experts; ++e) m = x[e] > m ? x[e] : m;
    for (int l = 0; l < kLanes; ++l) m = lmax[l] > m ? lmax[l] : m;
    total += ExpSum(x, experts, m);
  }
  return total;
}

}  // namespace gating
}  // namespace capibara
