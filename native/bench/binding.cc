// capibara_bench.node: the benchmark-only addon (bench/*.mjs load it directly). It holds the
// floors the benchmarks measure the kernels against, so the production addon exports nothing
// that only a benchmark needs. Inputs are checked like the production bindings' (no crash on
// bad input), but logits are assumed finite: the pass must cost only what it measures.
#include <napi.h>

#include <string>

#include "bench/floors.h"
#include "common/args.h"

namespace capibara {
namespace {

constexpr int64_t kMaxExperts = int64_t{1} << 20;
constexpr int64_t kMaxTokens = (int64_t{1} << 31) - 1;

// gatingFloor(logits, tokens, experts, kind): 0 = max + sum, 1 = max + softmax normaliser.
Napi::Value GatingFloor(const Napi::CallbackInfo& info) {
  RequireArgs(info, 4, "gatingFloor");
  Napi::Float32Array logits = Float32Arg(info, 0, "logits");
  const int64_t tokens = IntArg(info, 1, "tokens", 0, kMaxTokens);
  const int64_t experts = IntArg(info, 2, "experts", 1, kMaxExperts);
  const int64_t kind = IntArg(info, 3, "kind", 0, 1);
  if (static_cast<int64_t>(logits.ElementLength()) != tokens * experts)
    ThrowRange(info.Env(), "Expected logits of length tokens * experts = " + std::to_string(tokens * experts));
  return Napi::Number::New(info.Env(), bench::GatingFloor(logits.Data(), tokens, experts, kind == 1));
}

// memoryReadFloor(bytes[, threads]): a checksum of one pass over the bytes, split into `threads`
// contiguous parts read at once (default 1): the floor of a kernel run on that many threads.
Napi::Value MemoryReadFloor(const Napi::CallbackInfo& info) {
  RequireArgs(info, 1, "memoryReadFloor");
  const Napi::Int8Array bytes = TypedArg<Napi::Int8Array>(info, 0, napi_int8_array, "bytes", "Int8Array");
  const int threads = IsNullish(info[1]) ? 1 : static_cast<int>(IntArg(info, 1, "threads", 1, kMaxThreads));
  const uint64_t h = bench::ReadFloor(bytes.Data(), static_cast<int64_t>(bytes.ElementLength()), threads);
  return Napi::Number::New(info.Env(), static_cast<double>(h >> 11));
}

}  // namespace
}  // namespace capibara

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace capibara;
  exports.Set("gatingFloor", Napi::Function::New(env, GatingFloor, "gatingFloor"));
  exports.Set("memoryReadFloor", Napi::Function::New(env, MemoryReadFloor, "memoryReadFloor"));
  exports.Set("floorIsa", Napi::String::New(env, bench::FloorIsa()));
  return exports;
}

NODE_API_MODULE(capibara_bench, Init)
