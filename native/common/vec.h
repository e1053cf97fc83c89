// Vector helpers for kernels, written once over GCC/Clang vector-extension types. Each ISA
// namespace (common/isa.h) instantiates them at its native width — 16 floats for AVX-512,
// 8 for AVX2, 4 for SSE2/NEON — so no operation is split or scalarized by the compiler.
// Needs GCC or Clang (on Windows, clang-cl).
#pragma once
#include <cstdint>
#include <cstring>

#include "common/isa.h"

#if !defined(__GNUC__) && !defined(__clang__)
#error "@capibara/core kernels need GCC or Clang vector extensions (on Windows, build with clang-cl)"
#endif

namespace capibara {

// The int32 vector a comparison of two float vectors V yields (lanes are 0 or -1).
template <typename V>
using MaskOf = decltype(V{} > V{});

template <typename V>
CAPIBARA_INLINE V Load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename V>
CAPIBARA_INLINE void Store(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

template <typename V>
CAPIBARA_INLINE V Splat(float x) {
  return V{} + x;
}

template <typename V>
CAPIBARA_INLINE V Max(V a, V b) {
  return a > b ? a : b;
}

template <typename V>
CAPIBARA_INLINE V Min(V a, V b) {
  return a < b ? a : b;
}

// Lanes that are NaN or +Infinity (values logits may not hold; -Infinity means "masked").
template <typename V>
CAPIBARA_INLINE MaskOf<V> NanOrPosInf(V a) {
  return !(a <= Splat<V>(3.40282347e+38f));
}

// e^x = 2^n · e^r with n = round(x / ln2) and |r| <= ln2/2 (Cephes expf): returns e^r from a
// degree-6 polynomial and sets *n. x must lie in [-87.34, 88.38].
template <typename V>
CAPIBARA_INLINE V ExpReduced(V x, V* n) {
  // Round to nearest by adding and subtracting 1.5·2^23: no branch, no rounding-mode dependence.
  const V magic = Splat<V>(12582912.0f);
  const V fn = (x * 1.44269504088896341f + magic) - magic;
  V r = x - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  V p = Splat<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  *n = fn;
  return p * r * r + r + 1.0f;
}

// 2^n for integral n in [-126, 127], through the exponent bits (shifted as unsigned: a NaN
// input makes n INT_MIN, and a signed shift of it would be undefined).
template <typename V>
CAPIBARA_INLINE V Pow2(MaskOf<V> n) {
  typedef uint32_t U __attribute__((vector_size(sizeof(V))));
  const U bits = __builtin_convertvector(n + 127, U) << 23;
  V out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// exp(x) lane-wise, relative error < 2e-7; exactly 0 below -87.3 (so -Infinity, a masked
// expert, contributes nothing). The scale 2^n is applied in two halves so it never overflows.
template <typename V>
CAPIBARA_INLINE V Exp(V x) {
  using I = MaskOf<V>;
  const V lo = Splat<V>(-87.3365447f);
  const I underflow = x < lo;
  V fn;
  const V p = ExpReduced(Min(Max(x, lo), Splat<V>(88.3762626f)), &fn);
  const I n = __builtin_convertvector(fn, I);
  const I n1 = n >> 1;
  return underflow ? Splat<V>(0.f) : p * Pow2<V>(n1) * Pow2<V>(n - n1);
}

// log(x) lane-wise for finite x > 0, relative error < 3e-7 (Cephes logf): x = 2^e · f with
// f in [sqrt(1/2), sqrt(2)), then a degree-8 polynomial in f - 1.
template <typename V>
CAPIBARA_INLINE V Log(V x) {
  using I = MaskOf<V>;
  I bits;
  std::memcpy(&bits, &x, sizeof bits);
  I e = ((bits >> 23) & 0xff) - 126;
  bits = (bits & 0x007fffff) | 0x3f000000;  // mantissa as f in [0.5, 1)
  V f;
  std::memcpy(&f, &bits, sizeof f);
  const I small = f < 0.707106781186547524f;
  e = e + small;  // small lanes are -1: f <- 2f, e <- e - 1
  f = (small ? f + f : f) - 1.0f;
  V p = Splat<V>(7.0376836292e-2f);
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const V f2 = f * f;
  const V ef = __builtin_convertvector(e, V);
  V y = p * f * f2 + ef * -2.12194440e-4f - 0.5f * f2;
  return f + y + ef * 0.693359375f;
}

// exp(x) for x <= 0 (softmax numerators, x = logit - max): Exp without its upper clamp and
// split scaling, which only large positive x needs. Same accuracy; 0 below -87.3 and for -Infinity.
template <typename V>
CAPIBARA_INLINE V ExpNonPositive(V x) {
  using I = MaskOf<V>;
  const V lo = Splat<V>(-87.3365447f);
  const I underflow = x < lo;
  V fn;
  const V p = ExpReduced(Max(x, lo), &fn);
  return underflow ? Splat<V>(0.f) : p * Pow2<V>(__builtin_convertvector(fn, I));
}

template <typename V>
CAPIBARA_INLINE V Sigmoid(V x) {
  return Splat<V>(1.f) / (Splat<V>(1.f) + Exp(Splat<V>(0.f) - x));
}

}  // namespace capibara
