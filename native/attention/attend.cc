// Attention over position-tagged key segments (attention/kernels.h). Work is split into tasks
// (one KV head × up to kTileRows query rows × a range of key positions) handed out to threads from
// a shared counter, the costliest first. A decode step (one tile per head) over few heads splits
// each head's keys into ranges whose partial softmax states are merged afterwards (split-K), so
// that every thread reads its share of the cache.
// Let GCC fuse a * b + c into FMA (ISO C++ mode turns contraction off): the dot products and
// accumulations are latency-bound chains of multiply-adds. Results may differ across ISAs in the
// last bits, well inside the 1e-4 the tests hold the kernels to.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "attention/kernels.h"
#include "common/isa.h"
#include "common/parallel.h"
#include "common/vec.h"

namespace capibara {
namespace attention {
namespace {

constexpr int64_t kB = kBlockKeys;
constexpr int64_t kValueChunk = kValueChunkF;
constexpr int64_t kI8ValueChunk = kValueChunkI8;
// Query rows per tile: enough rows to reuse each key/value block loaded, few enough that the
// tile's queries and accumulators (2 × 64 × 256 floats) stay in L2.
constexpr int64_t kTileRows = 64;
constexpr int64_t kMaxW = 16;
// A decode head is split into key ranges of at least this many positions (multiples of a block).
constexpr int64_t kMinSplitKeys = 2048;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Tile {
  int64_t head = 0, t0 = 0, tokens = 0, rows = 0, pad = 0, group = 1;
  int64_t lo = 0, hi = 0;  // horizons of the first and last token
  int64_t from = 0, to = INT64_MAX;  // key positions of this task: [from, to)
  bool causal = true, streaming = false;
  int64_t Horizon(int64_t r) const { return causal ? lo + r / group : lo; }
};

// Per-thread scratch of one tile. Every array is padded to whole vectors of the widest ISA. The
// memory is the thread's, kept between calls (zeroing a fresh ~150 KB for every call cost more
// than a decode step over a short context); every part is written before it is read.
struct TileScratch {
  float *q, *acc, *s, *kt, *vf, *m, *l;
  // bfloat16 pairs of the query (per row, QbStride words) and of the weights (per row, 32 words).
  uint32_t *qb, *pb;
  // int8 blocks: the quantised query in 15-bit integers (qw, pad per row) and as high / low
  // byte quads (qh, ql, Q4Stride words per row); the weights times the value steps as 16-bit
  // integers (pw, kB per row) and as high / low byte quads (ph, pl, 16 words per row).
  int32_t *qw, *pw;
  uint32_t *qh, *ql, *ph, *pl;
  // int8 per row: score offset C, query step α, 128 · Σ qq, value step β.
  float *i8c, *i8a, *i8b;
  int32_t* i8s;
  TileScratch(int64_t rows, int64_t pad) {
    const int64_t words2 = rows * (pad / 2 + 1), words4 = rows * (pad / 4 + 1);
    struct Slot {
      void* at;
      int64_t size;
    };
    const Slot slots[] = {
        {&q, rows * pad},     {&acc, rows * pad},      {&s, rows * kB},        {&kt, (kB + kMaxW) * pad},
        {&vf, kB * pad},      {&m, rows},              {&l, rows},
        {&qb, words2},        {&pb, rows * kB / 2},    {&qw, rows * pad},      {&pw, rows * kB},
        {&qh, words4},        {&ql, words4},           {&ph, rows * kB / 4},   {&pl, rows * kB / 4},
        {&i8c, rows},         {&i8a, rows},            {&i8b, rows},           {&i8s, rows},
    };
    int64_t total = 0;
    for (const Slot& s : slots) total += (s.size + kMaxW - 1) / kMaxW * kMaxW;
    thread_local std::vector<float> buf;
    if (static_cast<int64_t>(buf.size()) < total) buf.resize(static_cast<size_t>(total));
    float* at = buf.data();
    for (const Slot& s : slots) {
      // Every slot is a 4-byte type living in the float buffer.
      void* where = at;
      std::memcpy(s.at, &where, sizeof where);
      at += (s.size + kMaxW - 1) / kMaxW * kMaxW;
    }
  }
};

// One block of up to kB keys as the kernel reads it: lanes [a, b) hold keys, lane i sits at
// position pos + i. Blocked formats point at the block; dense ones at the row of lane 0
// (their lanes start at 0) with rows `stride` elements apart.
struct View {
  Format format = Format::kDenseF32;
  const char* k = nullptr;
  const char* v = nullptr;
  int64_t stride = 0;
  int64_t a = 0, b = 0, pos = 0;
  // The block after this one in the same segment (for prefetching), or null.
  const char* next_k = nullptr;
  const char* next_v = nullptr;
};

// bfloat16 of a float, round to nearest even (the rounding of vcvtneps2bf16), as float.
inline float RoundBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}
inline uint16_t Bf16Bits(float x) {
  const float r = RoundBf16(x);
  uint32_t u;
  std::memcpy(&u, &r, 4);
  return static_cast<uint16_t>(u >> 16);
}

// IEEE binary16 bits of a float, round to nearest even (as src/attention/float16.ts).
inline uint16_t HalfBits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to Infinity
  if (a < 0x38800000u) {  // below 2^-14: subnormal half, m · 2^-24
    float f;
    std::memcpy(&f, &a, 4);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(static_cast<double>(f) * 16777216.0)));
  }
  // Normal: rebias, then round the 13 dropped mantissa bits to nearest even.
  const uint32_t mant = a & 0x7fffffu, exp = (a >> 23) - 127 + 15;
  uint32_t h = (exp << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent
  return static_cast<uint16_t>(sign | h);
}

inline float NanToZero(float x) { return x == x ? x : 0.f; }

// The nearest integer to x in [lo, hi] (NaN -> 0), without the undefined float-to-int conversion
// of an out-of-range value.
inline int32_t RoundClamp(float x, float lo, float hi) {
  x = NanToZero(x);
  x = std::min(std::max(x, lo), hi);
  return static_cast<int32_t>(std::nearbyint(x));
}

// kBlockI8: quantises `count` rows (float32, `stride` apart) into one block (attention/kernels.h).
void QuantiseBlock(const float* k, const float* v, int64_t stride, int64_t count, int64_t dim, uint8_t* dk,
                   uint8_t* dv) {
  const int64_t dim4 = Dim4(dim);
  std::vector<float> lo(static_cast<size_t>(dim4), 0.f), step(static_cast<size_t>(dim4), 0.f);
  for (int64_t d = 0; d < dim; ++d) {
    float mn = std::numeric_limits<float>::infinity(), mx = -mn;
    for (int64_t r = 0; r < count; ++r) {
      const float x = k[r * stride + d];
      mn = std::min(mn, x);
      mx = std::max(mx, x);
    }
    if (count == 0) mn = mx = 0.f;
    lo[static_cast<size_t>(d)] = mn;
    step[static_cast<size_t>(d)] = (mx - mn) / 255.f;
  }
  std::memcpy(dk, lo.data(), static_cast<size_t>(dim4) * 4);
  std::memcpy(dk + dim4 * 4, step.data(), static_cast<size_t>(dim4) * 4);
  uint8_t* codes = dk + dim4 * 8;
  std::memset(codes, 0, static_cast<size_t>(dim4 * kB));
  for (int64_t r = 0; r < count; ++r)
    for (int64_t d = 0; d < dim; ++d) {
      const float st = step[static_cast<size_t>(d)];
      const int32_t c = st > 0.f ? RoundClamp((k[r * stride + d] - lo[static_cast<size_t>(d)]) / st, 0.f, 255.f) : 0;
      codes[KeyCodeOffset(r, d, dim4)] = static_cast<uint8_t>(c);
    }
  float vstep[kB] = {};
  int8_t* vcodes = reinterpret_cast<int8_t*>(dv + kB * 4);
  std::memset(vcodes, 0, static_cast<size_t>(dim * kB));
  for (int64_t r = 0; r < count; ++r) {
    float amax = 0.f;
    for (int64_t d = 0; d < dim; ++d) amax = std::max(amax, std::fabs(v[r * stride + d]));
    const float st = amax / 127.f;
    vstep[r] = st;
    for (int64_t d = 0; d < dim; ++d) {
      const int32_t c = st > 0.f ? RoundClamp(v[r * stride + d] / st, -127.f, 127.f) : 0;
      vcodes[ValueOffset(r, d, dim, kValueChunkI8, 4)] = static_cast<int8_t>(c);
    }
  }
  std::memcpy(dv, vstep, sizeof vstep);
}

}  // namespace

void WriteRows(const std::vector<Write>& writes, int64_t dim) {
  for (const Write& w : writes) {
    const float* kf = static_cast<const float*>(w.k);
    const float* vf = static_cast<const float*>(w.v);
    const uint16_t* kh = static_cast<const uint16_t*>(w.k);
    const uint16_t* vh = static_cast<const uint16_t*>(w.v);
    if (w.format == Format::kBlockI8) {
      QuantiseBlock(kf, vf, w.stride, w.count, dim, static_cast<uint8_t*>(w.dst_k), static_cast<uint8_t*>(w.dst_v));
      continue;
    }
    if (w.format == Format::kDenseF32) {
      for (int64_t r = 0; r < w.count; ++r) {
        std::memmove(static_cast<float*>(w.dst_k) + (w.lane + r) * dim, kf + r * w.stride, static_cast<size_t>(dim) * 4);
        std::memmove(static_cast<float*>(w.dst_v) + (w.lane + r) * dim, vf + r * w.stride, static_cast<size_t>(dim) * 4);
      }
      continue;
    }
    const int64_t kblock = KeyBlockElements(w.format, dim), vblock = ValueBlockElements(w.format, dim);
    for (int64_t r = 0; r < w.count; ++r) {
      const int64_t lane = (w.lane + r) % kB, block = (w.lane + r) / kB;
      if (w.format == Format::kBlockF32) {
        float* dk = static_cast<float*>(w.dst_k) + block * kblock;
        float* dv = static_cast<float*>(w.dst_v) + block * vblock;
        for (int64_t d = 0; d < dim; ++d) {
          dk[d * kB + lane] = kf[r * w.stride + d];
          dv[ValueOffset(lane, d, dim, kValueChunkF, 1)] = vf[r * w.stride + d];
        }
      } else if (w.format == Format::kBlockF16) {
        uint16_t* dk = static_cast<uint16_t*>(w.dst_k) + block * kblock;
        uint16_t* dv = static_cast<uint16_t*>(w.dst_v) + block * vblock;
        for (int64_t d = 0; d < dim; ++d) {
          dk[d * kB + lane] = w.src_f16 ? kh[r * w.stride + d] : HalfBits(kf[r * w.stride + d]);
          dv[ValueOffset(lane, d, dim, kValueChunkF, 1)] = w.src_f16 ? vh[r * w.stride + d] : HalfBits(vf[r * w.stride + d]);
        }
      } else {  // kBlockBf16
        uint16_t* dk = static_cast<uint16_t*>(w.dst_k) + block * kblock;
        uint16_t* dv = static_cast<uint16_t*>(w.dst_v) + block * vblock;
        for (int64_t d = 0; d < dim; ++d) {
          dk[(d / 2) * kB * 2 + lane * 2 + d % 2] = Bf16Bits(kf[r * w.stride + d]);
          dv[ValueOffset(lane, d, dim, kValueChunkF, 2)] = Bf16Bits(vf[r * w.stride + d]);
        }
      }
    }
  }
}

namespace {

#define CAPIBARA_KERNEL_BODY "attention/attend_rows.inc"
#ifdef CAPIBARA_X86_DISPATCH
CAPIBARA_BEGIN_AVX512
namespace avx512 {
#define CAPIBARA_ATT_X 0
#define CAPIBARA_ATT_ISA 2
#include "common/isa_avx512.inc"
#include CAPIBARA_KERNEL_BODY
#undef CAPIBARA_ATT_X
#undef CAPIBARA_ATT_ISA
}  // namespace avx512
CAPIBARA_END_TARGET
// AVX-512 with BF16 (vdpbf16ps) and VNNI (vpdpbusd): Cooper Lake, Sapphire Rapids, Zen 4 and later.
CAPIBARA_BEGIN_AVX512_BF16_VNNI
namespace avx512x {
#define CAPIBARA_ATT_X 1
#define CAPIBARA_ATT_ISA 3
#include "common/isa_avx512.inc"
#include CAPIBARA_KERNEL_BODY
#undef CAPIBARA_ATT_X
#undef CAPIBARA_ATT_ISA
}  // namespace avx512x
CAPIBARA_END_TARGET
CAPIBARA_BEGIN_AVX2
namespace avx2 {
#define CAPIBARA_ATT_X 0
#define CAPIBARA_ATT_ISA 1
#include "common/isa_avx2.inc"
#include CAPIBARA_KERNEL_BODY
#undef CAPIBARA_ATT_X
#undef CAPIBARA_ATT_ISA
}  // namespace avx2
CAPIBARA_END_TARGET
#endif
namespace generic {
#define CAPIBARA_ATT_X 0
#define CAPIBARA_ATT_ISA 0
#include "common/isa_generic.inc"
#include CAPIBARA_KERNEL_BODY
#undef CAPIBARA_ATT_X
#undef CAPIBARA_ATT_ISA
}  // namespace generic
#undef CAPIBARA_KERNEL_BODY

// The attention variant: the AVX-512 namespace with BF16 and VNNI when the CPU has both and
// CAPIBARA_ISA does not turn them off.
enum class Path { kGeneric, kAvx2, kAvx512, kAvx512X };
Path CurrentPath() {
  const IsaChoice& c = CurrentIsaChoice();
  if (c.isa == Isa::kAvx512) return c.vnni && c.bf16 ? Path::kAvx512X : Path::kAvx512;
  return c.isa == Isa::kAvx2 ? Path::kAvx2 : Path::kGeneric;
}

#ifdef CAPIBARA_X86_DISPATCH
#define ATT_DISPATCH(fn, ...)                                   \
  (CurrentPath() == Path::kAvx512X  ? avx512x::fn(__VA_ARGS__) \
   : CurrentPath() == Path::kAvx512 ? avx512::fn(__VA_ARGS__)  \
   : CurrentPath() == Path::kAvx2   ? avx2::fn(__VA_ARGS__)    \
                                    : generic::fn(__VA_ARGS__))
#else
#define ATT_DISPATCH(fn, ...) generic::fn(__VA_ARGS__)
#endif

// Key positions a tile may read from its head's segments (an upper bound, for costs and splits).
int64_t VisibleKeys(const Params& p, const Tile& t, const std::vector<Segment>& segs) {
  int64_t n = 0;
  for (const Segment& s : segs) {
    const int64_t a = s.first, b = std::min(s.first + s.count, t.hi + 1);
    if (b <= a) continue;
    if (!t.streaming) {
      n += b - a;
      continue;
    }
    const int64_t w0 = std::max(p.sink, t.lo - p.recent + 1);
    n += std::max<int64_t>(0, std::min(b, p.sink) - a) + std::max<int64_t>(0, b - std::max(a, w0));
  }
  return n;
}

// The lowest and highest key position a tile reads.
void KeySpan(const std::vector<Segment>& segs, const Tile& t, int64_t* lo, int64_t* hi) {
  *lo = INT64_MAX;
  *hi = INT64_MIN;
  for (const Segment& s : segs) {
    if (s.count == 0 || s.first > t.hi) continue;
    *lo = std::min(*lo, s.first);
    *hi = std::max(*hi, std::min(s.first + s.count, t.hi + 1));
  }
}

struct Task {
  Tile tile;
  int64_t cost = 0;
  int64_t part = -1;  // index of its partial state when the head is split, else -1
};

}  // namespace

const char* AttentionPath() {
  switch (CurrentPath()) {
    case Path::kAvx512X: return "avx512-bf16-vnni";
    case Path::kAvx512: return "avx512";
    case Path::kAvx2: return "avx2";
    default: return "generic";
  }
}

void Attend(const Params& p, const float* q, const std::vector<std::vector<Segment>>& segments,
            const uint8_t* streaming, float* out, float* lse) {
  const int64_t heads = p.kv_heads * p.group, width = ATT_DISPATCH(Lanes);
  const int64_t pad = (p.dim + width - 1) / width * width;
  const int64_t tile_tokens = std::max<int64_t>(1, kTileRows / p.group);
  const int64_t tiles_per_head = (p.queries + tile_tokens - 1) / tile_tokens;
  if (tiles_per_head == 0) return;

  std::vector<Task> tasks;
  tasks.reserve(static_cast<size_t>(tiles_per_head * p.kv_heads));
  double keys = 0;  // in double: keys × queries of a huge call would overflow int64
  for (int64_t h = 0; h < p.kv_heads; ++h)
    for (int64_t i = 0; i < tiles_per_head; ++i) {
      Task task;
      Tile& t = task.tile;
      t.head = h;
      t.t0 = i * tile_tokens;
      t.tokens = std::min(tile_tokens, p.queries - t.t0);
      t.group = p.group;
      t.rows = t.tokens * p.group;
      t.pad = pad;
      t.causal = p.causal;
      t.streaming = streaming != nullptr && streaming[h] != 0;
      t.lo = p.causal ? p.pos0 + t.t0 : p.horizon;
      t.hi = p.causal ? t.lo + t.tokens - 1 : p.horizon;
      const int64_t visible = VisibleKeys(p, t, segments[static_cast<size_t>(h)]);
      task.cost = visible * t.rows;
      keys += static_cast<double>(visible) * static_cast<double>(t.rows);
      tasks.push_back(task);
    }
  // Threads worth starting: a decode step at 4K context across 8 heads is worth two, a short
  // prompt is not.
  const double estimate = keys * static_cast<double>(p.dim);
  const int64_t work = estimate >= 9e18 ? INT64_MAX : static_cast<int64_t>(estimate);
  const int threads = ThreadsFor(work, p.threads, int64_t{1} << 20);

  // Split-K: when there are fewer tasks than threads can share evenly (a decode step over few KV
  // heads), long heads are cut into key ranges of whole blocks, each a task with its own partial
  // softmax state (m, l, acc), merged per row once every task is done.
  struct Part {
    int64_t head, t0, rows;
    std::vector<float> m, l, acc;
  };
  std::vector<Part> parts;
  if (threads > 1 && tiles_per_head == 1) {
    int64_t total = 0, most = 0;
    for (const Task& task : tasks) {
      total += task.cost;
      most = std::max(most, task.cost);
    }
    // Aim for at least four tasks per thread of about equal cost.
    const int64_t target = std::max<int64_t>(kMinSplitKeys * p.group, total / (threads * 4));
    if (most > target) {
      std::vector<Task> split;
      for (const Task& task : tasks) {
        const Tile& t = task.tile;
        int64_t lo, hi;
        KeySpan(segments[static_cast<size_t>(t.head)], t, &lo, &hi);
        const int64_t pieces = std::min<int64_t>((task.cost + target - 1) / target, (hi - lo + kB - 1) / kB);
        if (pieces <= 1 || t.streaming) {
          split.push_back(task);
          continue;
        }
        const int64_t span = (hi - lo + pieces - 1) / pieces;
        const int64_t step = (span + kB - 1) / kB * kB;
        for (int64_t from = lo / kB * kB; from < hi; from += step) {
          Task piece = task;
          piece.tile.from = from;
          piece.tile.to = from + step;
          piece.cost = std::min(step, hi - from) * t.rows;
          piece.part = static_cast<int64_t>(parts.size());
          Part part;
          part.head = t.head;
          part.t0 = t.t0;
          part.rows = t.rows;
          parts.push_back(std::move(part));
          split.push_back(piece);
        }
      }
      tasks.swap(split);
    }
  }
  // Costliest first, so a causal prefill's long late tiles do not end up on one thread.
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.cost > b.cost; });
  for (Part& part : parts) {
    part.m.assign(static_cast<size_t>(part.rows), kNegInf);
    part.l.assign(static_cast<size_t>(part.rows), 0.f);
    part.acc.assign(static_cast<size_t>(part.rows * p.dim), 0.f);
  }

  const int64_t n_tasks = static_cast<int64_t>(tasks.size());
  const int run_threads = static_cast<int>(std::min<int64_t>(threads, n_tasks));
  std::atomic<int64_t> next{0};
  ParallelFor(run_threads, run_threads, [&](int64_t, int64_t) {
    TileScratch sc(tile_tokens * p.group, pad);
    for (int64_t i; (i = next.fetch_add(1)) < n_tasks;) {
      const Task& task = tasks[static_cast<size_t>(i)];
      const Tile& t = task.tile;
      for (int64_t r = 0; r < t.rows; ++r) {
        const int64_t tok = t.t0 + r / p.group, h = t.head * p.group + r % p.group;
        const float* src = q + (tok * heads + h) * p.dim;
        float* dst = sc.q + r * pad;
        for (int64_t e = 0; e < p.dim; ++e) dst[e] = src[e] * p.scale;
        std::fill(dst + p.dim, dst + pad, 0.f);
        std::fill(sc.acc + r * pad, sc.acc + (r + 1) * pad, 0.f);
        sc.m[r] = kNegInf;
        sc.l[r] = 0.f;
      }
      ATT_DISPATCH(RunTile, p, t, segments[static_cast<size_t>(t.head)], sc);
      if (task.part >= 0) {
        Part& part = parts[static_cast<size_t>(task.part)];
        for (int64_t r = 0; r < t.rows; ++r) {
          part.m[static_cast<size_t>(r)] = sc.m[r];
          part.l[static_cast<size_t>(r)] = sc.l[r];
          std::memcpy(part.acc.data() + r * p.dim, sc.acc + r * pad, static_cast<size_t>(p.dim) * 4);
        }
        continue;
      }
      for (int64_t r = 0; r < t.rows; ++r) {
        const int64_t tok = t.t0 + r / p.group, h = t.head * p.group + r % p.group;
        float* dst = out + (tok * heads + h) * p.dim;
        const float l = sc.l[r], inv = l > 0.f ? 1.f / l : 0.f;
        for (int64_t e = 0; e < p.dim; ++e) dst[e] = sc.acc[r * pad + e] * inv;
        if (lse != nullptr) lse[tok * heads + h] = l > 0.f ? sc.m[r] + std::log(l) : kNegInf;
      }
    }
  });

  // Merge the partial states of split heads, in key order (parts of a head are consecutive).
  for (size_t i = 0; i < parts.size();) {
    size_t j = i;
    while (j < parts.size() && parts[j].head == parts[i].head) ++j;
    const Part& first = parts[i];
    for (int64_t r = 0; r < first.rows; ++r) {
      float m = kNegInf;
      for (size_t k = i; k < j; ++k) m = std::max(m, parts[k].m[static_cast<size_t>(r)]);
      float l = 0.f;
      const int64_t tok = first.t0 + r / p.group, h = first.head * p.group + r % p.group;
      float* dst = out + (tok * heads + h) * p.dim;
      std::fill(dst, dst + p.dim, 0.f);
      if (m != kNegInf) {
        for (size_t k = i; k < j; ++k) {
          const float mk = parts[k].m[static_cast<size_t>(r)];
          if (mk == kNegInf) continue;
          const float w = std::exp(mk - m);
          l += parts[k].l[static_cast<size_t>(r)] * w;
          const float* a = parts[k].acc.data() + r * p.dim;
          for (int64_t e = 0; e < p.dim; ++e) dst[e] += a[e] * w;
        }
      }
      const float inv = l > 0.f ? 1.f / l : 0.f;
      for (int64_t e = 0; e < p.dim; ++e) dst[e] *= inv;
      if (lse != nullptr) lse[tok * heads + h] = l > 0.f ? m + std::log(l) : kNegInf;
    }
    i = j;
  }
}

}  // namespace attention
}  // namespace capibara
