// Node-API bindings of the attention kernel. Keys and values arrive as position-tagged segments
// over a list of buffers (see attention/kernels.h): attentionRun takes dense token-major segments
// of one element type (tensors), attentionCacheRun segments of any format (the DuoAttention
// cache's blocks, its KIVI residual, the new chunk), and attentionKvWrite stores a step's keys and
// values into the cache's formats. Every segment and write is bounds-checked against its buffer
// before any read or write.
#include <napi.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "attention/kernels.h"
#include "common/args.h"
#include "common/async.h"

namespace capibara {
namespace {

using attention::Format;
using attention::Params;
using attention::Segment;

constexpr int64_t kMaxDim = 256;
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxPosition = int64_t{1} << 40;
// Largest row stride of a segment: the kernels gather a column of W <= 16 rows with 32-bit
// indices (LoadColumn in common/isa_avx2.inc, isa_avx512.inc), so 15 * stride must stay below
// 2^31. A dense [keys, kvHeads, headDim] tensor has stride kvHeads * headDim <= 2^20.
constexpr int64_t kMaxStride = int64_t{1} << 27;
// Columns of the segment table: head, k buffer, v buffer, k offset, v offset, stride, count, first.
constexpr int64_t kSegmentColumns = 8;
// Columns of the cache's segment table: head, format, k buffer, v buffer, k offset, v offset,
// stride, count, first, lane.
constexpr int64_t kCacheColumns = 10;
// Columns of the write table: format, src k buffer, src v buffer, src offset, src stride, count,
// dst k buffer, dst v buffer, dst k offset, dst v offset, lane.
constexpr int64_t kWriteColumns = 11;
// The format numbers are the TypeScript side's (src/attention/kv-layer.ts, FORMAT).
static_assert(static_cast<int>(Format::kDenseF32) == 0 && static_cast<int>(Format::kDenseF16) == 1 &&
                  static_cast<int>(Format::kBlockF32) == 2 && static_cast<int>(Format::kBlockF16) == 3 &&
                  static_cast<int>(Format::kBlockBf16) == 4 && static_cast<int>(Format::kBlockI8) == 5,
              "formats as numbered in kv-layer.ts");
// Largest output the addon allocates itself (1 GiB of float32), as in memory/binding.cc.
constexpr int64_t kMaxOutputs = int64_t{1} << 28;

// A buffer of the key/value list: float32, 16-bit words (float16 or bfloat16 bits) in a
// Uint16Array, or bytes in a Uint8Array (int8 blocks).
enum class Kind { kF32, kU16, kU8 };
struct Buffer {
  Napi::TypedArray array;
  void* data = nullptr;
  int64_t length = 0;
  Kind kind = Kind::kF32;
};

// The buffer kind a format is stored in.
Kind KindOf(Format f) {
  switch (f) {
    case Format::kDenseF32:
    case Format::kBlockF32: return Kind::kF32;
    case Format::kBlockI8: return Kind::kU8;
    default: return Kind::kU16;
  }
}
const char* KindName(Kind k) { return k == Kind::kF32 ? "Float32Array" : k == Kind::kU16 ? "Uint16Array" : "Uint8Array"; }

struct Call {
  Params p;
  Napi::Float32Array q;
  std::vector<Buffer> buffers;
  std::vector<std::vector<Segment>> segments;
  // k and v buffer index of each segment, parallel to `segments` (per head, in order), so that
  // the async worker can move each segment onto where it takes its own buffers (a copy).
  std::vector<std::vector<std::pair<size_t, size_t>>> seg_buffers;
  Napi::Uint8Array streaming;
  bool has_streaming = false;
};

std::string Str(int64_t v) { return std::to_string(v); }

std::string RowName(int64_t s) { return "segments row " + Str(s); }

// The typed arrays of a buffer list: each checked for its kind as it comes (a kind cannot change
// later), so a huge sparse array fails at its first hole. Reading the elements can run JS (an
// index getter), which could detach or shrink any typed array whose data pointer had been taken
// already: lists are read before any typed array argument is.
std::vector<Napi::Value> ReadList(Napi::Env env, const Napi::Value& arg, bool any_kind, const char* name) {
  const std::string expected = any_kind ? "Float32Array, Uint16Array or Uint8Array" : "Float32Array or Uint16Array";
  if (!arg.IsArray()) ThrowType(env, "Expected Array of " + expected + " for " + name);
  const Napi::Array list = arg.As<Napi::Array>();
  std::vector<Napi::Value> items;
  for (uint32_t i = 0, n_items = list.Length(); i < n_items; ++i) {
    const Napi::Value v = list.Get(i);
    const napi_typedarray_type t = v.IsTypedArray() ? v.As<Napi::TypedArray>().TypedArrayType() : napi_int8_array;
    const bool ok = v.IsTypedArray() && (t == napi_float32_array || t == napi_uint16_array || (any_kind && t == napi_uint8_array));
    if (!ok) ThrowType(env, "Expected " + expected + " for " + name + "[" + std::to_string(i) + "]");
    items.push_back(v);
  }
  return items;
}

Buffer TakeBuffer(const Napi::Value& v) {
  Buffer b;
  b.array = v.As<Napi::TypedArray>();
  b.length = static_cast<int64_t>(b.array.ElementLength());
  // Through the typed array (napi_get_typedarray_info): the ArrayBuffer route fails on a SharedArrayBuffer.
  switch (b.array.TypedArrayType()) {
    case napi_float32_array:
      b.kind = Kind::kF32;
      b.data = v.As<Napi::Float32Array>().Data();
      break;
    case napi_uint16_array:
      b.kind = Kind::kU16;
      b.data = v.As<Napi::Uint16Array>().Data();
      break;
    default:
      b.kind = Kind::kU8;
      b.data = v.As<Napi::Uint8Array>().Data();
  }
  return b;
}

// attentionRun(q, queries, queryHeads, kvHeads, headDim, pos0, causal, horizon, scale, sink, recent,
//              buffers, segments, streaming|null, threads, ...); attentionCacheRun the same with a
// cache segment table (cache = true).
Call Read(const Napi::CallbackInfo& info, size_t n, const char* fn, bool cache) {
  Napi::Env env = info.Env();
  RequireArgs(info, n, fn);
  const std::vector<Napi::Value> items = ReadList(env, info[11], cache, "buffers");
  Call c;
  Params& p = c.p;
  c.q = Float32Arg(info, 0, "q");
  p.queries = IntArg(info, 1, "queries", 0, kMaxPosition);
  const int64_t query_heads = IntArg(info, 2, "queryHeads", 1, kMaxHeads);
  p.kv_heads = IntArg(info, 3, "kvHeads", 1, kMaxHeads);
  p.dim = IntArg(info, 4, "headDim", 1, kMaxDim);
  if (query_heads % p.kv_heads != 0)
    ThrowRange(env, "Expected queryHeads to be a multiple of kvHeads (" + Str(p.kv_heads) + ") but received " +
                        Str(query_heads));
  p.group = query_heads / p.kv_heads;
  p.pos0 = IntArg(info, 5, "pos0", 0, kMaxPosition);
  p.causal = BoolArg(info, 6, "causal");
  p.horizon = IntArg(info, 7, "horizon", -1, kMaxPosition);
  const double scale = NumberArg(info, 8, "scale");
  // A double above FLT_MAX has no float value (the conversion would be undefined behaviour).
  if (!(scale > 0 && scale <= 3.4028234663852886e38)) ThrowRange(env, "Expected scale in (0, 3.4028234663852886e38]");
  p.scale = static_cast<float>(scale);
  p.sink = IntArg(info, 9, "sink", 0, kMaxPosition);
  p.recent = IntArg(info, 10, "recent", 0, kMaxPosition);
  if (static_cast<int64_t>(c.q.ElementLength()) != p.queries * query_heads * p.dim)
    ThrowRange(env, "Expected q of length queries * queryHeads * headDim = " + Str(p.queries * query_heads * p.dim) +
                        " but received " + Str(static_cast<int64_t>(c.q.ElementLength())));

  for (uint32_t i = 0; i < items.size(); ++i) {
    c.buffers.push_back(TakeBuffer(items[i]));
    if (!cache && c.buffers[i].kind != c.buffers[0].kind)
      ThrowType(env, "Expected every buffer of one type but buffers[" + Str(i) + "] differs");
  }

  const int64_t cols = cache ? kCacheColumns : kSegmentColumns;
  const Napi::Float64Array table = Float64Arg(info, 12, "segments");
  const int64_t cells = static_cast<int64_t>(table.ElementLength());
  if (cells % cols != 0)
    ThrowRange(env, "Expected segments of length a multiple of " + Str(cols) + " but received " + Str(cells));
  c.segments.assign(static_cast<size_t>(p.kv_heads), {});
  c.seg_buffers.assign(static_cast<size_t>(p.kv_heads), {});
  const double* t = table.Data();
  const int64_t nb = static_cast<int64_t>(c.buffers.size());
  for (int64_t s = 0; s < cells / cols; ++s, t += cols) {
    auto integer = [&](double v, int64_t lo, int64_t hi, const char* what) {
      if (!(v >= static_cast<double>(lo) && v <= static_cast<double>(hi)) || std::floor(v) != v)
        ThrowRange(env, "Expected " + std::string(what) + " in [" + Str(lo) + ", " + Str(hi) + "] in " + RowName(s));
      return static_cast<int64_t>(v);
    };
    // Dense rows: [head, kb, vb, ko, vo, stride, count, first]; the cache's rows put the format
    // second and the lane last.
    const double* r = cache ? t + 1 : t;
    const int64_t head = integer(t[0], 0, p.kv_heads - 1, "head");
    Segment seg;
    if (cache) {
      seg.format = static_cast<Format>(integer(t[1], 0, attention::kFormats - 1, "format"));
    } else {
      seg.format = nb > 0 && c.buffers[0].kind == Kind::kU16 ? Format::kDenseF16 : Format::kDenseF32;
    }
    const int64_t kb = integer(r[1], 0, nb - 1, "k buffer"), vb = integer(r[2], 0, nb - 1, "v buffer");
    const int64_t ko = integer(r[3], 0, kMaxPosition, "k offset"), vo = integer(r[4], 0, kMaxPosition, "v offset");
    const bool blocked = attention::IsBlocked(seg.format);
    seg.stride = blocked ? integer(r[5], 0, 0, "stride (0 for a blocked format)") : integer(r[5], p.dim, kMaxStride, "stride");
    seg.count = integer(r[6], 0, kMaxPosition, "count");
    seg.first = integer(r[7], 0, kMaxPosition, "first");
    seg.lane = cache ? integer(t[9], 0, blocked ? attention::kBlockKeys - 1 : 0, "lane") : 0;
    const Kind want = KindOf(seg.format);
    if (c.buffers[static_cast<size_t>(kb)].kind != want || c.buffers[static_cast<size_t>(vb)].kind != want)
      ThrowType(env, std::string("Expected ") + KindName(want) + " k and v buffers for the format of " + RowName(s));
    if (seg.count == 0) continue;
    bool inside;
    if (blocked) {
      // Whole blocks from the offset: lane + count keys, rounded up (count <= 2^40: no overflow).
      const int64_t blocks = (seg.lane + seg.count + attention::kBlockKeys - 1) / attention::kBlockKeys;
      auto fits = [&](int64_t offset, int64_t block, int64_t length) { return length - offset >= 0 && blocks <= (length - offset) / block; };
      inside = fits(ko, attention::KeyBlockElements(seg.format, p.dim), c.buffers[static_cast<size_t>(kb)].length) &&
               fits(vo, attention::ValueBlockElements(seg.format, p.dim), c.buffers[static_cast<size_t>(vb)].length);
    } else {
      // (count - 1) * stride + dim <= length - offset, without the product (count and stride
      // are each up to 2^40 and 2^27: it could overflow and wrap back into range).
      auto fits = [&](int64_t offset, int64_t length) {
        const int64_t room = length - offset - p.dim;
        return room >= 0 && seg.count - 1 <= room / seg.stride;
      };
      inside = fits(ko, c.buffers[static_cast<size_t>(kb)].length) && fits(vo, c.buffers[static_cast<size_t>(vb)].length);
    }
    if (!inside) ThrowRange(env, "Expected the rows of " + RowName(s) + " inside their buffers");
    const int64_t bytes = attention::ElementBytes(seg.format);
    seg.k = static_cast<const char*>(c.buffers[static_cast<size_t>(kb)].data) + ko * bytes;
    seg.v = static_cast<const char*>(c.buffers[static_cast<size_t>(vb)].data) + vo * bytes;
    c.segments[static_cast<size_t>(head)].push_back(seg);
    c.seg_buffers[static_cast<size_t>(head)].emplace_back(static_cast<size_t>(kb), static_cast<size_t>(vb));
  }

  c.has_streaming = !IsNullish(info[13]);
  if (c.has_streaming) {
    c.streaming = TypedArg<Napi::Uint8Array>(info, 13, napi_uint8_array, "streaming", "Uint8Array");
    if (static_cast<int64_t>(c.streaming.ElementLength()) != p.kv_heads)
      ThrowRange(env, "Expected streaming of length kvHeads = " + Str(p.kv_heads));
  }
  p.threads = static_cast<int>(IntArg(info, 14, "threads", 1, kMaxThreads));
  return c;
}

template <typename Fn>
void Guarded(Napi::Env env, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("attention: ") + e.what());
  }
}

Napi::Value RunSync(const Napi::CallbackInfo& info, const char* fn, bool cache) {
  Call c = Read(info, 17, fn, cache);
  const int64_t rows = c.p.queries * c.p.kv_heads * c.p.group;
  Napi::Float32Array out = Float32Arg(info, 15, "out");
  if (static_cast<int64_t>(out.ElementLength()) != rows * c.p.dim) ThrowRange(info.Env(), "Expected out of the length of q");
  float* lse = nullptr;
  if (!IsNullish(info[16])) {
    Napi::Float32Array l = Float32Arg(info, 16, "lse");
    if (static_cast<int64_t>(l.ElementLength()) != rows) ThrowRange(info.Env(), "Expected lse of length queries * queryHeads");
    lse = l.Data();
  }
  Guarded(info.Env(), [&] {
    attention::Attend(c.p, c.q.Data(), c.segments, c.has_streaming ? c.streaming.Data() : nullptr, out.Data(), lse);
  });
  return info.Env().Undefined();
}

Napi::Value AttentionRun(const Napi::CallbackInfo& info) { return RunSync(info, "attentionRun", false); }
Napi::Value AttentionCacheRun(const Napi::CallbackInfo& info) { return RunSync(info, "attentionCacheRun", true); }

// The async form: every input taken with PromiseWorker::Take (read in place on a
// SharedArrayBuffer, copied at the call otherwise), each segment moved onto where its buffers
// are read; outputs allocated here.
class AttentionWorker : public PromiseWorker {
 public:
  AttentionWorker(Napi::Env env, Call& c, bool want_lse)
      : PromiseWorker(env, "attention"), p_(c.p), segments_(std::move(c.segments)) {
    const int64_t rows = p_.queries * p_.kv_heads * p_.group;
    out_ = Napi::Persistent(Napi::Float32Array::New(env, static_cast<size_t>(rows * p_.dim)));
    o_ = out_.Value().Data();
    if (want_lse) {
      lse_ = Napi::Persistent(Napi::Float32Array::New(env, static_cast<size_t>(rows)));
      l_ = lse_.Value().Data();
    }
    q_ = Take(c.q);
    if (c.has_streaming) streaming_ = Take(c.streaming);
    // Each buffer is taken once, then every segment is moved from the JS buffer onto it by the
    // buffer indices Read() recorded (not by table order: a table need not be sorted by head).
    std::vector<const char*> taken(c.buffers.size());
    for (size_t i = 0; i < c.buffers.size(); ++i) {
      const Napi::TypedArray& a = c.buffers[i].array;
      switch (c.buffers[i].kind) {
        case Kind::kF32: taken[i] = reinterpret_cast<const char*>(Take(a.As<Napi::Float32Array>())); break;
        case Kind::kU16: taken[i] = reinterpret_cast<const char*>(Take(a.As<Napi::Uint16Array>())); break;
        case Kind::kU8: taken[i] = reinterpret_cast<const char*>(Take(a.As<Napi::Uint8Array>())); break;
      }
    }
    for (size_t h = 0; h < segments_.size(); ++h)
      for (size_t i = 0; i < segments_[h].size(); ++i) {
        Segment& s = segments_[h][i];
        const size_t kb = c.seg_buffers[h][i].first, vb = c.seg_buffers[h][i].second;
        s.k = taken[kb] + (static_cast<const char*>(s.k) - static_cast<const char*>(c.buffers[kb].data));
        s.v = taken[vb] + (static_cast<const char*>(s.v) - static_cast<const char*>(c.buffers[vb].data));
      }
  }

 protected:
  void Run() override {
    attention::Attend(p_, q_, segments_, streaming_, o_, l_);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object r = Napi::Object::New(env);
    r.Set("output", out_.Value());
    r.Set("lse", lse_.IsEmpty() ? env.Null() : static_cast<Napi::Value>(lse_.Value()));
    return r;
  }

 private:
  Params p_;
  std::vector<std::vector<Segment>> segments_;
  const float* q_ = nullptr;
  const uint8_t* streaming_ = nullptr;
  Napi::Reference<Napi::Float32Array> out_, lse_;
  float* o_ = nullptr;  // raw pointers: Run() is off the JS thread and may not touch Node-API
  float* l_ = nullptr;
};

Napi::Value RunAsync(const Napi::CallbackInfo& info, const char* fn, bool cache) {
  Call c = Read(info, 16, fn, cache);
  const bool want_lse = BoolArg(info, 15, "wantLse");
  if (c.p.queries * c.p.kv_heads * c.p.group * c.p.dim > kMaxOutputs)
    ThrowRange(info.Env(), "Expected at most 268435456 output elements for an output allocated by the addon");
  auto* worker = new AttentionWorker(info.Env(), c, want_lse);
  return worker->Start();
}

Napi::Value AttentionRunAsync(const Napi::CallbackInfo& info) { return RunAsync(info, "attentionRunAsync", false); }
Napi::Value AttentionCacheRunAsync(const Napi::CallbackInfo& info) {
  return RunAsync(info, "attentionCacheRunAsync", true);
}

// attentionKvWrite(buffers, writes, headDim): stores a step's keys and values (attention/kernels.h,
// Write), each write row checked against its buffers before anything is written.
Napi::Value AttentionKvWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 3, "attentionKvWrite");
  const std::vector<Napi::Value> items = ReadList(env, info[0], true, "buffers");
  const Napi::Float64Array table = Float64Arg(info, 1, "writes");
  const int64_t dim = IntArg(info, 2, "headDim", 1, kMaxDim);
  std::vector<Buffer> buffers;
  for (const Napi::Value& v : items) buffers.push_back(TakeBuffer(v));
  const int64_t cells = static_cast<int64_t>(table.ElementLength());
  if (cells % kWriteColumns != 0)
    ThrowRange(env, "Expected writes of length a multiple of " + Str(kWriteColumns) + " but received " + Str(cells));
  const int64_t nb = static_cast<int64_t>(buffers.size());
  std::vector<attention::Write> writes;
  const double* t = table.Data();
  for (int64_t s = 0; s < cells / kWriteColumns; ++s, t += kWriteColumns) {
    auto where = [&] { return "writes row " + Str(s); };
    auto integer = [&](double v, int64_t lo, int64_t hi, const char* what) {
      if (!(v >= static_cast<double>(lo) && v <= static_cast<double>(hi)) || std::floor(v) != v)
        ThrowRange(env, "Expected " + std::string(what) + " in [" + Str(lo) + ", " + Str(hi) + "] in " + where());
      return static_cast<int64_t>(v);
    };
    attention::Write w;
    w.format = static_cast<Format>(integer(t[0], 0, attention::kFormats - 1, "format"));
    if (w.format == Format::kDenseF16) ThrowRange(env, "Expected a format other than dense float16 (1) in " + where());
    const int64_t sk = integer(t[1], 0, nb - 1, "src k buffer"), sv = integer(t[2], 0, nb - 1, "src v buffer");
    const int64_t so = integer(t[3], 0, kMaxPosition, "src offset");
    w.stride = integer(t[4], dim, kMaxStride, "src stride");
    const bool i8 = w.format == Format::kBlockI8;
    w.count = integer(t[5], 0, i8 ? attention::kBlockKeys : kMaxPosition, "count");
    const int64_t dk = integer(t[6], 0, nb - 1, "dst k buffer"), dv = integer(t[7], 0, nb - 1, "dst v buffer");
    const int64_t dko = integer(t[8], 0, kMaxPosition, "dst k offset"), dvo = integer(t[9], 0, kMaxPosition, "dst v offset");
    const bool dense = w.format == Format::kDenseF32;
    w.lane = integer(t[10], 0, dense ? kMaxPosition : i8 ? 0 : attention::kBlockKeys - 1, "lane");
    const Buffer &bsk = buffers[static_cast<size_t>(sk)], &bsv = buffers[static_cast<size_t>(sv)];
    const Buffer &bdk = buffers[static_cast<size_t>(dk)], &bdv = buffers[static_cast<size_t>(dv)];
    // Sources are float32, or float16 bits for a float16 block; both of one kind.
    const bool f16_src = w.format == Format::kBlockF16 && bsk.kind == Kind::kU16;
    const Kind src_kind = f16_src ? Kind::kU16 : Kind::kF32;
    if (bsk.kind != src_kind || bsv.kind != src_kind)
      ThrowType(env, std::string("Expected ") + KindName(src_kind) + " source buffers in " + where());
    w.src_f16 = f16_src;
    const Kind want = KindOf(w.format);
    if (bdk.kind != want || bdv.kind != want)
      ThrowType(env, std::string("Expected ") + KindName(want) + " destination buffers in " + where());
    if (w.count == 0) continue;
    auto rows_fit = [&](int64_t offset, int64_t length) {
      const int64_t room = length - offset - dim;
      return room >= 0 && w.count - 1 <= room / w.stride;
    };
    if (!rows_fit(so, bsk.length) || !rows_fit(so, bsv.length))
      ThrowRange(env, "Expected the source rows of " + where() + " inside their buffers");
    bool inside;
    if (dense) {
      // (lane + count) rows of dim from the offset.
      auto fits = [&](int64_t offset, int64_t length) { return length - offset >= 0 && w.lane + w.count <= (length - offset) / dim; };
      inside = fits(dko, bdk.length) && fits(dvo, bdv.length);
    } else {
      const int64_t blocks = (w.lane + w.count + attention::kBlockKeys - 1) / attention::kBlockKeys;
      auto fits = [&](int64_t offset, int64_t block, int64_t length) { return length - offset >= 0 && blocks <= (length - offset) / block; };
      inside = fits(dko, attention::KeyBlockElements(w.format, dim), bdk.length) &&
               fits(dvo, attention::ValueBlockElements(w.format, dim), bdv.length);
    }
    if (!inside) ThrowRange(env, "Expected the destination of " + where() + " inside its buffers");
    const int64_t sbytes = f16_src ? 2 : 4, dbytes = attention::ElementBytes(w.format);
    w.k = static_cast<const char*>(bsk.data) + so * sbytes;
    w.v = static_cast<const char*>(bsv.data) + so * sbytes;
    w.dst_k = static_cast<char*>(bdk.data) + dko * dbytes;
    w.dst_v = static_cast<char*>(bdv.data) + dvo * dbytes;
    writes.push_back(w);
  }
  Guarded(env, [&] { attention::WriteRows(writes, dim); });
  return env.Undefined();
}

}  // namespace

void InitAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionRun", Napi::Function::New(env, AttentionRun, "attentionRun"));
  exports.Set("attentionRunAsync", Napi::Function::New(env, AttentionRunAsync, "attentionRunAsync"));
  exports.Set("attentionCacheRun", Napi::Function::New(env, AttentionCacheRun, "attentionCacheRun"));
  exports.Set("attentionCacheRunAsync", Napi::Function::New(env, AttentionCacheRunAsync, "attentionCacheRunAsync"));
  exports.Set("attentionKvWrite", Napi::Function::New(env, AttentionKvWrite, "attentionKvWrite"));
  exports.Set("attentionPath", Napi::String::New(env, attention::AttentionPath()));
}

}  // namespace capibara
