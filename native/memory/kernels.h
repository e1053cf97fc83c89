// Brute-force vector search kernels of the MemAgent memory: plain C++ over raw pointers, no
// Node-API. A matrix is row-major [rows, dims]; a scan scores every row, or the rows listed
// in `subset`, against one query and writes one float per scored row.
#pragma once
#include <cstdint>

namespace capibara {
namespace memory {

// Why a scan stopped early: the output position of the first row it refused, or -1.
struct ScanStatus {
  enum Problem : int32_t { kNone = 0, kBadRow = 1, kBadScale = 2 };
  int64_t position = -1;
  Problem problem = kNone;
  int64_t value = 0;  // the offending row index (kBadRow) or row whose scale is bad (kBadScale)
};

struct ScanParams {
  int64_t rows = 0;                 // rows in the matrix
  int64_t dims = 1;                 // row length
  const int32_t* subset = nullptr;  // [count] row indices to score; nullptr = all rows in order
  int64_t count = 0;                // outputs: subset length, or rows without a subset
  int threads = 1;
};

// out[j] = query_scale * scales[r] * sum_d query[d] * codes[r * dims + d], r = subset ? subset[j] : j.
// The dot product is exact (int32); the scaling is done in double and rounded once. Row
// indices outside [0, rows) and scales that are NaN, infinite or negative stop the scan.
ScanStatus Int8Scores(const int8_t* query, double query_scale, const int8_t* codes, const float* scales,
                      const ScanParams& p, float* out);

// out[j] = sum_d query[d] * matrix[r * dims + d]. The summation order is fixed (16 strided
// partial sums, then a pairwise tree), so every ISA gives bit-identical results.
ScanStatus Float32Scores(const float* query, const float* matrix, const ScanParams& p, float* out);

// How far ahead of the rows being scored their cache lines are requested: hardware prefetchers
// follow a full scan but not a subset's jumps (1M x 384 int8 rows, 1/8 of them: ~1.5x faster),
// and even a full scan gained ~1.4x. 6 KB is 16 int8 or 4 float32 rows of 384; farther ahead
// measured no better for int8 and worse for float32 (its rows then crowd L1). The benchmarks'
// read floor (native/bench) prefetches as far, so that it stays a floor for the scans.
constexpr int64_t kScanPrefetchBytes = 6144;

// The int8 path in use: "avx512-vnni", "avx512", "avx2" or "generic".
const char* Int8Path();

}  // namespace memory
}  // namespace capibara
