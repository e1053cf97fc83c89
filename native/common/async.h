// Promise-returning kernels. Arguments are copied into the worker (scalars) or pinned
// with references (typed arrays) on the JS thread; Execute() only sees raw pointers and
// never touches Node-API. Errors keep their kind (TypeError / RangeError / Error).
#pragma once
#include <napi.h>

#include <exception>
#include <new>
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

  // Queues the worker and returns its promise (the worker deletes itself when settled).
  Napi::Value Start() {
    Napi::Promise promise = Promise();
    Queue();
    return promise;
  }

  // A typed array's buffer is an ArrayBuffer or a SharedArrayBuffer, and only the first answers
  // napi_is_arraybuffer: an engine check that JS cannot fake.
  static bool OnSharedBuffer(const Napi::TypedArray& a) { return !a.ArrayBuffer().IsArrayBuffer(); }

  // Elements of `a` readable until the worker completes. JS can detach or shrink an ArrayBuffer
  // while the worker runs, so only a SharedArrayBuffer (which it can do neither to, and which
  // stays alive while pinned) is read in place; anything else is copied into `copy`.
  template <typename T, typename Array>
  const T* Keep(const Array& a, std::vector<T>& copy) {
    if (OnSharedBuffer(a)) {
      Pin(a);
      return a.Data();
    }
    try {
      copy.assign(a.Data(), a.Data() + a.ElementLength());
    } catch (const std::bad_alloc&) {
      throw Napi::RangeError::New(Env(), "Could not copy " + std::to_string(a.ByteLength()) + " bytes for " + name_ +
                                             ": put the array on a SharedArrayBuffer to have it read in place");
    }
    return copy.data();
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
