// MoE gating on the device: one thread per token, the CPU kernel's math step for step
// (native/gating/topk_rows.inc): max and the NaN/+Infinity check, softmax numerators or sigmoids
// (math.cuh), DeepSeek-V3 selection on score + bias with group-limited routing (a group scores
// the sum of its two best, the topk_groups best groups stay, ties to the lower group), top-k by
// strict insertion (ties to the lower expert, vLLM topk_softmax's order), weights renormalised over
// the winners or divided by the softmax normaliser, times route_scale. A row is re-read from
// global memory (L1) in each pass rather than held per thread, so any expert count fits.
#include <cfloat>
#include <cstdint>

#include "cuda/gating_row.cuh"
#include "cuda/kernels.h"

namespace capibara {
namespace cuda {
namespace {

template <int KMAX>
__global__ void TopkKernel(const float* __restrict__ logits, const float* __restrict__ bias, GatingParams p,
                           float* __restrict__ weights, int32_t* __restrict__ indices, unsigned long long* bad) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= p.tokens) return;
  const int64_t e = gating_row::TopkRow<KMAX>(logits + t * p.experts, bias, p, weights + t * p.k, indices + t * p.k);
  if (e >= 0) atomicMin(bad, static_cast<unsigned long long>(t * p.experts + e));
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
