// Function multiversioning for simple loop kernels (router_logits.cc): the compiler clones a
// function for AVX-512, AVX2+FMA and baseline and picks one at load (GCC/Clang ifunc). Kernels
// with ISA-specific primitives use common/isa.h instead. No host-specific -march flags anywhere.
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
