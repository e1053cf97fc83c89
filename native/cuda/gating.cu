// MoE gating on the device: one thread per token, the CPU kernel's math step for step
// (native/gating/topk_rows.inc): max and the NaN/+Infinity check, softmax numerators or sigmoids
// (math.cuh), DeepSeek-V3 selection on score + bias with group-limited routing (a group scores
// the sum of its two best, the topk_groups best groups stay, ties to the lower group), top-k by
// strict insertion (ties to the lower expert, vLLM topk_softmax's order), weights renormalised over
// the winners or divided by the softmax normaliser, times route_scale. A row is re-read from
// global memory (L1) in each pass rather than held per thread, so any expert count fits.
#include <cfloat>
#include <cstdint>

#include "cuda/kernels.h"
#include "cuda/math.cuh"

namespace capibara {
namespace cuda {
namespace {

constexpr float kNegInf = -__builtin_huge_valf();

// The k best (value, index) pairs, best first; strictly greater values go ahead.
template <int KMAX>
struct Top {
  float v[KMAX];
  int32_t i[KMAX];
  __device__ __forceinline__ void Init() {
#pragma unroll
    for (int j = 0; j < KMAX; ++j) {
      v[j] = kNegInf;
      i[j] = -1;
    }
  }
  // InsertLevels of the CPU tiles: x goes to the first level it strictly beats.
  __device__ __forceinline__ void Insert(float x, int32_t e, int k) {
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

__device__ __forceinline__ float Score(float x, float m, float inv, int32_t scoring) {
  if (scoring == 1) return x < -FLT_MAX ? 0.f : Sigmoid(x);
  return ExpNonPositive(x - m) * inv;
}

// Σ_e f(e) in the CPU's order: expert order (tiles) or 16 interleaved partials then a tree (rows).
template <typename F>
__device__ __forceinline__ float RowSum(int32_t E, bool sum16, F f) {
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

template <int KMAX>
__global__ void TopkKernel(const float* __restrict__ logits, const float* __restrict__ bias, GatingParams p,
                           float* __restrict__ weights, int32_t* __restrict__ indices, unsigned long long* bad) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= p.tokens) return;
  const int32_t E = p.experts, k = p.k;
  const float* x = logits + t * E;
  float m = kNegInf;
  for (int32_t e = 0; e < E; ++e) {
    const float v = __ldg(x + e);
    if (isnan(v) || v == -kNegInf) {
      atomicMin(bad, static_cast<unsigned long long>(t * E + e));
      return;
    }
    m = fmaxf(m, v);
  }
  const bool general = bias != nullptr || p.groups > 1;
  Top<KMAX> top;
  top.Init();
  float norm = p.route_scale;
  float win[KMAX];
  if (!general) {
    // Selection on the logits themselves (score order), masked (-Infinity) never qualifies.
    for (int32_t e = 0; e < E; ++e) top.Insert(__ldg(x + e), e, k);
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
      const float z = RowSum(E, p.sum16, [&](int32_t e) { return ExpNonPositive(__ldg(x + e) - m); });
      norm = norm / z;
    }
  } else {
    float inv = 1.f, ms = m;
    if (p.scoring == 0) {
      if (m == kNegInf) {
        ms = 0.f;  // every expert masked: every score 0
        inv = 0.f;
      } else {
        const float z = RowSum(E, p.sum16, [&](int32_t e) { return ExpNonPositive(__ldg(x + e) - ms); });
        inv = z > 0.f ? 1.f / z : 0.f;
      }
    }
    auto select = [&](int32_t e) {
      const float v = __ldg(x + e);
      if (v < -FLT_MAX) return kNegInf;
      return Score(v, ms, inv, p.scoring) + (bias != nullptr ? __ldg(bias + e) : 0.f);
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
      if (j < k && top.i[j] >= 0) win[j] = Score(__ldg(x + top.i[j]), ms, inv, p.scoring);
      sum += win[j];
    }
    if (p.renormalize && sum > 0) norm = norm / sum;
  }
  float* w = weights + t * k;
  int32_t* idx = indices + t * k;
#pragma unroll
  for (int j = 0; j < KMAX; ++j) {
    if (j >= k) break;
    const int32_t e = top.i[j];
    w[j] = e < 0 ? 0.f : win[j] * norm;
    idx[j] = e < 0 ? -1 : (e >= p.range_start && e < p.range_end) ? e : E;
  }
}

}  // namespace

cudaError_t GatingTopk(const float* logits, const float* bias, const GatingParams& p, float* weights, int32_t* indices,
                       unsigned long long* bad, cudaStream_t stream) {
  if (p.tokens == 0) return cudaSuccess;
  const int threads = 128;
  const unsigned blocks = static_cast<unsigned>((p.tokens + threads - 1) / threads);
  if (p.k <= 8)
    TopkKernel<8><<<blocks, threads, 0, stream>>>(logits, bias, p, weights, indices, bad);
  else
    TopkKernel<kMaxDeviceK><<<blocks, threads, 0, stream>>>(logits, bias, p, weights, indices, bad);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace capibara
