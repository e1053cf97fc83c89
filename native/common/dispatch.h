// Runtime SIMD dispatch. Kernels are written as loops over independent lanes that the
// compiler vectorizes; on x86-64 Linux each hot function is cloned for AVX-512, AVX2+FMA
// and baseline SSE2, and the loader picks the widest the CPU supports (GCC/Clang ifunc).
// Builds stay portable: no -march=native anywhere.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(CAPIBARA_NO_MULTIVERSION)
#define CAPIBARA_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CAPIBARA_MULTIVERSION
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CAPIBARA_INLINE inline __attribute__((always_inline))
#else
#define CAPIBARA_INLINE inline
#endif

namespace capibara {
// Lanes per vector step: one AVX-512 register of floats, two AVX2 ones.
constexpr int kLanes = 16;
}  // namespace capibara
