// Device ports of native/common/vec.h's exp and sigmoid, operation for operation, so that device
// scores equal the CPU kernels' (the same polynomial, the same range reduction). Host-callable too:
// test/cuda-gating-host.test.ts runs the gating row logic on the host against the CPU kernel.
#pragma once
#include <cuda_runtime.h>

#include <cstring>

#define CAPIBARA_HD __host__ __device__ __forceinline__
#ifdef __CUDA_ARCH__
#define CAPIBARA_LDG(p) __ldg(p)
#else
#define CAPIBARA_LDG(p) (*(p))
#endif

namespace capibara {
namespace cuda {

CAPIBARA_HD float Pow2(int n) {
#ifdef __CUDA_ARCH__
  return __int_as_float((n + 127) << 23);
#else
  const int bits = (n + 127) << 23;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
#endif
}

CAPIBARA_HD float ExpReduced(float x, float* n) {
  const float magic = 12582912.0f;
  const float fn = (x * 1.44269504088896341f + magic) - magic;
  float r = x - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  *n = fn;
  return p * r * r + r + 1.0f;
}

// exp(x) for x <= 0; 0 below -87.3 and for -Infinity.
CAPIBARA_HD float ExpNonPositive(float x) {
  const float lo = -87.3365447f;
  if (x < lo) return 0.f;
  float fn;
  const float p = ExpReduced(fmaxf(x, lo), &fn);
  return p * Pow2(static_cast<int>(fn));
}

CAPIBARA_HD float Exp(float x) {
  const float lo = -87.3365447f;
  if (x < lo) return 0.f;
  float fn;
  const float p = ExpReduced(fminf(fmaxf(x, lo), 88.3762626f), &fn);
  const int n = static_cast<int>(fn);
  const int n1 = n >> 1;
  return p * Pow2(n1) * Pow2(n - n1);
}

CAPIBARA_HD float Sigmoid(float x) { return 1.f / (1.f + Exp(0.f - x)); }

}  // namespace cuda
}  // namespace capibara
