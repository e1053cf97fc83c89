// DuoAttention decode on the device (flash-decoding split-K). Each KV head's rows live in one
// device buffer of float16 or bfloat16: a retrieval head's row p is position p; a streaming head
// keeps `sink` rows and a ring of `ring` rows (position p >= sink at row sink + (p - sink) % ring).
// A block takes one KV head, up to 4 or 8 of its query heads (GQA: they share every key load), one
// query and one split of the positions that query sees; it scores a tile of 128 keys (a thread
// per key, 16-byte loads), updates a running max and sum per query head, and accumulates the
// values (a thread per pair of columns). A second kernel merges the splits by their log-sum-exp.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "cuda/kernels.h"

namespace capibara {
namespace cuda {
namespace {

constexpr int kThreads = 128;  // also the keys per tile
constexpr float kNegInf = -__builtin_huge_valf();

__device__ __forceinline__ float2 ToFloat2(__half2 x) { return __half22float2(x); }
__device__ __forceinline__ float2 ToFloat2(__nv_bfloat162 x) { return __bfloat1622float2(x); }
template <typename T> struct Pair;
template <> struct Pair<__half> { using type = __half2; };
template <> struct Pair<__nv_bfloat16> { using type = __nv_bfloat162; };
__device__ __forceinline__ void Store(__half* d, float x) { *d = __float2half_rn(x); }
__device__ __forceinline__ void Store(__nv_bfloat16* d, float x) { *d = __float2bfloat16_rn(x); }

// The visible positions of a query at position P, as a logical range [0, count).
struct Visible {
  int64_t count, sink_count, window_start;
  int32_t sink, ring;
  bool streaming;
  __device__ Visible(bool s, int64_t P, int32_t sink_, int32_t recent, int32_t ring_) : sink(sink_), ring(ring_), streaming(s) {
    if (!s) {
      count = P + 1;
      sink_count = 0;
      window_start = 0;
      return;
    }
    sink_count = min(static_cast<int64_t>(sink), static_cast<int64_t>(P + 1));
    window_start = max(static_cast<int64_t>(sink), static_cast<int64_t>(P - recent + 1));
    count = sink_count + (P + 1 > window_start ? P + 1 - window_start : 0);
  }
  // Row of logical index i.
  __device__ __forceinline__ int64_t Row(int64_t i) const {
    if (!streaming) return i;
    if (i < sink_count) return i;
    const int64_t p = window_start + (i - sink_count);
    return sink + (p - sink) % ring;
  }
};

template <typename T>
__global__ void StoreKernel(const void* src_k, const void* src_v, KvHeadTable heads, KvStoreParams p) {
  const int32_t i = blockIdx.x, h = blockIdx.y;
  const int64_t P = p.pos0 + i;
  int64_t row = P;
  if (heads.streaming[h]) {
    if (P < p.sink) row = P;
    else if (P >= p.pos0 + p.n - p.ring) row = p.sink + (P - p.sink) % p.ring;
    else return;  // a later position of this call takes its ring slot
  }
  const int64_t src = (static_cast<int64_t>(i) * p.kv_heads + h) * p.dim;
  T* dk = static_cast<T*>(heads.k[h]) + row * p.dim;
  T* dv = static_cast<T*>(heads.v[h]) + row * p.dim;
  for (int32_t d = threadIdx.x; d < p.dim; d += blockDim.x) {
    if (p.src_f16) {
      dk[d] = static_cast<const T*>(src_k)[src + d];
      dv[d] = static_cast<const T*>(src_v)[src + d];
    } else {
      Store(dk + d, static_cast<const float*>(src_k)[src + d]);
      Store(dv + d, static_cast<const float*>(src_v)[src + d]);
    }
  }
}

template <typename T, int kGroup>
__global__ void __launch_bounds__(kThreads) PartialKernel(const float* __restrict__ q, KvHeadTable heads, AttendParams p,
                                                          float* __restrict__ partial) {
  extern __shared__ float shared[];
  const int32_t D = p.dim, G = p.query_heads / p.kv_heads;
  const int32_t gchunks = (G + kGroup - 1) / kGroup;
  const int32_t split = blockIdx.x, h = blockIdx.y, t = blockIdx.z / gchunks, g0 = (blockIdx.z % gchunks) * kGroup;
  const int32_t gc = min(kGroup, G - g0);
  float* qs = shared;                      // [kGroup][D]
  float* ps = qs + kGroup * D;             // [kGroup][kThreads] scores, then weights
  float* red = ps + kGroup * kThreads;     // [kThreads / (D/2)][kGroup][D]
  float* ms = red + 2 * kGroup * kThreads;  // [kGroup] running max
  float* ls = ms + kGroup;                 // [kGroup] running sum
  float* alpha = ls + kGroup;              // [kGroup] rescale of the tile
  __shared__ int64_t rows[kThreads];

  const int64_t P = p.pos0 + t;
  const Visible vis(heads.streaming[h] != 0, P, p.sink, p.recent, p.ring);
  const int64_t begin = static_cast<int64_t>(split) * p.split;
  const int64_t end = min(static_cast<int64_t>(vis.count), static_cast<int64_t>(begin + p.split));
  for (int32_t i = threadIdx.x; i < kGroup * D; i += kThreads) {
    const int32_t g = i / D, d = i % D;
    qs[i] = g < gc ? q[(static_cast<int64_t>(t) * p.query_heads + h * G + g0 + g) * D + d] * p.scale : 0.f;
  }
  if (threadIdx.x < kGroup) {
    ms[threadIdx.x] = kNegInf;
    ls[threadIdx.x] = 0.f;
  }
  const T* kbase = static_cast<const T*>(heads.k[h]);
  const T* vbase = static_cast<const T*>(heads.v[h]);
  using T2 = typename Pair<T>::type;
  const int32_t C = D / 2;  // value columns as pairs
  const int32_t nkg = kThreads / C;
  const int32_t kg = threadIdx.x / C, col = threadIdx.x % C;
  float acc[kGroup][2];
#pragma unroll
  for (int g = 0; g < kGroup; ++g) acc[g][0] = acc[g][1] = 0.f;
  __syncthreads();

  for (int64_t tile = begin; tile < end; tile += kThreads) {
    const int32_t n = static_cast<int32_t>(min(static_cast<int64_t>(kThreads), static_cast<int64_t>(end - tile)));
    // Scores: a thread per key.
    {
      float s[kGroup];
#pragma unroll
      for (int g = 0; g < kGroup; ++g) s[g] = 0.f;
      if (static_cast<int32_t>(threadIdx.x) < n) {
        const int64_t row = vis.Row(tile + threadIdx.x);
        rows[threadIdx.x] = row;
        const uint4* kr = reinterpret_cast<const uint4*>(kbase + row * D);
#pragma unroll 4
        for (int32_t c = 0; c < D / 8; ++c) {
          const uint4 raw = __ldg(kr + c);
          const T2* pair = reinterpret_cast<const T2*>(&raw);
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const float2 kf = ToFloat2(pair[j]);
            const int32_t d = c * 8 + 2 * j;
#pragma unroll
            for (int g = 0; g < kGroup; ++g) s[g] += qs[g * D + d] * kf.x + qs[g * D + d + 1] * kf.y;
          }
        }
      }
#pragma unroll
      for (int g = 0; g < kGroup; ++g) ps[g * kThreads + threadIdx.x] = static_cast<int32_t>(threadIdx.x) < n ? s[g] : kNegInf;
    }
    __syncthreads();
    // Running max and sum per query head: warp w takes heads w and w + 4.
    const int32_t warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int32_t g = warp; g < gc; g += kThreads / 32) {
      float* row = ps + g * kThreads;
      float mx = kNegInf;
      for (int32_t j = lane; j < kThreads; j += 32) mx = fmaxf(mx, row[j]);
      for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const float m_new = fmaxf(ms[g], mx);
      float sum = 0.f;
      for (int32_t j = lane; j < kThreads; j += 32) {
        const float e = row[j] == kNegInf ? 0.f : expf(row[j] - m_new);
        row[j] = e;
        sum += e;
      }
      for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (lane == 0) {
        const float a = ms[g] == kNegInf ? 0.f : expf(ms[g] - m_new);
        alpha[g] = a;
        ls[g] = ls[g] * a + sum;
        ms[g] = m_new;
      }
    }
    __syncthreads();
    // Values: a thread per pair of columns and every nkg-th key of the tile.
    if (kg < nkg) {
#pragma unroll
      for (int g = 0; g < kGroup; ++g) {
        const float a = g < gc ? alpha[g] : 0.f;
        acc[g][0] *= a;
        acc[g][1] *= a;
      }
#pragma unroll 4
      for (int32_t j = kg; j < n; j += nkg) {
        const float2 vf = ToFloat2(reinterpret_cast<const T2*>(vbase + rows[j] * D)[col]);
#pragma unroll
        for (int g = 0; g < kGroup; ++g) {
          const float w = ps[g * kThreads + j];
          acc[g][0] += w * vf.x;
          acc[g][1] += w * vf.y;
        }
      }
    }
    __syncthreads();
  }
  // Sum the key groups' accumulators, then write [acc (D), max, sum] per query head.
  if (kg < nkg) {
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      red[(kg * kGroup + g) * D + 2 * col] = acc[g][0];
      red[(kg * kGroup + g) * D + 2 * col + 1] = acc[g][1];
    }
  }
  __syncthreads();
  for (int32_t i = threadIdx.x; i < gc * D; i += kThreads) {
    const int32_t g = i / D, d = i % D;
    float a = 0.f;
    for (int32_t j = 0; j < nkg; ++j) a += red[(j * kGroup + g) * D + d];
    const int64_t head = static_cast<int64_t>(t) * p.query_heads + h * G + g0 + g;
    float* out = partial + (head * p.splits + split) * (D + 2);
    out[d] = a;
    if (d == 0) {
      out[D] = ms[g];
      out[D + 1] = ls[g];
    }
  }
}

// Merges a query head's splits: out = Σ acc_s e^(m_s - M) / Σ l_s e^(m_s - M), lse = M + log(Σ ...).
__global__ void CombineKernel(const float* __restrict__ partial, AttendParams p, float* __restrict__ out, float* lse) {
  const int64_t head = blockIdx.x;
  const int32_t D = p.dim;
  const float* base = partial + head * p.splits * (D + 2);
  float M = kNegInf;
  for (int32_t s = 0; s < p.splits; ++s) M = fmaxf(M, base[s * (D + 2) + D]);
  float L = 0.f;
  for (int32_t s = 0; s < p.splits; ++s) {
    const float m = base[s * (D + 2) + D];
    if (m != kNegInf) L += base[s * (D + 2) + D + 1] * expf(m - M);
  }
  for (int32_t d = threadIdx.x; d < D; d += blockDim.x) {
    float a = 0.f;
    for (int32_t s = 0; s < p.splits; ++s) {
      const float m = base[s * (D + 2) + D];
      if (m != kNegInf) a += base[s * (D + 2) + d] * expf(m - M);
    }
    out[head * D + d] = a / L;
  }
  if (lse != nullptr && threadIdx.x == 0) lse[head] = M + logf(L);
}

}  // namespace

cudaError_t KvStore(const void* src_k, const void* src_v, const KvHeadTable& heads, const KvStoreParams& p,
                    cudaStream_t stream) {
  if (p.n == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(p.n), static_cast<unsigned>(p.kv_heads));
  if (p.type == KvType::kF16) StoreKernel<__half><<<grid, 128, 0, stream>>>(src_k, src_v, heads, p);
  else StoreKernel<__nv_bfloat16><<<grid, 128, 0, stream>>>(src_k, src_v, heads, p);
  return cudaGetLastError();
}

int64_t AttendScratch(const AttendParams& p) {
  return static_cast<int64_t>(p.splits) * p.queries * p.query_heads * (p.dim + 2);
}

cudaError_t Attend(const float* q, const KvHeadTable& heads, const AttendParams& p, float* scratch, float* out,
                   float* lse, cudaStream_t stream) {
  const int32_t G = p.query_heads / p.kv_heads;
  const int32_t group = QueryHeadsPerBlock(G);
  const int32_t gchunks = (G + group - 1) / group;
  const dim3 grid(static_cast<unsigned>(p.splits), static_cast<unsigned>(p.kv_heads),
                  static_cast<unsigned>(p.queries * gchunks));
  const size_t shared = sizeof(float) * (group * p.dim + group * kThreads + 2 * group * kThreads + 3 * group);
  if (p.type == KvType::kF16) {
    if (group == 4) PartialKernel<__half, 4><<<grid, kThreads, shared, stream>>>(q, heads, p, scratch);
    else PartialKernel<__half, 8><<<grid, kThreads, shared, stream>>>(q, heads, p, scratch);
  } else {
    if (group == 4) PartialKernel<__nv_bfloat16, 4><<<grid, kThreads, shared, stream>>>(q, heads, p, scratch);
    else PartialKernel<__nv_bfloat16, 8><<<grid, kThreads, shared, stream>>>(q, heads, p, scratch);
  }
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  CombineKernel<<<static_cast<unsigned>(p.queries * p.query_heads), 128, 0, stream>>>(scratch, p, out, lse);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace capibara
