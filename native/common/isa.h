// Runtime ISA dispatch. A kernel body lives in a `.inc` file that is compiled once per
// instruction set inside a namespace (avx512, avx2, generic) under a target pragma, next to
// that ISA's few primitive ops (masks, partial loads); the loader picks the widest namespace
// the CPU supports. Builds stay portable: no host-specific -march flags anywhere.
// CAPIBARA_ISA=generic|avx2|avx512 in the environment forces a narrower one (for tests).
#pragma once
#include <cstdlib>
#include <cstring>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(CAPIBARA_NO_DISPATCH)
#define CAPIBARA_X86_DISPATCH 1
#include <immintrin.h>
#endif

#if defined(CAPIBARA_X86_DISPATCH) && defined(__clang__)
#define CAPIBARA_BEGIN_AVX512                                                                                        \
  _Pragma(                                                                                                           \
      "clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512dq,avx512vl,avx2,fma\"))), " \
      "apply_to = function)")
#define CAPIBARA_BEGIN_AVX2 \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define CAPIBARA_END_TARGET _Pragma("clang attribute pop")
#elif defined(CAPIBARA_X86_DISPATCH)
// Exactly the features DetectIsa() checks: an arch level would also enable BMI, LZCNT, MOVBE…
// which some virtual CPUs mask while offering AVX2.
#define CAPIBARA_BEGIN_AVX512 \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512dq,avx512vl,avx2,fma\")")
#define CAPIBARA_BEGIN_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define CAPIBARA_END_TARGET _Pragma("GCC pop_options")
#endif

// Calls fn from the namespace of the ISA in use (each kernel file defines the namespaces).
#ifdef CAPIBARA_X86_DISPATCH
#define CAPIBARA_DISPATCH(fn, ...)                                                             \
  (::capibara::CurrentIsa() == ::capibara::Isa::kAvx512 ? avx512::fn(__VA_ARGS__)              \
   : ::capibara::CurrentIsa() == ::capibara::Isa::kAvx2 ? avx2::fn(__VA_ARGS__)                \
                                                        : generic::fn(__VA_ARGS__))
#else
#define CAPIBARA_DISPATCH(fn, ...) generic::fn(__VA_ARGS__)
#endif

namespace capibara {

enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// The widest ISA this CPU supports, narrowed by CAPIBARA_ISA when set.
inline Isa DetectIsa() {
  Isa best = Isa::kGeneric;
#ifdef CAPIBARA_X86_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::kAvx2;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    best = Isa::kAvx512;
#endif
  const char* want = std::getenv("CAPIBARA_ISA");
  if (want != nullptr) {
    Isa cap = best;
    if (std::strcmp(want, "generic") == 0) cap = Isa::kGeneric;
    if (std::strcmp(want, "avx2") == 0) cap = Isa::kAvx2;
    if (static_cast<int>(cap) < static_cast<int>(best)) best = cap;
  }
  return best;
}

inline Isa CurrentIsa() {
  static const Isa isa = DetectIsa();
  return isa;
}

inline const char* IsaName(Isa isa) {
  return isa == Isa::kAvx512 ? "avx512" : isa == Isa::kAvx2 ? "avx2" : "generic";
}

}  // namespace capibara
