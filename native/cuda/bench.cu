// Benchmark references on the device: a copy (the bandwidth floor) and the plain gating baseline
// the benchmark compares the fused kernel with (softmax of the whole row written out, then a full
// sort of each row).
#include <cfloat>
#include <cstdint>

#include "cuda/kernels.h"

namespace capibara {
namespace cuda {
namespace {

__global__ void CopyKernel(uint4* __restrict__ dst, const uint4* __restrict__ src, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

// One warp per row: max, exp-sum, probabilities written out.
__global__ void SoftmaxKernel(const float* __restrict__ x, int64_t tokens, int32_t E, float* __restrict__ probs) {
  const int64_t t = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (t >= tokens) return;
  const float* row = x + t * E;
  float m = -FLT_MAX;
  for (int32_t e = lane; e < E; e += 32) m = fmaxf(m, row[e]);
  for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  float z = 0.f;
  for (int32_t e = lane; e < E; e += 32) z += expf(row[e] - m);
  for (int o = 16; o > 0; o /= 2) z += __shfl_xor_sync(0xffffffffu, z, o);
  for (int32_t e = lane; e < E; e += 32) probs[t * E + e] = expf(row[e] - m) / z;
}

// One block per row: bitonic sort of (prob, expert) descending in shared memory, top k renormalised.
__global__ void SortKernel(const float* __restrict__ probs, int32_t E, int32_t n2, int32_t k, float* __restrict__ weights,
                           int32_t* __restrict__ indices) {
  extern __shared__ float sv[];
  int32_t* si = reinterpret_cast<int32_t*>(sv + n2);
  const int64_t t = blockIdx.x;
  for (int32_t i = threadIdx.x; i < n2; i += blockDim.x) {
    sv[i] = i < E ? probs[t * E + i] : -FLT_MAX;
    si[i] = i;
  }
  __syncthreads();
  for (int32_t size = 2; size <= n2; size *= 2) {
    for (int32_t stride = size / 2; stride > 0; stride /= 2) {
      for (int32_t i = threadIdx.x; i < n2; i += blockDim.x) {
        const int32_t j = i ^ stride;
        if (j > i) {
          const bool desc = (i & size) == 0;
          const bool before = sv[i] > sv[j] || (sv[i] == sv[j] && si[i] < si[j]);
          if (before != desc) {
            const float fv = sv[i];
            sv[i] = sv[j];
            sv[j] = fv;
            const int32_t fi = si[i];
            si[i] = si[j];
            si[j] = fi;
          }
        }
      }
      __syncthreads();
    }
  }
  if (threadIdx.x == 0) {
    float sum = 0.f;
    for (int32_t j = 0; j < k; ++j) sum += sv[j];
    for (int32_t j = 0; j < k; ++j) {
      weights[t * k + j] = sv[j] / sum;
      indices[t * k + j] = si[j];
    }
  }
}

}  // namespace

cudaError_t Copy(void* dst, const void* src, int64_t bytes, cudaStream_t stream) {
  const int64_t n = bytes / 16;
  int device = 0, sms = 1;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  const int64_t want = (n + 255) / 256;
  const unsigned blocks = static_cast<unsigned>(want < sms * 8 ? (want > 0 ? want : 1) : sms * 8);
  CopyKernel<<<blocks, 256, 0, stream>>>(static_cast<uint4*>(dst), static_cast<const uint4*>(src), n);
  return cudaGetLastError();
}

cudaError_t BaselineSoftmaxSort(const float* logits, int64_t tokens, int32_t experts, int32_t k, float* probs,
                                float* weights, int32_t* indices, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  SoftmaxKernel<<<static_cast<unsigned>((tokens * 32 + 255) / 256), 256, 0, stream>>>(logits, tokens, experts, probs);
  int32_t n2 = 1;
  while (n2 < experts) n2 *= 2;
  const int threads = n2 < 256 ? n2 : 256;
  SortKernel<<<static_cast<unsigned>(tokens), threads, sizeof(float) * 2 * n2, stream>>>(probs, experts, n2, k, weights,
                                                                                         indices);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace capibara
