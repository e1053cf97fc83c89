// Node-API bindings of the memory scan kernels. The sync forms read every array in place and
// fill the caller's output. The async forms take their inputs with PromiseWorker::Take
// (common/async.h: read in place on a SharedArrayBuffer, copied at the call otherwise) and
// allocate their output.
#include <napi.h>

#include <cmath>
#include <cstdio>
#include <exception>
#include <string>

#include "common/args.h"
#include "common/async.h"
#include "memory/kernels.h"

namespace capibara {
namespace {

using memory::ScanParams;
using memory::ScanStatus;

// The int8 dot product is exact in int32 for dims <= 2^17 (|c·q| <= 2^14); this leaves margin.
constexpr int64_t kMaxDims = int64_t{1} << 16;
// Row indices are int32.
constexpr int64_t kMaxRows = (int64_t{1} << 31) - 1;
// Largest output the addon allocates itself (1 GiB of float32): V8 aborts, rather than throws,
// when an ArrayBuffer cannot be allocated, so larger requests are refused first.
constexpr int64_t kMaxOutputs = int64_t{1} << 28;

Napi::Int8Array Int8Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return TypedArg<Napi::Int8Array>(info, i, napi_int8_array, name, "Int8Array");
}

std::string Num(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string Len(const char* name, const std::string& want, size_t got) {
  return std::string("Expected ") + name + " of length " + want + " but received " + std::to_string(got);
}

// Arguments common to both scans, after the matrix-specific ones are read.
struct Scan {
  ScanParams p;
  Napi::Int32Array subset;  // empty when absent
  bool has_subset = false;
};

// Reads rows (Int32Array | null | undefined) at i and threads at i + 1; sets count.
void ReadSubset(const Napi::CallbackInfo& info, size_t i, Scan& s) {
  s.has_subset = !IsNullish(info[i]);
  if (s.has_subset) {
    s.subset = Int32Arg(info, i, "rows");
    s.p.subset = s.subset.Data();
    s.p.count = static_cast<int64_t>(s.subset.ElementLength());
  } else {
    s.p.count = s.p.rows;
  }
  s.p.threads = static_cast<int>(IntArg(info, i + 1, "threads", 1, kMaxThreads));
}

struct Int8Args {
  Napi::Int8Array query, codes;
  Napi::Float32Array scales, out;
  double query_scale = 0;
  Scan s;
};

// memoryInt8Scores(query, queryScale, codes, scales, dims, rows|null, threads, out)
Int8Args ReadInt8(const Napi::CallbackInfo& info, bool output) {
  Napi::Env env = info.Env();
  RequireArgs(info, output ? 8 : 7, output ? "memoryInt8Scores" : "memoryInt8ScoresAsync");
  Int8Args a;
  a.query = Int8Arg(info, 0, "query");
  a.query_scale = NumberArg(info, 1, "queryScale");
  if (a.query_scale < 0) ThrowRange(env, "Expected queryScale >= 0 but received " + Num(a.query_scale));
  a.codes = Int8Arg(info, 2, "codes");
  a.scales = Float32Arg(info, 3, "scales");
  auto& p = a.s.p;
  p.dims = IntArg(info, 4, "dims", 1, kMaxDims);
  p.rows = static_cast<int64_t>(a.scales.ElementLength());
  if (p.rows > kMaxRows) ThrowRange(env, "Expected at most 2147483647 rows but scales has " + std::to_string(p.rows));
  ReadSubset(info, 5, a.s);
  if (output) a.out = Float32Arg(info, 7, "out");
  if (static_cast<int64_t>(a.query.ElementLength()) != p.dims)
    ThrowRange(env, Len("query", "dims = " + std::to_string(p.dims), a.query.ElementLength()));
  if (static_cast<int64_t>(a.codes.ElementLength()) != p.rows * p.dims)
    ThrowRange(env, Len("codes", "scales.length * dims = " + std::to_string(p.rows * p.dims), a.codes.ElementLength()));
  if (output && static_cast<int64_t>(a.out.ElementLength()) != p.count)
    ThrowRange(env, Len("out", std::to_string(p.count), a.out.ElementLength()));
  return a;
}

struct F32Args {
  Napi::Float32Array query, matrix, out;
  Scan s;
};

// memoryFloat32Scores(query, matrix, dims, rows|null, threads, out)
F32Args ReadF32(const Napi::CallbackInfo& info, bool output) {
  Napi::Env env = info.Env();
  RequireArgs(info, output ? 6 : 5, output ? "memoryFloat32Scores" : "memoryFloat32ScoresAsync");
  F32Args a;
  a.query = Float32Arg(info, 0, "query");
  a.matrix = Float32Arg(info, 1, "matrix");
  auto& p = a.s.p;
  p.dims = IntArg(info, 2, "dims", 1, kMaxDims);
  const int64_t n = static_cast<int64_t>(a.matrix.ElementLength());
  if (n % p.dims != 0)
    ThrowRange(env, Len("matrix", "a multiple of dims = " + std::to_string(p.dims), a.matrix.ElementLength()));
  p.rows = n / p.dims;
  if (p.rows > kMaxRows) ThrowRange(env, "Expected at most 2147483647 rows but matrix has " + std::to_string(p.rows));
  ReadSubset(info, 3, a.s);
  if (output) a.out = Float32Arg(info, 5, "out");
  if (static_cast<int64_t>(a.query.ElementLength()) != p.dims)
    ThrowRange(env, Len("query", "dims = " + std::to_string(p.dims), a.query.ElementLength()));
  if (output && static_cast<int64_t>(a.out.ElementLength()) != p.count)
    ThrowRange(env, Len("out", std::to_string(p.count), a.out.ElementLength()));
  return a;
}

// The message of a refused row; `scales` names the value of a bad scale (may be null for float32).
std::string Refusal(const ScanStatus& st, const ScanParams& p, const float* scales) {
  if (st.problem == ScanStatus::kBadRow)
    return "Expected row indices in [0, " + std::to_string(p.rows) + ") for rows but rows[" +
           std::to_string(st.position) + "] is " + std::to_string(st.value);
  return "Expected finite scales >= 0 but scales[" + std::to_string(st.value) + "] is " + Num(scales[st.value]);
}

// Kernels can only fail by running out of memory or threads; say so instead of aborting.
template <typename Fn>
ScanStatus Guarded(Napi::Env env, const char* name, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(name) + ": " + e.what());
  }
}

Napi::Value MemoryInt8Scores(const Napi::CallbackInfo& info) {
  Int8Args a = ReadInt8(info, true);
  const float* scales = a.scales.Data();
  const ScanStatus st = Guarded(info.Env(), "memory.int8Scores", [&] {
    return memory::Int8Scores(a.query.Data(), a.query_scale, a.codes.Data(), scales, a.s.p, a.out.Data());
  });
  if (st.position >= 0) ThrowRange(info.Env(), Refusal(st, a.s.p, scales));
  return info.Env().Undefined();
}

Napi::Value MemoryFloat32Scores(const Napi::CallbackInfo& info) {
  F32Args a = ReadF32(info, true);
  const ScanStatus st = Guarded(info.Env(), "memory.float32Scores", [&] {
    return memory::Float32Scores(a.query.Data(), a.matrix.Data(), a.s.p, a.out.Data());
  });
  if (st.position >= 0) ThrowRange(info.Env(), Refusal(st, a.s.p, nullptr));
  return info.Env().Undefined();
}

// An async scan: takes its inputs (PromiseWorker::Take) and owns its output until the promise resolves.
class ScanWorker : public PromiseWorker {
 public:
  ScanWorker(Napi::Env env, const char* name, const Scan& s)
      : PromiseWorker(env, name),
        p_(s.p),
        out_(Napi::Persistent(Napi::Float32Array::New(env, static_cast<size_t>(s.p.count)))),
        o_(out_.Value().Data()) {
    p_.subset = s.has_subset ? Take(s.subset) : nullptr;
  }

 protected:
  Napi::Value Result(Napi::Env env) override { return out_.Value(); }

  void Report(const ScanStatus& st, const float* scales) {
    if (st.position >= 0) Fail(ErrorKind::kRange, Refusal(st, p_, scales));
  }

  ScanParams p_;
  Napi::Reference<Napi::Float32Array> out_;
  float* o_;
};

class Int8Worker : public ScanWorker {
 public:
  Int8Worker(Napi::Env env, const Int8Args& a)
      : ScanWorker(env, "memory.int8Scores", a.s),
        query_scale_(a.query_scale),
        query_(Take(a.query)),
        codes_(Take(a.codes)),
        scales_(Take(a.scales)) {}

 protected:
  void Run() override { Report(memory::Int8Scores(query_, query_scale_, codes_, scales_, p_, o_), scales_); }

 private:
  double query_scale_;
  const int8_t* query_;
  const int8_t* codes_;
  const float* scales_;
};

class F32Worker : public ScanWorker {
 public:
  F32Worker(Napi::Env env, const F32Args& a)
      : ScanWorker(env, "memory.float32Scores", a.s),
        query_(Take(a.query)),
        matrix_(Take(a.matrix)) {}

 protected:
  void Run() override { Report(memory::Float32Scores(query_, matrix_, p_, o_), nullptr); }

 private:
  const float* query_;
  const float* matrix_;
};

void RequireAllocatable(Napi::Env env, const ScanParams& p) {
  if (p.count > kMaxOutputs)
    ThrowRange(env, "Expected at most 268435456 scores for an output allocated by the addon but received " +
                        std::to_string(p.count));
}

// memoryInt8ScoresAsync(query, queryScale, codes, scales, dims, rows|null, threads) -> Promise<Float32Array>
Napi::Value MemoryInt8ScoresAsync(const Napi::CallbackInfo& info) {
  const Int8Args a = ReadInt8(info, false);
  RequireAllocatable(info.Env(), a.s.p);
  return (new Int8Worker(info.Env(), a))->Start();
}

// memoryFloat32ScoresAsync(query, matrix, dims, rows|null, threads) -> Promise<Float32Array>
Napi::Value MemoryFloat32ScoresAsync(const Napi::CallbackInfo& info) {
  const F32Args a = ReadF32(info, false);
  RequireAllocatable(info.Env(), a.s.p);
  return (new F32Worker(info.Env(), a))->Start();
}

}  // namespace

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("memoryInt8Scores", Napi::Function::New(env, MemoryInt8Scores, "memoryInt8Scores"));
  exports.Set("memoryInt8ScoresAsync", Napi::Function::New(env, MemoryInt8ScoresAsync, "memoryInt8ScoresAsync"));
  exports.Set("memoryFloat32Scores", Napi::Function::New(env, MemoryFloat32Scores, "memoryFloat32Scores"));
  exports.Set("memoryFloat32ScoresAsync",
              Napi::Function::New(env, MemoryFloat32ScoresAsync, "memoryFloat32ScoresAsync"));
  exports.Set("memoryInt8Path", Napi::String::New(env, memory::Int8Path()));
}

}  // namespace capibara
