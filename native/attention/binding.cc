// Node-API bindings of the attention kernel. Keys and values arrive as position-tagged segments
// over a list of buffers (see attention/kernels.h), so one entry point serves dense tensors and
// the DuoAttention cache; every segment is bounds-checked against its buffer before any read.
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
// Largest output the addon allocates itself (1 GiB of float32), as in memory/binding.cc.
constexpr int64_t kMaxOutputs = int64_t{1} << 28;

// A buffer of the key/value list: float32, or float16 bits in a Uint16Array.
struct Buffer {
  Napi::TypedArray array;
  const void* data = nullptr;
  int64_t length = 0;
};

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

// attentionRun(q, queries, queryHeads, kvHeads, headDim, pos0, causal, horizon, scale, sink, recent,
//              buffers, segments, streaming|null, threads, ...)
Call Read(const Napi::CallbackInfo& info, size_t n, const char* fn) {
  Napi::Env env = info.Env();
  RequireArgs(info, n, fn);
  // Reading the elements of `buffers` can run JS (an index getter), which could detach or shrink
  // any typed array whose data pointer had been taken already: take them all first, before any
  // typed array argument is read. Nothing after this runs JS.
  if (!info[11].IsArray()) ThrowType(env, "Expected Array of Float32Array or Uint16Array for buffers");
  const Napi::Array list = info[11].As<Napi::Array>();
  std::vector<Napi::Value> items;
  for (uint32_t i = 0, n_items = list.Length(); i < n_items; ++i) {
    const Napi::Value v = list.Get(i);
    // Checked as it comes (a kind cannot change later), so a huge sparse array fails at its first hole.
    const bool f32 = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array;
    const bool f16 = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array;
    if (!f32 && !f16) ThrowType(env, "Expected Float32Array or Uint16Array for buffers[" + std::to_string(i) + "]");
    items.push_back(v);
  }
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
    const Napi::Value v = items[i];
    const bool f16 = v.As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array;
    if (i == 0) p.f16 = f16;
    if (f16 != p.f16) ThrowType(env, "Expected every buffer of one type but buffers[" + Str(i) + "] differs");
    Buffer b;
    b.array = v.As<Napi::TypedArray>();
    b.length = static_cast<int64_t>(b.array.ElementLength());
    // Through the typed array (napi_get_typedarray_info): the ArrayBuffer route fails on a SharedArrayBuffer.
    b.data = f16 ? static_cast<const void*>(v.As<Napi::Uint16Array>().Data()) : static_cast<const void*>(v.As<Napi::Float32Array>().Data());
    c.buffers.push_back(b);
  }

  const Napi::Float64Array table = Float64Arg(info, 12, "segments");
  const int64_t cells = static_cast<int64_t>(table.ElementLength());
  if (cells % kSegmentColumns != 0) ThrowRange(env, "Expected segments of length a multiple of 8 but received " + Str(cells));
  c.segments.assign(static_cast<size_t>(p.kv_heads), {});
  c.seg_buffers.assign(static_cast<size_t>(p.kv_heads), {});
  const double* t = table.Data();
  for (int64_t s = 0; s < cells / kSegmentColumns; ++s, t += kSegmentColumns) {
    auto where = [&] { return "segments row " + Str(s); };  // built only for an error message
    auto integer = [&](double v, int64_t lo, int64_t hi, const char* what) {
      if (!(v >= static_cast<double>(lo) && v <= static_cast<double>(hi)) || std::floor(v) != v)
        ThrowRange(env, "Expected " + std::string(what) + " in [" + Str(lo) + ", " + Str(hi) + "] in " + where());
      return static_cast<int64_t>(v);
    };
    const int64_t head = integer(t[0], 0, p.kv_heads - 1, "head");
    const int64_t nb = static_cast<int64_t>(c.buffers.size());
    const int64_t kb = integer(t[1], 0, nb - 1, "k buffer"), vb = integer(t[2], 0, nb - 1, "v buffer");
    const int64_t ko = integer(t[3], 0, kMaxPosition, "k offset"), vo = integer(t[4], 0, kMaxPosition, "v offset");
    Segment seg;
    seg.stride = integer(t[5], p.dim, kMaxStride, "stride");
    seg.count = integer(t[6], 0, kMaxPosition, "count");
    seg.first = integer(t[7], 0, kMaxPosition, "first");
    if (seg.count == 0) continue;
    // (count - 1) * stride + dim <= length - offset, without the product (count and stride
    // are each up to 2^40 and 2^27: it could overflow and wrap back into range).
    auto inside = [&](int64_t offset, int64_t length) {
      const int64_t room = length - offset - p.dim;
      return room >= 0 && seg.count - 1 <= room / seg.stride;
    };
    if (!inside(ko, c.buffers[kb].length) || !inside(vo, c.buffers[vb].length))
      ThrowRange(env, "Expected the rows of " + where() + " inside their buffers");
    const size_t bytes = p.f16 ? 2 : 4;
    seg.k = static_cast<const char*>(c.buffers[kb].data) + ko * bytes;
    seg.v = static_cast<const char*>(c.buffers[vb].data) + vo * bytes;
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

Napi::Value AttentionRun(const Napi::CallbackInfo& info) {
  Call c = Read(info, 17, "attentionRun");
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
      taken[i] = p_.f16 ? reinterpret_cast<const char*>(Take(a.As<Napi::Uint16Array>()))
                        : reinterpret_cast<const char*>(Take(a.As<Napi::Float32Array>()));
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

Napi::Value AttentionRunAsync(const Napi::CallbackInfo& info) {
  Call c = Read(info, 16, "attentionRunAsync");
  const bool want_lse = BoolArg(info, 15, "wantLse");
  if (c.p.queries * c.p.kv_heads * c.p.group * c.p.dim > kMaxOutputs)
    ThrowRange(info.Env(), "Expected at most 268435456 output elements for an output allocated by the addon");
  auto* worker = new AttentionWorker(info.Env(), c, want_lse);
  return worker->Start();
}

}  // namespace

void InitAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionRun", Napi::Function::New(env, AttentionRun, "attentionRun"));
  exports.Set("attentionRunAsync", Napi::Function::New(env, AttentionRunAsync, "attentionRunAsync"));
}

}  // namespace capibara
