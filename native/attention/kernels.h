// Attention kernels: plain C++ over raw pointers, no Node-API. One call attends the queries of
// every KV head's group to that head's keys, which arrive as position-tagged segments: a dense
// [keys, kvHeads, dim] tensor is one segment per head, a DuoAttention cache is a full segment for
// a retrieval head and sink + ring pieces + the new chunk for a streaming head.
//
// Segments are token-major rows (dense inputs, the new chunk of a cache step) or runs of keys in
// the cache's block layout. A block holds kBlockKeys = 64 consecutive positions of one KV head,
// keys dimension-major so that one vector instruction scores 16 keys (vLLM's paged-attention key
// layout, ../shared/ANCHORS.md: no horizontal sum per key), values in chunks of columns so that
// the kernel reads every byte of a block front to back (the hardware prefetchers then keep up
// within a page; the kernel touches the next block's pages ahead, attend_rows.inc kAheadOf):
//
//   kBlockF32, kBlockF16  keys   [dim][64]             a row of 64 keys per dimension
//                         values [chunk][64][width]    chunks of 64 columns (the last narrower):
//                                                      the 64 keys' values of those columns
//   kBlockBf16            keys   [dim2][64][2]         dim2 = ceil(dim / 2): dimensions 2i, 2i + 1
//                                                      of a key side by side (vdpbf16ps pairs)
//                         values [chunk][32][width][2] keys 2j, 2j + 1 side by side per column
//   kBlockI8 (KIVI)       keys   min[dim4] f32, step[dim4] f32, codes u8 [2][dim4 / 4][32][4]:
//                                dim4 = dim rounded up to 4; k ≈ min_d + step_d · code, per
//                                channel over the block's 64 positions (asymmetric, 0..255);
//                                codes of keys 0-31, then 32-63, four dimensions per word
//                         values step[64] f32, codes s8 [chunk][16][width][4]: chunks of 32
//                                columns, keys 4j..4j+3 side by side per column;
//                                v ≈ step_j · code, per token (symmetric, ±127)
//
// Element counts per block are given by KeyBlockElements / ValueBlockElements (elements of
// the format's storage type: float, uint16 bits, or bytes for kBlockI8), offsets inside one by
// ValueOffset / KeyCodeOffset. A blocked segment starts at the block holding its first key (lane
// `lane` of that block) and continues into the blocks that follow it in memory.
#pragma once
#include <cstdint>
#include <vector>

namespace capibara {
namespace attention {

// Keys per block of the cache layouts, and per step of the kernel's key loop.
constexpr int64_t kBlockKeys = 64;

// Storage formats of a segment; the numbers cross the Node-API boundary (src/attention/kv-format.ts).
enum class Format : int32_t {
  kDenseF32 = 0,   // token-major float32 rows, `stride` floats apart
  kDenseF16 = 1,   // token-major IEEE float16 rows (uint16 bits)
  kBlockF32 = 2,
  kBlockF16 = 3,
  kBlockBf16 = 4,  // bfloat16 bits
  kBlockI8 = 5,
};
constexpr int32_t kFormats = 6;

inline bool IsBlocked(Format f) { return f != Format::kDenseF32 && f != Format::kDenseF16; }
inline int64_t Dim2(int64_t dim) { return (dim + 1) / 2; }
inline int64_t Dim4(int64_t dim) { return (dim + 3) / 4 * 4; }
// Bytes per element of a format's storage type.
inline int64_t ElementBytes(Format f) {
  return f == Format::kDenseF32 || f == Format::kBlockF32 ? 4 : f == Format::kBlockI8 ? 1 : 2;
}
inline int64_t KeyBlockElements(Format f, int64_t dim) {
  switch (f) {
    case Format::kBlockBf16: return Dim2(dim) * 2 * kBlockKeys;
    case Format::kBlockI8: return Dim4(dim) * (8 + kBlockKeys);
    default: return dim * kBlockKeys;
  }
}
inline int64_t ValueBlockElements(Format f, int64_t dim) {
  return f == Format::kBlockI8 ? 4 * kBlockKeys + dim * kBlockKeys : dim * kBlockKeys;
}
// Columns per value chunk: 64 for float32, float16 and bfloat16 blocks, 32 for int8 (one pass
// of the AVX-512 kernel each).
constexpr int64_t kValueChunkF = 64;
constexpr int64_t kValueChunkI8 = 32;
// Element offset of key j's value of column d in a value block of `per` keys per row (1 for
// float32 and float16, 2 for bfloat16, 4 for int8, whose offsets count from the codes).
inline int64_t ValueOffset(int64_t j, int64_t d, int64_t dim, int64_t chunk, int64_t per) {
  const int64_t start = d / chunk * chunk, width = dim - start < chunk ? dim - start : chunk;
  return start * kBlockKeys + (j / per) * width * per + (d - start) * per + j % per;
}
// Byte offset of key j's code of dimension d among an int8 block's key codes.
inline int64_t KeyCodeOffset(int64_t j, int64_t d, int64_t dim4) {
  return (j / 32) * (dim4 / 4) * 128 + (d / 4) * 128 + (j % 32) * 4 + d % 4;
}

// `count` keys (and values) at positions first, first + 1, … . Dense: row r at k + r * stride
// elements. Blocked: key r sits in lane (lane + r) % 64 of block (lane + r) / 64 from k.
struct Segment {
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t stride = 0;
  int64_t count = 0;
  int64_t first = 0;
  int64_t lane = 0;
  Format format = Format::kDenseF32;
};

struct Params {
  int64_t queries = 0;     // tokens of q
  int64_t group = 1;       // query heads per KV head
  int64_t kv_heads = 1;
  int64_t dim = 1;
  int64_t pos0 = 0;        // position of query 0 (causal)
  bool causal = true;
  int64_t horizon = 0;     // non-causal: every query sees positions <= horizon
  int64_t sink = 0;
  int64_t recent = 0;
  float scale = 1.f;
  int threads = 1;
};

// q and out are [queries, kv_heads * group, dim]; lse (may be null) is [queries, kv_heads * group].
// segments[h] lists KV head h's pieces; streaming[h] != 0 applies the sink + recent window.
// A query that sees no key gets a zero output and lse = -Infinity.
//
// Arithmetic by format: float32 and float16 keys and values are multiplied in float32. bfloat16
// blocks round the scaled query and the softmax weights to bfloat16 (round to nearest even) and
// accumulate pairs of products in float32, which is what vdpbf16ps computes; every ISA computes
// the same. int8 blocks quantise, per block and query row, the query times the key steps to
// 15-bit integers and the softmax weights times the value steps to 16-bit integers, and sum the
// integer products exactly (vpdpbusd on AVX-512 VNNI, the same integers elsewhere).
void Attend(const Params& p, const float* q, const std::vector<std::vector<Segment>>& segments,
            const uint8_t* streaming, float* out, float* lse);

// One write of a cache step: `count` rows of keys and values, token-major float32 (or float16
// bits for kBlockF16 from a uint16 source) at k/v + r * stride, into `format` storage:
//   dense kDenseF32: rows at dst_k/dst_v + (lane + r) * dim (a KIVI residual buffer)
//   blocked formats: lanes lane .. lane + count - 1 of consecutive blocks from dst_k/dst_v
//   kBlockI8: count <= 64 rows quantised into the one block at dst_k/dst_v (lane 0; lanes past
//             count are zero, their value steps 0).
struct Write {
  const void* k = nullptr;
  const void* v = nullptr;
  bool src_f16 = false;
  int64_t stride = 0;
  int64_t count = 0;
  void* dst_k = nullptr;
  void* dst_v = nullptr;
  int64_t lane = 0;
  Format format = Format::kDenseF32;
};

// Performs the writes in order (a later one may read what an earlier one wrote).
void WriteRows(const std::vector<Write>& writes, int64_t dim);

// The attention variant in use: "avx512-bf16-vnni", "avx512", "avx2" or "generic".
const char* AttentionPath();

}  // namespace attention
}  // namespace capibara
