// Node-API bindings of the CUDA kernels (compiled only with CAPIBARA_HAS_CUDA). Device memory is
// owned by two kinds of handle, a gating workspace and a KV cache, each a type-tagged External
// that JS frees with cudaClose (its finalizer frees it too, if JS never did). Every call runs on
// the handle's own stream and waits for it before returning, so a CUDA error surfaces in the call
// that caused it, as an Error carrying the CUDA error's name and message.
#if CAPIBARA_HAS_CUDA
#include <cuda_runtime_api.h>
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/args.h"
#include "cuda/device.h"
#include "cuda/kernels.h"

namespace capibara {
namespace cuda {
namespace {

void Check(Napi::Env env, cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  throw Napi::Error::New(env, std::string("CUDA error in ") + what + ": " + cudaGetErrorName(err) + " (" +
                                  cudaGetErrorString(err) + ")");
}

// A device allocation that only grows.
struct Buffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  cudaError_t Reserve(size_t n) {
    if (n <= bytes) return cudaSuccess;
    if (ptr != nullptr) cudaFree(ptr);
    ptr = nullptr;
    bytes = 0;
    const cudaError_t err = cudaMalloc(&ptr, n);
    if (err == cudaSuccess) bytes = n;
    return err;
  }
  void Free() {
    if (ptr != nullptr) cudaFree(ptr);
    ptr = nullptr;
    bytes = 0;
  }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr); }
};

struct Resource {
  virtual ~Resource() = default;
  virtual void Release() = 0;
  bool closed = false;
  cudaStream_t stream = nullptr;
  void Close() {
    if (closed) return;
    closed = true;
    if (stream != nullptr) cudaStreamSynchronize(stream);
    Release();
    if (stream != nullptr) cudaStreamDestroy(stream);
    stream = nullptr;
  }
};

const napi_type_tag kGatingTag = {0x6361706962617261ULL, 0x6775646167617431ULL};
const napi_type_tag kKvTag = {0x6361706962617261ULL, 0x6b76636163686531ULL};

template <typename T>
Napi::Value Wrap(Napi::Env env, T* r, const napi_type_tag& tag) {
  Napi::External<T> ext = Napi::External<T>::New(env, r, [](Napi::Env, T* x) {
    x->Close();
    delete x;
  });
  napi_type_tag_object(env, ext, &tag);
  return ext;
}

template <typename T>
T* Unwrap(const Napi::CallbackInfo& info, size_t i, const napi_type_tag& tag, const char* what) {
  Napi::Value v = info[i];
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(info.Env(), v, &tag, &ok);
  if (!ok) ThrowType(info.Env(), std::string("Expected a ") + what + " handle");
  T* r = v.As<Napi::External<T>>().Data();
  if (r->closed) throw Napi::Error::New(info.Env(), std::string(what) + " is closed");
  return r;
}

template <typename R>
R* Open(Napi::Env env, R* r) {
  cudaError_t err = cudaStreamCreateWithFlags(&r->stream, cudaStreamNonBlocking);
  if (err != cudaSuccess) {
    delete r;
    Check(env, err, "cudaStreamCreate");
  }
  return r;
}

void Upload(Napi::Env env, Buffer& b, const void* src, size_t bytes, cudaStream_t s, const char* what) {
  Check(env, b.Reserve(bytes), what);
  if (bytes > 0) Check(env, cudaMemcpyAsync(b.ptr, src, bytes, cudaMemcpyHostToDevice, s), what);
}

// Milliseconds per run of `run` over `iterations` runs on `stream`, after one warm-up run.
template <typename F>
double TimeRuns(Napi::Env env, cudaStream_t stream, int64_t iterations, F run) {
  Check(env, run(), "warm-up run");
  cudaEvent_t a, b;
  Check(env, cudaEventCreate(&a), "cudaEventCreate");
  Check(env, cudaEventCreate(&b), "cudaEventCreate");
  cudaEventRecord(a, stream);
  cudaError_t err = cudaSuccess;
  for (int64_t i = 0; i < iterations && err == cudaSuccess; ++i) err = run();
  cudaEventRecord(b, stream);
  const cudaError_t sync = cudaEventSynchronize(b);
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  Check(env, err, "timed run");
  Check(env, sync, "timed run");
  return static_cast<double>(ms) / static_cast<double>(iterations);
}

// ---------------------------------------------------------------- gating

struct Gating : Resource {
  Buffer logits, bias, weights, indices, bad, scratch, loads, counts, offsets, permutation, slot_position, dropped,
      sizes, probs, base_w, base_i;
  GatingParams last;
  bool has_last = false, last_bias = false;
  int64_t last_slots = -1;  // tokens * k of the device indices the last topk left
  DispatchParams last_dispatch;
  bool has_dispatch = false;
  void Release() override {
    for (Buffer* b : {&logits, &bias, &weights, &indices, &bad, &scratch, &loads, &counts, &offsets, &permutation,
                      &slot_position, &dropped, &sizes, &probs, &base_w, &base_i})
      b->Free();
  }
};

std::string NonFinite(float v) { return std::isnan(v) ? "NaN" : "Infinity"; }

Napi::Value GatingOpen(const Napi::CallbackInfo& info) {
  if (!Available()) throw Napi::Error::New(info.Env(), "CUDA is not available: " + Unavailable());
  return Wrap(info.Env(), Open(info.Env(), new Gating()), kGatingTag);
}

// cuda.gatingTopk(handle, logits, tokens, experts, k, scoring, bias|null, renormalize, routeScale, groups,
//                topkGroups, groupScore, rangeStart, rangeEnd, sum16, weightsOut, indicesOut)
Napi::Value GatingTopkJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 17, "cuda.gatingTopk");
  Gating* g = Unwrap<Gating>(info, 0, kGatingTag, "CudaGating");
  Napi::Float32Array logits = Float32Arg(info, 1, "logits");
  GatingParams p;
  p.tokens = IntArg(info, 2, "tokens", 0, int64_t{1} << 31);
  p.experts = static_cast<int32_t>(IntArg(info, 3, "experts", 1, 1 << 20));
  p.k = static_cast<int32_t>(IntArg(info, 4, "k", 1, std::min<int64_t>(p.experts, kMaxDeviceK)));
  p.scoring = static_cast<int32_t>(IntArg(info, 5, "scoring", 0, 1));
  const bool has_bias = !IsNullish(info[6]);
  p.renormalize = BoolArg(info, 7, "renormalize");
  p.route_scale = static_cast<float>(NumberArg(info, 8, "routeScale"));
  p.groups = static_cast<int32_t>(IntArg(info, 9, "groups", 1, std::min<int64_t>(p.experts, kMaxDeviceGroups)));
  p.topk_groups = static_cast<int32_t>(IntArg(info, 10, "topkGroups", 1, p.groups));
  p.group_score = static_cast<int32_t>(IntArg(info, 11, "groupScore", 0, 1));
  p.range_start = static_cast<int32_t>(IntArg(info, 12, "rangeStart", 0, p.experts));
  p.range_end = static_cast<int32_t>(IntArg(info, 13, "rangeEnd", p.range_start, p.experts));
  p.sum16 = BoolArg(info, 14, "sum16");
  Napi::Float32Array w = Float32Arg(info, 15, "weightsOut");
  Napi::Int32Array idx = Int32Arg(info, 16, "indicesOut");
  if (p.experts % p.groups != 0) ThrowRange(env, "Expected groups to divide experts");
  if (static_cast<int64_t>(logits.ElementLength()) != p.tokens * p.experts)
    ThrowRange(env, "Expected logits of length tokens * experts = " + std::to_string(p.tokens * p.experts));
  const int64_t slots = p.tokens * p.k;
  if (static_cast<int64_t>(w.ElementLength()) != slots || static_cast<int64_t>(idx.ElementLength()) != slots)
    ThrowRange(env, "Expected weightsOut and indicesOut of length tokens * k = " + std::to_string(slots));
  if (has_bias) {
    Napi::Float32Array b = Float32Arg(info, 6, "bias");
    if (static_cast<int64_t>(b.ElementLength()) != p.experts)
      ThrowRange(env, "Expected bias of length experts = " + std::to_string(p.experts));
    Upload(env, g->bias, b.Data(), sizeof(float) * p.experts, g->stream, "cuda.gatingTopk (bias)");
  }
  Upload(env, g->logits, logits.Data(), sizeof(float) * logits.ElementLength(), g->stream, "cuda.gatingTopk (logits)");
  Check(env, g->weights.Reserve(sizeof(float) * slots), "cuda.gatingTopk (weights)");
  Check(env, g->indices.Reserve(sizeof(int32_t) * slots), "cuda.gatingTopk (indices)");
  Check(env, g->bad.Reserve(sizeof(unsigned long long)), "cuda.gatingTopk");
  Check(env, cudaMemsetAsync(g->bad.ptr, 0xff, sizeof(unsigned long long), g->stream), "cuda.gatingTopk");
  Check(env, GatingTopk(g->logits.as<float>(), has_bias ? g->bias.as<float>() : nullptr, p, g->weights.as<float>(),
                        g->indices.as<int32_t>(), g->bad.as<unsigned long long>(), g->stream),
        "cuda.gatingTopk (kernel launch)");
  unsigned long long bad = 0;
  Check(env, cudaMemcpyAsync(&bad, g->bad.ptr, sizeof bad, cudaMemcpyDeviceToHost, g->stream), "cuda.gatingTopk");
  if (slots > 0) {
    Check(env, cudaMemcpyAsync(w.Data(), g->weights.ptr, sizeof(float) * slots, cudaMemcpyDeviceToHost, g->stream), "cuda.gatingTopk");
    Check(env, cudaMemcpyAsync(idx.Data(), g->indices.ptr, sizeof(int32_t) * slots, cudaMemcpyDeviceToHost, g->stream), "cuda.gatingTopk");
  }
  Check(env, cudaStreamSynchronize(g->stream), "cuda.gatingTopk");
  g->last = p;
  g->has_last = true;
  g->last_bias = has_bias;
  g->last_slots = -1;
  if (bad != ~0ull) {
    const int64_t flat = static_cast<int64_t>(bad);
    ThrowRange(env, "Expected finite or -Infinity (masked) logits but token " + std::to_string(flat / p.experts) +
                        ", expert " + std::to_string(flat % p.experts) + " is " + NonFinite(logits.Data()[flat]));
  }
  g->last_slots = slots;
  return env.Undefined();
}

cudaError_t RunDispatch(Gating* g, const DispatchParams& p) {
  return DispatchPlan(g->indices.as<int32_t>(), p, g->scratch.as<int32_t>(), g->loads.as<int32_t>(),
                      g->counts.as<int32_t>(), g->offsets.as<int32_t>(), g->permutation.as<int32_t>(),
                      g->slot_position.as<int32_t>(), g->dropped.as<int32_t>(), g->sizes.as<long long>(), g->stream);
}

Napi::Int32Array Download(Napi::Env env, const Buffer& b, int64_t n, cudaStream_t s) {
  Napi::Int32Array out = Napi::Int32Array::New(env, static_cast<size_t>(n));
  if (n > 0) Check(env, cudaMemcpyAsync(out.Data(), b.ptr, sizeof(int32_t) * n, cudaMemcpyDeviceToHost, s), "cuda.gatingDispatch");
  return out;
}

// cuda.gatingDispatch(handle, indices|null (the last topk's, still on the device), tokens, k, experts, capacity, blockSize)
Napi::Value GatingDispatchJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 7, "cuda.gatingDispatch");
  Gating* g = Unwrap<Gating>(info, 0, kGatingTag, "CudaGating");
  DispatchParams p;
  p.tokens = IntArg(info, 2, "tokens", 0, int64_t{1} << 31);
  p.k = static_cast<int32_t>(IntArg(info, 3, "k", 1, 1 << 20));
  p.experts = static_cast<int32_t>(IntArg(info, 4, "experts", 1, 1 << 12));
  p.capacity = IntArg(info, 5, "capacity", -1, (int64_t{1} << 31) - 1);
  p.block_size = static_cast<int32_t>(IntArg(info, 6, "blockSize", 1, 65536));
  const int64_t slots = p.tokens * p.k;
  if (slots > (int64_t{1} << 31) - 1) ThrowRange(env, "Expected tokens * k <= 2147483647");
  const int64_t most = slots + static_cast<int64_t>(p.experts) * (p.block_size - 1);
  if (most > (int64_t{1} << 28))
    ThrowRange(env, "Expected tokens * k + experts * (blockSize - 1) <= 268435456 on the device but received " +
                        std::to_string(most));
  if (IsNullish(info[1])) {
    if (g->last_slots != slots) ThrowRange(env, "Expected indices: the last topk on this device left none of tokens * k = " + std::to_string(slots));
  } else {
    Napi::Int32Array idx = Int32Arg(info, 1, "indices");
    if (static_cast<int64_t>(idx.ElementLength()) != slots)
      ThrowRange(env, "Expected indices of length tokens * k = " + std::to_string(slots) + " but received " +
                          std::to_string(idx.ElementLength()));
    Upload(env, g->indices, idx.Data(), sizeof(int32_t) * slots, g->stream, "cuda.gatingDispatch (indices)");
    g->last_slots = slots;
  }
  Check(env, g->scratch.Reserve(sizeof(int32_t) * DispatchScratch(p)), "cuda.gatingDispatch");
  Check(env, g->loads.Reserve(sizeof(int32_t) * p.experts), "cuda.gatingDispatch");
  Check(env, g->counts.Reserve(sizeof(int32_t) * p.experts), "cuda.gatingDispatch");
  Check(env, g->offsets.Reserve(sizeof(int32_t) * (p.experts + 1)), "cuda.gatingDispatch");
  Check(env, g->permutation.Reserve(sizeof(int32_t) * std::max<int64_t>(most, 1)), "cuda.gatingDispatch");
  Check(env, g->slot_position.Reserve(sizeof(int32_t) * std::max<int64_t>(slots, 1)), "cuda.gatingDispatch");
  Check(env, g->dropped.Reserve(sizeof(int32_t) * std::max<int64_t>(slots, 1)), "cuda.gatingDispatch");
  Check(env, g->sizes.Reserve(sizeof(long long) * 3), "cuda.gatingDispatch");
  Check(env, RunDispatch(g, p), "cuda.gatingDispatch (kernel launch)");
  long long sizes[3] = {0, 0, -1};
  Check(env, cudaMemcpyAsync(sizes, g->sizes.ptr, sizeof sizes, cudaMemcpyDeviceToHost, g->stream), "cuda.gatingDispatch");
  Check(env, cudaStreamSynchronize(g->stream), "cuda.gatingDispatch");
  if (sizes[2] != -1) {
    int32_t e = 0;
    Check(env, cudaMemcpy(&e, g->indices.as<int32_t>() + sizes[2], sizeof e, cudaMemcpyDeviceToHost), "cuda.gatingDispatch");
    ThrowRange(env, "Expected expert indices in [-1, experts] but indices[" + std::to_string(sizes[2]) + "] is " +
                        std::to_string(e));
  }
  g->last_dispatch = p;
  g->has_dispatch = true;
  Napi::Object o = Napi::Object::New(env);
  o.Set("loads", Download(env, g->loads, p.experts, g->stream));
  o.Set("counts", Download(env, g->counts, p.experts, g->stream));
  o.Set("offsets", Download(env, g->offsets, p.experts + 1, g->stream));
  o.Set("permutation", Download(env, g->permutation, sizes[0], g->stream));
  o.Set("slotPosition", Download(env, g->slot_position, slots, g->stream));
  o.Set("dropped", Download(env, g->dropped, sizes[1], g->stream));
  Check(env, cudaStreamSynchronize(g->stream), "cuda.gatingDispatch");
  return o;
}

// cuda.gatingTime(handle, which (0 the last topk, 1 the softmax + sort baseline on its logits, 2 the last dispatch), iterations)
Napi::Value GatingTimeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 3, "cuda.gatingTime");
  Gating* g = Unwrap<Gating>(info, 0, kGatingTag, "CudaGating");
  const int64_t which = IntArg(info, 1, "which", 0, 2);
  const int64_t iterations = IntArg(info, 2, "iterations", 1, 1 << 20);
  if (!g->has_last || (which == 2 && !g->has_dispatch)) throw Napi::Error::New(env, "cuda.gatingTime: nothing run yet to time");
  const GatingParams p = g->last;
  const float* bias = g->last_bias ? g->bias.as<float>() : nullptr;
  double ms = 0;
  if (which == 0) {
    ms = TimeRuns(env, g->stream, iterations, [&] {
      return GatingTopk(g->logits.as<float>(), bias, p, g->weights.as<float>(), g->indices.as<int32_t>(),
                        g->bad.as<unsigned long long>(), g->stream);
    });
  } else if (which == 1) {
    if (p.experts > 1024) ThrowRange(env, "Expected experts <= 1024 for the baseline");
    Check(env, g->probs.Reserve(sizeof(float) * p.tokens * p.experts), "cuda.gatingTime");
    Check(env, g->base_w.Reserve(sizeof(float) * p.tokens * p.k), "cuda.gatingTime");
    Check(env, g->base_i.Reserve(sizeof(int32_t) * p.tokens * p.k), "cuda.gatingTime");
    ms = TimeRuns(env, g->stream, iterations, [&] {
      return BaselineSoftmaxSort(g->logits.as<float>(), p.tokens, p.experts, p.k, g->probs.as<float>(),
                                 g->base_w.as<float>(), g->base_i.as<int32_t>(), g->stream);
    });
  } else {
    ms = TimeRuns(env, g->stream, iterations, [&] { return RunDispatch(g, g->last_dispatch); });
  }
  return Napi::Number::New(env, ms);
}

// ---------------------------------------------------------------- KV cache

struct Kv : Resource {
  int32_t layers = 0, kv_heads = 0, dim = 0, sink = 0, ring = 0, sms = 1;
  int64_t max_tokens = 0;
  KvType type = KvType::kF16;
  struct Layer {
    std::vector<void*> k, v;  // per KV head
    std::vector<uint8_t> streaming;
    int64_t capacity = 0;     // rows of each retrieval head
    Buffer table;             // k pointers, v pointers, flags
  };
  std::vector<Layer> per_layer;
  Buffer src_k, src_v, q, out, lse, scratch;
  AttendParams last;
  int32_t last_layer = -1;
  bool last_lse = false;
  size_t elem() const { return 2; }
  void Release() override {
    for (Layer& l : per_layer) {
      for (void* p : l.k) if (p != nullptr) cudaFree(p);
      for (void* p : l.v) if (p != nullptr) cudaFree(p);
      l.k.assign(l.k.size(), nullptr);
      l.v.assign(l.v.size(), nullptr);
      l.table.Free();
    }
    for (Buffer* b : {&src_k, &src_v, &q, &out, &lse, &scratch}) b->Free();
  }
  double Allocated() const {
    double bytes = 0;
    for (const Layer& l : per_layer)
      for (size_t h = 0; h < l.streaming.size(); ++h)
        bytes += 2.0 * elem() * dim * (l.streaming[h] ? sink + ring : l.capacity) * (l.k[h] != nullptr ? 1 : 0);
    return bytes;
  }
  KvHeadTable Table(const Layer& l) const {
    void** p = l.table.as<void*>();
    return {p, p + kv_heads, reinterpret_cast<const uint8_t*>(p + 2 * kv_heads)};
  }
};

cudaError_t UploadTable(Kv* kv, Kv::Layer& l) {
  const size_t bytes = sizeof(void*) * 2 * kv->kv_heads + kv->kv_heads;
  cudaError_t err = l.table.Reserve(bytes);
  if (err != cudaSuccess) return err;
  std::vector<uint8_t> host(bytes);
  std::memcpy(host.data(), l.k.data(), sizeof(void*) * kv->kv_heads);
  std::memcpy(host.data() + sizeof(void*) * kv->kv_heads, l.v.data(), sizeof(void*) * kv->kv_heads);
  std::memcpy(host.data() + sizeof(void*) * 2 * kv->kv_heads, l.streaming.data(), kv->kv_heads);
  return cudaMemcpy(l.table.ptr, host.data(), bytes, cudaMemcpyHostToDevice);
}

// cuda.kvOpen(layers, kvHeads, headDim, sink, ring, maxTokens, type (0 float16, 1 bf16), streaming Uint8Array [layers * kvHeads])
Napi::Value KvOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 8, "cuda.kvOpen");
  if (!Available()) throw Napi::Error::New(env, "CUDA is not available: " + Unavailable());
  Kv* kv = new Kv();
  try {
    kv->layers = static_cast<int32_t>(IntArg(info, 0, "layers", 1, 4096));
    kv->kv_heads = static_cast<int32_t>(IntArg(info, 1, "kvHeads", 1, 65536));
    kv->dim = static_cast<int32_t>(IntArg(info, 2, "headDim", 8, 256));
    if (kv->dim % 8 != 0) ThrowRange(env, "Expected headDim a multiple of 8 on the device");
    kv->sink = static_cast<int32_t>(IntArg(info, 3, "sink", 0, 1 << 30));
    kv->ring = static_cast<int32_t>(IntArg(info, 4, "ring", 1, 1 << 30));
    kv->max_tokens = IntArg(info, 5, "maxTokens", 1, int64_t{1} << 40);
    kv->type = static_cast<KvType>(IntArg(info, 6, "type", 0, 1));
    Napi::Uint8Array flags = TypedArg<Napi::Uint8Array>(info, 7, napi_uint8_array, "streaming", "Uint8Array");
    if (static_cast<int64_t>(flags.ElementLength()) != static_cast<int64_t>(kv->layers) * kv->kv_heads)
      ThrowRange(env, "Expected streaming of length layers * kvHeads");
    int device = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&kv->sms, cudaDevAttrMultiProcessorCount, device);
    kv->per_layer.resize(kv->layers);
    for (int32_t l = 0; l < kv->layers; ++l) {
      Kv::Layer& L = kv->per_layer[l];
      L.k.assign(kv->kv_heads, nullptr);
      L.v.assign(kv->kv_heads, nullptr);
      L.streaming.assign(flags.Data() + static_cast<size_t>(l) * kv->kv_heads, flags.Data() + static_cast<size_t>(l + 1) * kv->kv_heads);
    }
  } catch (...) {
    delete kv;
    throw;
  }
  kv = Open(env, kv);
  Napi::Value handle = Wrap(env, kv, kKvTag);
  for (Kv::Layer& L : kv->per_layer) {
    for (int32_t h = 0; h < kv->kv_heads; ++h) {
      if (!L.streaming[h]) continue;
      const size_t bytes = kv->elem() * kv->dim * static_cast<size_t>(kv->sink + kv->ring);
      Check(env, cudaMalloc(&L.k[h], bytes), "cuda.kvOpen (cudaMalloc)");
      Check(env, cudaMalloc(&L.v[h], bytes), "cuda.kvOpen (cudaMalloc)");
    }
    Check(env, UploadTable(kv, L), "cuda.kvOpen");
  }
  return handle;
}

// Retrieval heads of a layer get room for `need` rows (doubling from 256, at most maxTokens).
void Grow(Napi::Env env, Kv* kv, Kv::Layer& L, int64_t need, int64_t used) {
  if (need <= L.capacity) return;
  int64_t cap = std::max<int64_t>(L.capacity, std::min<int64_t>(256, kv->max_tokens));
  while (cap < need) cap = std::min(kv->max_tokens, cap * 2);
  const size_t row = kv->elem() * kv->dim;
  for (int32_t h = 0; h < kv->kv_heads; ++h) {
    if (L.streaming[h]) continue;
    for (std::vector<void*>* side : {&L.k, &L.v}) {
      void* fresh = nullptr;
      Check(env, cudaMalloc(&fresh, row * cap), "KV cache growth (cudaMalloc)");
      void*& old = (*side)[h];
      if (old != nullptr && used > 0) {
        const cudaError_t err = cudaMemcpyAsync(fresh, old, row * used, cudaMemcpyDeviceToDevice, kv->stream);
        if (err != cudaSuccess) cudaFree(fresh);
        Check(env, err, "KV cache growth (copy)");
      }
      if (old != nullptr) {
        cudaStreamSynchronize(kv->stream);
        cudaFree(old);
      }
      old = fresh;
    }
  }
  L.capacity = cap;
  Check(env, UploadTable(kv, L), "KV cache growth");
}

// cuda.kvStore(handle, layer, pos0, n, k, v): k and v [n, kvHeads, headDim], Float32Array or (float16) Uint16Array.
Napi::Value KvStoreJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 6, "cuda.kvStore");
  Kv* kv = Unwrap<Kv>(info, 0, kKvTag, "DuoKVCache");
  const int32_t layer = static_cast<int32_t>(IntArg(info, 1, "layer", 0, kv->layers - 1));
  const int64_t pos0 = IntArg(info, 2, "pos0", 0, kv->max_tokens);
  const int32_t n = static_cast<int32_t>(IntArg(info, 3, "n", 0, kv->max_tokens - pos0));
  const bool f16 = info[4].IsTypedArray() && info[4].As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array;
  if (f16 && kv->type != KvType::kF16) ThrowType(env, "Expected Float32Array keys for a bf16 cache");
  Napi::TypedArray k = f16 ? static_cast<Napi::TypedArray>(TypedArg<Napi::Uint16Array>(info, 4, napi_uint16_array, "k", "Uint16Array"))
                           : static_cast<Napi::TypedArray>(Float32Arg(info, 4, "k"));
  Napi::TypedArray v = f16 ? static_cast<Napi::TypedArray>(TypedArg<Napi::Uint16Array>(info, 5, napi_uint16_array, "v", "Uint16Array"))
                           : static_cast<Napi::TypedArray>(Float32Arg(info, 5, "v"));
  const size_t elements = static_cast<size_t>(n) * kv->kv_heads * kv->dim;
  if (k.ElementLength() != elements || v.ElementLength() != elements)
    ThrowRange(env, "Expected k and v of length n * kvHeads * headDim = " + std::to_string(elements));
  Kv::Layer& L = kv->per_layer[layer];
  Grow(env, kv, L, pos0 + n, pos0);
  const size_t bytes = elements * (f16 ? 2 : 4);
  Upload(env, kv->src_k, static_cast<uint8_t*>(k.ArrayBuffer().Data()) + k.ByteOffset(), bytes, kv->stream, "cuda.kvStore");
  Upload(env, kv->src_v, static_cast<uint8_t*>(v.ArrayBuffer().Data()) + v.ByteOffset(), bytes, kv->stream, "cuda.kvStore");
  KvStoreParams p;
  p.kv_heads = kv->kv_heads;
  p.dim = kv->dim;
  p.sink = kv->sink;
  p.ring = kv->ring;
  p.n = n;
  p.pos0 = pos0;
  p.type = kv->type;
  p.src_f16 = f16;
  Check(env, KvStore(kv->src_k.ptr, kv->src_v.ptr, kv->Table(L), p, kv->stream), "cuda.kvStore (kernel launch)");
  Check(env, cudaStreamSynchronize(kv->stream), "cuda.kvStore");
  return env.Undefined();
}

cudaError_t RunAttend(Kv* kv, int32_t layer, const AttendParams& p, bool want_lse) {
  return Attend(kv->q.as<float>(), kv->Table(kv->per_layer[layer]), p, kv->scratch.as<float>(), kv->out.as<float>(),
                want_lse ? kv->lse.as<float>() : nullptr, kv->stream);
}

// cuda.kvAttend(handle, layer, pos0, queries, queryHeads, q, scale, recent, out, lse|null): queries at
// positions pos0.. over every stored position each head keeps (the queries' own keys stored first).
Napi::Value KvAttendJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 10, "cuda.kvAttend");
  Kv* kv = Unwrap<Kv>(info, 0, kKvTag, "DuoKVCache");
  AttendParams p;
  const int32_t layer = static_cast<int32_t>(IntArg(info, 1, "layer", 0, kv->layers - 1));
  p.pos0 = IntArg(info, 2, "pos0", 0, kv->max_tokens - 1);
  p.queries = static_cast<int32_t>(IntArg(info, 3, "queries", 1, std::min<int64_t>(kv->max_tokens - p.pos0, 65535)));
  p.query_heads = static_cast<int32_t>(IntArg(info, 4, "queryHeads", kv->kv_heads, 65536));
  if (p.query_heads % kv->kv_heads != 0) ThrowRange(env, "Expected queryHeads a multiple of kvHeads");
  Napi::Float32Array q = Float32Arg(info, 5, "q");
  p.scale = static_cast<float>(NumberArg(info, 6, "scale"));
  p.recent = static_cast<int32_t>(IntArg(info, 7, "recent", 1, kv->ring));
  Napi::Float32Array out = Float32Arg(info, 8, "out");
  const bool want_lse = !IsNullish(info[9]);
  p.kv_heads = kv->kv_heads;
  p.dim = kv->dim;
  p.sink = kv->sink;
  p.ring = kv->ring;
  p.type = kv->type;
  const size_t rows = static_cast<size_t>(p.queries) * p.query_heads;
  if (q.ElementLength() != rows * p.dim || out.ElementLength() != rows * p.dim)
    ThrowRange(env, "Expected q and out of length queries * queryHeads * headDim = " + std::to_string(rows * p.dim));
  Napi::Float32Array lse;
  if (want_lse) {
    lse = Float32Arg(info, 9, "lse");
    if (lse.ElementLength() != rows) ThrowRange(env, "Expected lse of length queries * queryHeads = " + std::to_string(rows));
  }
  Kv::Layer& L = kv->per_layer[layer];
  bool any_retrieval = false;
  for (uint8_t s : L.streaming) any_retrieval = any_retrieval || s == 0;
  const int64_t last = p.pos0 + p.queries;  // visible positions of the last query, full
  const int64_t most = any_retrieval ? last : std::min<int64_t>(last, static_cast<int64_t>(kv->sink) + p.recent);
  if (any_retrieval && last > L.capacity) ThrowRange(env, "Expected the queries' positions to be stored before cudaKvAttend");
  // Enough split-K blocks to fill the device about eight times over, each at least 128 positions.
  const int64_t group = QueryHeadsPerBlock(p.query_heads / p.kv_heads);
  const int64_t gchunks = (p.query_heads / p.kv_heads + group - 1) / group;
  const int64_t others = static_cast<int64_t>(p.kv_heads) * gchunks * p.queries;
  const int64_t want = std::max<int64_t>(1, (8 * static_cast<int64_t>(kv->sms) + others - 1) / others);
  int64_t split = (most + want - 1) / want;
  split = std::max<int64_t>(128, (split + 127) / 128 * 128);
  p.split = static_cast<int32_t>(std::min<int64_t>(split, int64_t{1} << 30));
  p.splits = static_cast<int32_t>((most + p.split - 1) / p.split);
  Upload(env, kv->q, q.Data(), sizeof(float) * q.ElementLength(), kv->stream, "cuda.kvAttend");
  Check(env, kv->out.Reserve(sizeof(float) * out.ElementLength()), "cuda.kvAttend");
  Check(env, kv->lse.Reserve(sizeof(float) * rows), "cuda.kvAttend");
  Check(env, kv->scratch.Reserve(sizeof(float) * AttendScratch(p)), "cuda.kvAttend");
  Check(env, RunAttend(kv, layer, p, want_lse), "cuda.kvAttend (kernel launch)");
  Check(env, cudaMemcpyAsync(out.Data(), kv->out.ptr, sizeof(float) * out.ElementLength(), cudaMemcpyDeviceToHost, kv->stream), "cuda.kvAttend");
  if (want_lse) Check(env, cudaMemcpyAsync(lse.Data(), kv->lse.ptr, sizeof(float) * rows, cudaMemcpyDeviceToHost, kv->stream), "cuda.kvAttend");
  Check(env, cudaStreamSynchronize(kv->stream), "cuda.kvAttend");
  kv->last = p;
  kv->last_layer = layer;
  kv->last_lse = want_lse;
  return env.Undefined();
}

// cuda.kvTime(handle, iterations): milliseconds per rerun of the last cudaKvAttend (its q still on the device).
Napi::Value KvTimeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 2, "cuda.kvTime");
  Kv* kv = Unwrap<Kv>(info, 0, kKvTag, "DuoKVCache");
  const int64_t iterations = IntArg(info, 1, "iterations", 1, 1 << 20);
  if (kv->last_layer < 0) throw Napi::Error::New(env, "cuda.kvTime: nothing run yet to time");
  const double ms = TimeRuns(env, kv->stream, iterations, [&] { return RunAttend(kv, kv->last_layer, kv->last, kv->last_lse); });
  return Napi::Number::New(env, ms);
}

Napi::Value KvBytesJs(const Napi::CallbackInfo& info) {
  Kv* kv = Unwrap<Kv>(info, 0, kKvTag, "DuoKVCache");
  return Napi::Number::New(info.Env(), kv->Allocated());
}

// cuda.copyTime(bytes, iterations): milliseconds per device-to-device copy of `bytes` by the copy kernel.
Napi::Value CopyTimeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 2, "cuda.copyTime");
  if (!Available()) throw Napi::Error::New(env, "CUDA is not available: " + Unavailable());
  const int64_t bytes = IntArg(info, 0, "bytes", 16, int64_t{1} << 40) / 16 * 16;
  const int64_t iterations = IntArg(info, 1, "iterations", 1, 1 << 20);
  Buffer a, b;
  cudaStream_t s = nullptr;
  Check(env, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cuda.copyTime");
  double ms = 0;
  try {
    Check(env, a.Reserve(bytes), "cuda.copyTime (cudaMalloc)");
    Check(env, b.Reserve(bytes), "cuda.copyTime (cudaMalloc)");
    Check(env, cudaMemsetAsync(a.ptr, 1, bytes, s), "cuda.copyTime");
    ms = TimeRuns(env, s, iterations, [&] { return Copy(b.ptr, a.ptr, bytes, s); });
  } catch (...) {
    a.Free();
    b.Free();
    cudaStreamDestroy(s);
    throw;
  }
  a.Free();
  b.Free();
  cudaStreamDestroy(s);
  return Napi::Number::New(env, ms);
}

Napi::Value CloseJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value v = info[0];
  bool gating = false, kv = false;
  if (v.IsExternal()) {
    napi_check_object_type_tag(env, v, &kGatingTag, &gating);
    napi_check_object_type_tag(env, v, &kKvTag, &kv);
  }
  if (gating) v.As<Napi::External<Gating>>().Data()->Close();
  else if (kv) v.As<Napi::External<Kv>>().Data()->Close();
  else ThrowType(env, "Expected a CUDA handle");
  return env.Undefined();
}

}  // namespace

void InitDeviceBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("gatingOpen", Napi::Function::New(env, GatingOpen, "cuda.gatingOpen"));
  exports.Set("gatingTopk", Napi::Function::New(env, GatingTopkJs, "cuda.gatingTopk"));
  exports.Set("gatingDispatch", Napi::Function::New(env, GatingDispatchJs, "cuda.gatingDispatch"));
  exports.Set("gatingTime", Napi::Function::New(env, GatingTimeJs, "cuda.gatingTime"));
  exports.Set("kvOpen", Napi::Function::New(env, KvOpen, "cuda.kvOpen"));
  exports.Set("kvStore", Napi::Function::New(env, KvStoreJs, "cuda.kvStore"));
  exports.Set("kvAttend", Napi::Function::New(env, KvAttendJs, "cuda.kvAttend"));
  exports.Set("kvTime", Napi::Function::New(env, KvTimeJs, "cuda.kvTime"));
  exports.Set("kvBytes", Napi::Function::New(env, KvBytesJs, "cuda.kvBytes"));
  exports.Set("copyTime", Napi::Function::New(env, CopyTimeJs, "cuda.copyTime"));
  exports.Set("close", Napi::Function::New(env, CloseJs, "cuda.close"));
}

}  // namespace cuda
}  // namespace capibara
#endif  // CAPIBARA_HAS_CUDA
