// Defensive argument checks for bindings. TypeScript validates first and gives the
// user-facing messages; these guards make sure a direct call with bad input throws
// (TypeError for the wrong kind, RangeError for a bad value) instead of crashing.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace capibara {

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& msg) {
  throw Napi::TypeError::New(env, msg);
}
[[noreturn]] inline void ThrowRange(Napi::Env env, const std::string& msg) {
  throw Napi::RangeError::New(env, msg);
}

inline void RequireArgs(const Napi::CallbackInfo& info, size_t n, const char* fn) {
  if (info.Length() < n)
    ThrowType(info.Env(), std::string(fn) + " expects " + std::to_string(n) + " arguments but received " +
                              std::to_string(info.Length()));
}

template <typename Array>
inline Array TypedArg(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, const char* name,
                      const char* expected) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    ThrowType(info.Env(), std::string("Expected ") + expected + " for " + name);
  return v.As<Array>();
}

inline Napi::Float32Array Float32Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return TypedArg<Napi::Float32Array>(info, i, napi_float32_array, name, "Float32Array");
}
inline Napi::Int32Array Int32Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return TypedArg<Napi::Int32Array>(info, i, napi_int32_array, name, "Int32Array");
}
inline Napi::Float64Array Float64Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return TypedArg<Napi::Float64Array>(info, i, napi_float64_array, name, "Float64Array");
}
inline bool IsNullish(const Napi::Value& v) { return v.IsNull() || v.IsUndefined(); }

// An integer in [lo, hi]; rejects fractions, NaN and anything outside the range.
inline int64_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowType(info.Env(), std::string("Expected integer for ") + name);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || std::floor(d) != d)
    ThrowRange(info.Env(), std::string("Expected integer in [") + std::to_string(lo) + ", " + std::to_string(hi) +
                               "] for " + name);
  return static_cast<int64_t>(d);
}

inline double NumberArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowType(info.Env(), std::string("Expected number for ") + name);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) ThrowRange(info.Env(), std::string("Expected finite number for ") + name);
  return d;
}

inline bool BoolArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) ThrowType(info.Env(), std::string("Expected boolean for ") + name);
  return v.As<Napi::Boolean>().Value();
}

// Maximum threads any kernel will start, whatever the caller asks.
constexpr int64_t kMaxThreads = 256;

}  // namespace capibara
