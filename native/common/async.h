// Promise-returning kernels. Scalars are copied into the worker and typed-array inputs taken
// with Take (the one input policy, below) on the JS thread; Execute() only sees raw pointers and
// never touches Node-API. Outputs are allocated by the worker and handed to JS when the promise
// resolves. Errors keep their kind (TypeError / RangeError / Error).
#pragma once
#include <napi.h>

#include <cstring>
#include <exception>
#include <memory>
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

  // Keeps a JS object alive until the worker completes.
  void Pin(const Napi::Value& v) {
    if (v.IsObject()) pinned_.emplace_back(Napi::Persistent(v.As<Napi::Object>()));
  }

  // Queues the worker and returns its promise (the worker deletes itself when settled).
  Napi::Value Start() {
    Napi::Promise promise = Promise();
    Queue();
    return promise;
  }

  // The one input policy of every async kernel: whatever the caller does to its arrays while the
  // kernel runs, the worker never reads memory JS can free or shrink. An input on a
  // SharedArrayBuffer (which JS can neither detach nor shrink, and which stays alive while
  // pinned) is pinned and read in place, so the caller must not write it until the promise
  // settles; any other input is copied now, when the call is made, so the caller may reuse,
  // write or transfer it at once. A copy that cannot be allocated is a RangeError that suggests
  // a SharedArrayBuffer. Returns where the worker reads the elements.
  template <typename T>
  const T* Take(const Napi::TypedArrayOf<T>& a) {
    if (OnSharedBuffer(a)) {
      Pin(a);
      return a.Data();
    }
    const size_t n = a.ElementLength();
    if (n == 0) return a.Data();  // nothing is read
    const size_t bytes = n * sizeof(T);
    unsigned char* copy = nullptr;
    try {
      // new unsigned char[] is aligned for every fundamental type (the element types here).
      std::unique_ptr<unsigned char[]> block(new unsigned char[bytes]);
      copies_.push_back(std::move(block));
      copy = copies_.back().get();
    } catch (const std::bad_alloc&) {
      throw Napi::RangeError::New(Env(), "Could not copy " + std::to_string(bytes) + " bytes for " + name_ +
                                             ": put the array on a SharedArrayBuffer to have it read in place");
    }
    std::memcpy(copy, a.Data(), bytes);
    return reinterpret_cast<const T*>(copy);
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
  // A typed array's buffer is an ArrayBuffer or a SharedArrayBuffer, and only the first answers
  // napi_is_arraybuffer: an engine check that JS cannot fake.
  static bool OnSharedBuffer(const Napi::TypedArray& a) { return !a.ArrayBuffer().IsArrayBuffer(); }

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
  std::vector<std::unique_ptr<unsigned char[]>> copies_;  // of the inputs not on a SharedArrayBuffer
  ErrorKind kind_ = ErrorKind::kError;
};

}  // namespace capibara
