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

// Benchmark floor: reads `n` bytes once with one cheap vector op per register (XOR fold)
// and returns the fold, so the pass cannot be optimized away.
uint64_t ReadFloor(const int8_t* bytes, int64_t n);

// The int8 path in use: "avx512-vnni", "avx512", "avx2" or "generic".
const char* Int8Path();

}  // namespace memory
}  // namespace capibara
