// The gating kernel's per-token logic (gating.cu), host- and device-callable: the CPU kernel's
// math step for step (native/gating/topk_rows.inc). See gating.cu.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "cuda/kernels.h"
#include "cuda/math.cuh"

namespace capibara {
namespace cuda {
namespace gating_row {

constexpr float kNegInf = -__builtin_huge_valf();

// The k best (value, index) pairs, best first; strictly greater values go ahead.
template <int KMAX>
struct Top {
  float v[KMAX];
  int32_t i[KMAX];
  CAPIBARA_HD void Init() {
#pragma unroll
    for (int j = 0; j < KMAX; ++j) {
      v[j] = kNegInf;
      i[j] = -1;
    }
  }
  // InsertLevels of the CPU tiles: x goes to the first level it strictly beats.
  CAPIBARA_HD void Insert(float x, int32_t e, int k) {
    if (!(x > v[k - 1])) return;
#pragma unroll
    for (int j = KMAX - 1; j >= 1; --j) {
      if (j < k) {
        const bool above = x > v[j - 1];
        if (above) {
          v[j] = v[j - 1];
          i[j] = i[j - 1];
        } else if (x > v[j]) {
          v[j] = x;
          i[j] = e;
        }
      }
    }
    if (x > v[0]) {
      v[0] = x;
      i[0] = e;
    }
  }
};

CAPIBARA_HD float Score(float x, float m, float inv, int32_t scoring) {
  if (scoring == 1) return x < -FLT_MAX ? 0.f : Sigmoid(x);
  return ExpNonPositive(x - m) * inv;
}

// Σ_e f(e) in the CPU's order: expert order (tiles) or 16 interleaved partials then a tree (rows).
template <typename F>
CAPIBARA_HD float RowSum(int32_t E, bool sum16, F f) {
  if (!sum16) {
    float z = 0.f;
    for (int32_t e = 0; e < E; ++e) z = z + f(e);
    return z;
  }
  float a[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) a[i] = 0.f;
  for (int32_t e = 0; e < E; e += 16) {
#pragma unroll
    for (int i = 0; i < 16; ++i)
      if (e + i < E) a[i] = a[i] + f(e + i);
  }
#pragma unroll
  for (int w = 8; w >= 1; w /= 2)
#pragma unroll
    for (int i = 0; i < w; ++i) a[i] += a[i + w];
  return a[0];
}

// One token's routing: x its E logits, w/idx its k outputs. Returns the column of the first NaN
// or +Infinity logit (outputs then unwritten), or -1.
template <int KMAX>
CAPIBARA_HD int64_t TopkRow(const float* __restrict__ x, const float* __restrict__ bias, const GatingParams& p,
                            float* __restrict__ w, int32_t* __restrict__ idx) {
  const int32_t E = p.experts, k = p.k;
  float m = kNegInf;
  for (int32_t e = 0; e < E; ++e) {
    const float v = CAPIBARA_LDG(x + e);
    if (v != v || v == -kNegInf) return e;  // NaN or +Infinity
    m = fmaxf(m, v);
  }
  const bool general = bias != nullptr || p.groups > 1;
  Top<KMAX> top;
  top.Init();
  float norm = p.route_scale;
  float win[KMAX];
  if (!general) {
    // Selection on the logits themselves (score order), masked (-Infinity) never qualifies.
    for (int32_t e = 0; e < E; ++e) top.Insert(CAPIBARA_LDG(x + e), e, k);
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < KMAX; ++j) {
      win[j] = 0.f;
      if (j < k && top.i[j] >= 0) win[j] = p.scoring == 1 ? Sigmoid(top.v[j]) : ExpNonPositive(top.v[j] - m);
      sum += win[j];
    }
    if (p.renormalize) {
      if (sum > 0) norm = norm / sum;
    } else if (p.scoring == 0 && m != kNegInf) {
      const float z = RowSum(E, p.sum16, [&](int32_t e) { return ExpNonPositive(CAPIBARA_LDG(x + e) - m); });
      norm = norm / z;
    }
  } else {
    float inv = 1.f, ms = m;
    if (p.scoring == 0) {
      if (m == kNegInf) {
        ms = 0.f;  // every expert masked: every score 0
        inv = 0.f;
      } else {
        const float z = RowSum(E, p.sum16, [&](int32_t e) { return ExpNonPositive(CAPIBARA_LDG(x + e) - ms); });
        inv = z > 0.f ? 1.f / z : 0.f;
      }
    }
    auto select = [&](int32_t e) {
      const float v = CAPIBARA_LDG(x + e);
      if (v < -FLT_MAX) return kNegInf;
      return Score(v, ms, inv, p.scoring) + (bias != nullptr ? CAPIBARA_LDG(bias + e) : 0.f);
    };
    unsigned long long on = ~0ull;  // groups kept
    if (p.groups > 1) {
      const int32_t size = E / p.groups;
      float gv[kMaxDeviceGroups];
      int32_t gi[kMaxDeviceGroups];
      int filled = 0;
      for (int32_t g = 0; g < p.groups; ++g) {
        float a = kNegInf, b = kNegInf;
        for (int32_t e = g * size; e < (g + 1) * size; ++e) {
          const float s = select(e);
          b = fmaxf(b, fminf(a, s));
          a = fmaxf(a, s);
        }
        const float score = (p.group_score == 0 && b != kNegInf) ? a + b : a;
        const float threshold = filled < p.topk_groups ? kNegInf : gv[p.topk_groups - 1];
        if (!(score > threshold)) continue;
        int pos = filled < p.topk_groups ? filled++ : p.topk_groups - 1;
        while (pos > 0 && gv[pos - 1] < score) {
          gv[pos] = gv[pos - 1];
          gi[pos] = gi[pos - 1];
          --pos;
        }
        gv[pos] = score;
        gi[pos] = g;
      }
      on = 0;
      for (int j = 0; j < filled; ++j) on |= 1ull << gi[j];
      for (int32_t e = 0; e < E; ++e)
        if ((on >> (e / size)) & 1) top.Insert(select(e), e, k);
    } else {
      for (int32_t e = 0; e < E; ++e) top.Insert(select(e), e, k);
    }
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < KMAX; ++j) {
      win[j] = 0.f;
      if (j < k && top.i[j] >= 0) win[j] = Score(CAPIBARA_LDG(x + top.i[j]), ms, inv, p.scoring);
      sum += win[j];
    }
    if (p.renormalize && sum > 0) norm = norm / sum;
  }
#pragma unroll
  for (int j = 0; j < KMAX; ++j) {
    if (j >= k) break;
    const int32_t e = top.i[j];
    w[j] = e < 0 ? 0.f : win[j] * norm;
    idx[j] = e < 0 ? -1 : (e >= p.range_start && e < p.range_end) ? e : E;
  }
  return -1;
}

}  // namespace gating_row
}  // namespace cuda
}  // namespace capibara
