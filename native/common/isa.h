// Runtime ISA dispatch, the one mechanism every kernel uses. A kernel body lives in a `.inc`
// file that is compiled once per instruction set inside a namespace (avx512, avx2, generic)
// under a target pragma, next to that ISA's few primitive ops (masks, partial loads); the
// loader picks the widest namespace the CPU supports. Builds stay portable: no host-specific
// -march flags anywhere. CAPIBARA_ISA=generic|avx2|avx512 in the environment forces a narrower
// one (for tests); it is read here once, and avx512 also turns off the VNNI and BF16 extensions.
#pragma once
#include <cstdlib>
#include <cstring>

#if defined(__GNUC__) || defined(__clang__)
#define CAPIBARA_INLINE inline __attribute__((always_inline))
#else
#define CAPIBARA_INLINE inline
#endif

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
#define CAPIBARA_BEGIN_AVX512_VNNI                                                                   \
  _Pragma(                                                                                           \
      "clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma\"))), " \
      "apply_to = function)")
#define CAPIBARA_BEGIN_AVX512_BF16_VNNI                                                                          \
  _Pragma(                                                                                                       \
      "clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512bf16,avx2,fma\"))), " \
      "apply_to = function)")
#define CAPIBARA_BEGIN_AVX2 \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define CAPIBARA_END_TARGET _Pragma("clang attribute pop")
#elif defined(CAPIBARA_X86_DISPATCH)
// Exactly the features DetectIsa() checks: an arch level would also enable BMI, LZCNT, MOVBE…
// which some virtual CPUs mask while offering AVX2.
#define CAPIBARA_BEGIN_AVX512 \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512dq,avx512vl,avx2,fma\")")
// The AVX-512 set plus VNNI, for the int8 scans' extension of the AVX-512 namespace (IsaChoice::vnni).
#define CAPIBARA_BEGIN_AVX512_VNNI \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma\")")
// The AVX-512 set plus VNNI and BF16, for the attention kernel's int8 and bfloat16 blocks (IsaChoice::bf16).
#define CAPIBARA_BEGIN_AVX512_BF16_VNNI \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512bf16,avx2,fma\")")
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

// Lanes per vector step of kernels whose results must not depend on the ISA: one AVX-512
// register of floats, two AVX2 ones, four generic ones.
constexpr int kLanes = 16;

enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// The kernels' ISA, and whether the int8 kernels may use AVX-512 VNNI and the attention kernel
// AVX-512 BF16 (extensions of the AVX-512 namespace, not ISAs of their own).
struct IsaChoice {
  Isa isa = Isa::kGeneric;
  bool vnni = false;
  bool bf16 = false;
};

// The widest ISA this CPU supports, narrowed by CAPIBARA_ISA when set. Naming `avx512`
// explicitly keeps plain AVX-512 (no VNNI, no BF16), so tests can compare the paths.
inline IsaChoice DetectIsa() {
  IsaChoice c;
#ifdef CAPIBARA_X86_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) c.isa = Isa::kAvx2;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    c.isa = Isa::kAvx512;
    c.vnni = __builtin_cpu_supports("avx512vnni");
    c.bf16 = __builtin_cpu_supports("avx512bf16");
  }
#endif
  const char* want = std::getenv("CAPIBARA_ISA");
  if (want != nullptr) {
    Isa cap = c.isa;
    if (std::strcmp(want, "generic") == 0) cap = Isa::kGeneric;
    if (std::strcmp(want, "avx2") == 0) cap = Isa::kAvx2;
    if (std::strcmp(want, "avx512") == 0) c.vnni = c.bf16 = false;
    if (static_cast<int>(cap) < static_cast<int>(c.isa)) c.isa = cap;
  }
  if (c.isa != Isa::kAvx512) c.vnni = c.bf16 = false;
  return c;
}

// Decided once per process (per loaded addon) and never changed: a kernel's ISA cannot differ
// between two calls.
inline const IsaChoice& CurrentIsaChoice() {
  static const IsaChoice choice = DetectIsa();
  return choice;
}

inline Isa CurrentIsa() { return CurrentIsaChoice().isa; }

inline const char* IsaName(Isa isa) {
  return isa == Isa::kAvx512 ? "avx512" : isa == Isa::kAvx2 ? "avx2" : "generic";
}

}  // namespace capibara
