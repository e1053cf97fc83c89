// Branch-free float math that vectorizes at plain -O3 (std::exp stays scalar without
// -ffast-math, which we refuse: it would also change NaN checks).
#pragma once
#include <cstdint>
#include <cstring>

#include "common/dispatch.h"

namespace capibara {

CAPIBARA_INLINE float BitsToFloat(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

// exp(x) for x in float range, relative error < 2e-7; exactly 0 below -87.3 so that
// masked (-Infinity) entries contribute nothing. Cephes-style range reduction
// x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r, then scale by 2^n via the exponent bits.
CAPIBARA_INLINE float FastExp(float x) {
  const float lo = -87.3365447f, hi = 88.3762626f;
  const bool underflow = x < lo;
  float cx = x < lo ? lo : (x > hi ? hi : x);
  float fn = cx * 1.44269504088896341f;
  fn = fn >= 0.f ? fn + 0.5f : fn - 0.5f;
  const int32_t n = static_cast<int32_t>(fn);
  const float nf = static_cast<float>(n);
  float r = cx - nf * 0.693359375f;
  r = r + nf * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // n + 127 can reach 255 only when x > 88.03; split the scale so 2^n never overflows the exponent.
  const int32_t n1 = n >> 1;
  const float s1 = BitsToFloat((n1 + 127) << 23);
  const float s2 = BitsToFloat((n - n1 + 127) << 23);
  const float y = p * s1 * s2;
  return underflow ? 0.f : y;
}

}  // namespace capibara
