// Brute-force scans for the memory's vector search. The row loops (memory/int8_rows.inc,
// memory/float32_rows.inc) are compiled once per ISA like the gating kernels, but by hand
// rather than through common/isa_each.inc: the int8 dot product needs its own primitives per
// ISA (defined next to each include) and a fourth variant, AVX-512 VNNI (int8 only), taken
// when common/isa.h's choice allows it (IsaChoice::vnni).

// GCC fuses a * b + c into FMA on the ISAs that have it (not on generic): that would make the
// float32 scores differ across ISAs in the last bit. Clang only fuses within one expression,
// which the kernels avoid.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#include "common/isa.h"
#include "common/parallel.h"
#include "common/vec.h"
#include "memory/kernels.h"

namespace capibara {
namespace memory {
namespace {

// The query in the forms the int8 steps read, zero past dims up to a multiple of 64 bytes.
struct Query8 {
  const int8_t* q8;
  const int16_t* q16;
  int32_t sum;  // sum of the query codes (the VNNI bias correction)
};

// Float32 partial sums per row on every ISA (see float32_rows.inc).
constexpr int kScanLanes = 16;
// Widest int8 step (VNNI), and the most rows any variant groups.
constexpr int64_t kMaxI8Step = 64;
constexpr int kMaxI8Rows = 8;
// Bytes of rows a thread must have to be worth starting (~50 µs of scanning).
constexpr int64_t kBytesPerThread = int64_t{1} << 20;

// The row scored at output j, or -1 when the subset names a row outside the matrix. The
// subset is read once per row, so a shared array changing under the scan cannot steer a read.
CAPIBARA_INLINE int64_t RowAt(const ScanParams& p, int64_t j, int64_t* raw) {
  if (p.subset == nullptr) return *raw = j;
  *raw = p.subset[j];
  return *raw >= 0 && *raw < p.rows ? *raw : -1;
}

// Prefetch distance: see kScanPrefetchBytes in memory/kernels.h.
constexpr int64_t kPrefetchBytes = kScanPrefetchBytes;

CAPIBARA_INLINE int64_t PrefetchRows(int64_t row_bytes) { return std::max<int64_t>(1, kPrefetchBytes / row_bytes); }

CAPIBARA_INLINE void PrefetchRow(const void* row, int64_t bytes) {
  const char* p = static_cast<const char*>(row);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
}

// Pairwise sum of 16 partial sums, in the same order on every ISA: lanes i + (i + 8), then
// i + (i + 4), then (0 + 2) + (1 + 3). Fixed-width vector types keep it a few instructions
// whatever the ISA's register width (the compiler splits or joins them as needed).
CAPIBARA_INLINE float TreeSum16(const float* l) {
  typedef float V8 __attribute__((vector_size(32)));
  typedef float V4 __attribute__((vector_size(16)));
  V8 lo, hi;
  std::memcpy(&lo, l, sizeof lo);
  std::memcpy(&hi, l + 8, sizeof hi);
  const V8 h = lo + hi;
  V4 a, b;
  std::memcpy(&a, &h, sizeof a);
  std::memcpy(&b, reinterpret_cast<const char*>(&h) + sizeof a, sizeof b);
  const V4 g = a + b;
  return (g[0] + g[2]) + (g[1] + g[3]);
}

#ifdef CAPIBARA_X86_DISPATCH
// AVX-512BW: 32 codes sign-extended to int16, multiplied and pair-added into int32 (vpmaddwd).
CAPIBARA_BEGIN_AVX512
namespace avx512 {
#include "common/isa_avx512.inc"
typedef __m512i I8Acc;
constexpr int64_t kI8Step = 32;
constexpr int32_t kI8Bias = 0;
constexpr int kI8Rows = 8;  // enough independent sums to hide the multiply-add latency
CAPIBARA_INLINE I8Acc I8Madd(I8Acc acc, const int8_t* c, const int8_t*, const int16_t* q16) {
  const __m512i c16 = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c)));
  return _mm512_add_epi32(acc, _mm512_madd_epi16(c16, _mm512_loadu_si512(q16)));
}
CAPIBARA_INLINE int32_t I8Sum(I8Acc a) { return _mm512_reduce_add_epi32(a); }
// Sums of 8 accumulators at once: halve the lanes while pairing rows (16 -> 8 lanes per row,
// two rows a register; 8 -> 4, four rows; then within 128-bit blocks), ~3 ops a row instead of ~12.
CAPIBARA_INLINE void I8SumRows(const I8Acc* a, int32_t* sums) {
  __m512i p[4], q[2];
  for (int i = 0; i < 4; ++i)  // blocks: row 2i (lanes 0-7), row 2i + 1 (lanes 8-15)
    p[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(a[2 * i], a[2 * i + 1], 0x44),
                            _mm512_shuffle_i32x4(a[2 * i], a[2 * i + 1], 0xEE));
  for (int j = 0; j < 2; ++j)  // block k of q[j]: row 4j + k, 4 lanes
    q[j] = _mm512_add_epi32(_mm512_shuffle_i32x4(p[2 * j], p[2 * j + 1], 0x88),
                            _mm512_shuffle_i32x4(p[2 * j], p[2 * j + 1], 0xDD));
  __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi32(q[0], q[1]), _mm512_unpackhi_epi32(q[0], q[1]));
  t = _mm512_add_epi32(t, _mm512_shuffle_epi32(t, _MM_PERM_BADC));  // lane 4k: row k, 4k + 1: row 4 + k
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums), _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, t)));
}
#include "memory/int8_rows.inc"
#include "memory/float32_rows.inc"
}  // namespace avx512
CAPIBARA_END_TARGET

// VNNI: vpdpbusd multiplies unsigned by signed bytes, so the codes are shifted to c + 128 by
// flipping their top bit and the query's sum times 128 is taken off at the end. 64 codes per step.
CAPIBARA_BEGIN_AVX512_VNNI
namespace vnni {
typedef __m512i I8Acc;
constexpr int64_t kI8Step = 64;
constexpr int32_t kI8Bias = 128;
constexpr int kI8Rows = 8;
CAPIBARA_INLINE I8Acc I8Madd(I8Acc acc, const int8_t* c, const int8_t* q8, const int16_t*) {
  const __m512i shifted = _mm512_xor_si512(_mm512_loadu_si512(c), _mm512_set1_epi8(-128));
  return _mm512_dpbusd_epi32(acc, shifted, _mm512_loadu_si512(q8));
}
using avx512::I8Sum;
using avx512::I8SumRows;
#include "memory/int8_rows.inc"
}  // namespace vnni
CAPIBARA_END_TARGET

// AVX2: the same with 16 codes per step.
CAPIBARA_BEGIN_AVX2
namespace avx2 {
#include "common/isa_avx2.inc"
typedef __m256i I8Acc;
constexpr int64_t kI8Step = 16;
constexpr int32_t kI8Bias = 0;
constexpr int kI8Rows = 4;
CAPIBARA_INLINE I8Acc I8Madd(I8Acc acc, const int8_t* c, const int8_t*, const int16_t* q16) {
  const __m256i c16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(c)));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(c16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q16))));
}
CAPIBARA_INLINE int32_t I8Sum(I8Acc a) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}
// Sums of 4 accumulators at once: two rounds of pairwise horizontal adds, then the halves.
CAPIBARA_INLINE void I8SumRows(const I8Acc* a, int32_t* sums) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(sums), s);
}
#include "memory/int8_rows.inc"
#include "memory/float32_rows.inc"
}  // namespace avx2
CAPIBARA_END_TARGET
#endif  // CAPIBARA_X86_DISPATCH

// Portable (SSE2, NEON): 16 codes per step; a product of two int8 values fits int16 exactly
// (|c·q| <= 2^14), so multiply in int16 and widen to int32 before adding.
namespace generic {
#include "common/isa_generic.inc"
typedef int32_t I8Acc __attribute__((vector_size(16)));
constexpr int64_t kI8Step = 16;
constexpr int32_t kI8Bias = 0;
constexpr int kI8Rows = 2;
CAPIBARA_INLINE I8Acc I8Madd(I8Acc acc, const int8_t* c, const int8_t*, const int16_t* q16) {
  typedef int8_t C8 __attribute__((vector_size(16)));
  typedef int16_t C16 __attribute__((vector_size(32)));
  typedef int32_t C32 __attribute__((vector_size(64)));
  C8 c8;
  C16 q;
  std::memcpy(&c8, c, sizeof c8);
  std::memcpy(&q, q16, sizeof q);
  const C32 wide = __builtin_convertvector(__builtin_convertvector(c8, C16) * q, C32);
  I8Acc part[4];
  std::memcpy(part, &wide, sizeof part);
  return acc + ((part[0] + part[1]) + (part[2] + part[3]));
}
CAPIBARA_INLINE int32_t I8Sum(I8Acc a) { return (a[0] + a[1]) + (a[2] + a[3]); }
CAPIBARA_INLINE void I8SumRows(const I8Acc* a, int32_t* sums) {
  for (int r = 0; r < kI8Rows; ++r) sums[r] = I8Sum(a[r]);
}
#include "memory/int8_rows.inc"
#include "memory/float32_rows.inc"
}  // namespace generic

enum class Int8Variant { kGeneric, kAvx2, kAvx512, kVnni };

// VNNI is an extension of the AVX-512 variant, used when common/isa.h allows it (the CPU has
// it and CAPIBARA_ISA does not name avx512 or a narrower ISA).
Int8Variant DetectInt8Variant() {
  const IsaChoice& c = CurrentIsaChoice();
  if (c.isa == Isa::kGeneric) return Int8Variant::kGeneric;
  if (c.isa == Isa::kAvx2) return Int8Variant::kAvx2;
  return c.vnni ? Int8Variant::kVnni : Int8Variant::kAvx512;
}

Int8Variant CurrentInt8Variant() {
  static const Int8Variant v = DetectInt8Variant();
  return v;
}

// Runs `rows(begin, end)` over the outputs on up to p.threads threads; keeps the earliest failure.
template <typename Fn>
ScanStatus ForRows(const ScanParams& p, int64_t bytes_per_output, Fn&& rows) {
  std::mutex mu;
  ScanStatus first;
  const int threads = ThreadsFor(p.count * bytes_per_output, p.threads, kBytesPerThread);
  ParallelFor(p.count, threads, [&](int64_t begin, int64_t end) {
    const ScanStatus st = rows(begin, end);
    if (st.position < 0) return;
    std::lock_guard<std::mutex> lock(mu);
    if (first.position < 0 || st.position < first.position) first = st;
  });
  return first;
}

}  // namespace

ScanStatus Int8Scores(const int8_t* query, double query_scale, const int8_t* codes, const float* scales,
                      const ScanParams& p, float* out) {
  const size_t padded = static_cast<size_t>((p.dims + kMaxI8Step - 1) / kMaxI8Step * kMaxI8Step);
  std::vector<int8_t> q8(padded, 0);
  std::vector<int16_t> q16(padded, 0);
  int32_t sum = 0;
  for (int64_t d = 0; d < p.dims; ++d) {
    q8[d] = query[d];
    q16[d] = query[d];
    sum += query[d];
  }
  const Query8 q{q8.data(), q16.data(), sum};
  const Int8Variant variant = CurrentInt8Variant();
  return ForRows(p, p.dims, [&](int64_t begin, int64_t end) {
    std::vector<int8_t> spare(kMaxI8Rows * padded, 0);
#ifdef CAPIBARA_X86_DISPATCH
    if (variant == Int8Variant::kVnni)
      return vnni::Int8Rows(q, query_scale, codes, scales, p, begin, end, spare.data(), out);
#endif
    (void)variant;
    return CAPIBARA_DISPATCH(Int8Rows, q, query_scale, codes, scales, p, begin, end, spare.data(), out);
  });
}

ScanStatus Float32Scores(const float* query, const float* matrix, const ScanParams& p, float* out) {
  std::vector<float> q(static_cast<size_t>((p.dims + kScanLanes - 1) / kScanLanes * kScanLanes), 0.f);
  std::copy(query, query + p.dims, q.begin());
  return ForRows(p, p.dims * 4, [&](int64_t begin, int64_t end) {
    return CAPIBARA_DISPATCH(F32Rows, q.data(), matrix, p, begin, end, out);
  });
}

const char* Int8Path() {
  switch (CurrentInt8Variant()) {
    case Int8Variant::kVnni:
      return "avx512-vnni";
    case Int8Variant::kAvx512:
      return "avx512";
    case Int8Variant::kAvx2:
      return "avx2";
    default:
      return "generic";
  }
}

}  // namespace memory
}  // namespace capibara
