// Promise-returning kernels. Arguments are copied into the worker (scalars) or pinned
// with references (typed arrays) on the JS thread; Execute() only sees raw pointers and
// never touches Node-API. Errors keep their kind (TypeError / RangeError / Error).
#pragma once
#include <napi.h>

#include <exception>
#include <string>
#include <utility>
#include <vector>

namespace capibara {

enum class ErrorKind { kError, kType, kRange };

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), name_(name), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  // Keeps a JS value (typically a typed array) alive until the worker completes.
  void Pin(const Napi::Value& v) {
    if (v.IsObject()) pinned_.emplace_back(Napi::Persistent(v.As<Napi::Object>()));
  }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }

  void Fail(ErrorKind kind, std::string msg) {
    kind_ = kind;
    SetError(std::move(msg));
  }

  void Execute() final {
    try {
      Run();
    } catch (const std::exception& e) {
      Fail(ErrorKind::kError, std::string(name_) + ": " + e.what());
    } catch (...) {
      Fail(ErrorKind::kError, std::string("unknown error in ") + name_);
    }
  }

  void OnOK() final {
    Settle([&] { deferred_.Resolve(Result(Env())); });
  }

  void OnError(const Napi::Error& e) final {
    Settle([&] {
      const std::string msg = e.Message();
      Napi::Error err = kind_ == ErrorKind::kType    ? Napi::TypeError::New(Env(), msg)
                        : kind_ == ErrorKind::kRange ? static_cast<Napi::Error>(Napi::RangeError::New(Env(), msg))
                                                     : Napi::Error::New(Env(), msg);
      deferred_.Reject(err.Value());
    });
  }

 private:
  // Settling can fail when the environment is shutting down (a worker terminated mid-run):
  // then no JS can run and there is nobody left to tell, so the failure is dropped rather
  // than escaping as a C++ exception (which would abort the process).
  template <typename Fn>
  void Settle(Fn&& fn) {
    Napi::HandleScope scope(Env());
    try {
      fn();
    } catch (const Napi::Error& e) {
      try {
        deferred_.Reject(e.Value());
      } catch (...) {
      }
    }
  }

  const char* name_;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> pinned_;
  ErrorKind kind_ = ErrorKind::kError;
};

}  // namespace capibara
