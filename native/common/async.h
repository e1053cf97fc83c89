// Promise-returning kernels. Scalars are copied into the worker and typed arrays are borrowed
// (Borrow: pinned and read in place until the promise settles, never copied) on the JS thread;
// Execute() only sees raw pointers and never touches Node-API. Outputs are allocated by the
// worker and handed to JS when the promise resolves. Errors keep their kind (TypeError /
// RangeError / Error).
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

  // The one input policy of every async kernel (DESIGN.md convention 2, as onnxruntime-node's
  // async run): a typed array argument is borrowed, i.e. pinned (a reference keeps the array and
  // its buffer alive even if JS drops every other) and read in place until the promise settles.
  // The caller must not write, detach (transfer) or shrink it meanwhile. A detach or shrink that
  // is still visible when the run ends rejects the promise instead of resolving it with what was
  // read; it cannot undo reads of memory freed meanwhile, which is why the contract forbids it.
  template <typename T>
  const T* Borrow(const Napi::TypedArrayOf<T>& a) {
    borrowed_.push_back(Borrowed{Napi::Persistent(static_cast<const Napi::Object&>(a)), a.Data(), a.ElementLength()});
    return a.Data();
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
    Settle([&] {
      if (BorrowedChanged()) {
        deferred_.Reject(Napi::Error::New(Env(), std::string(name_) +
                                                     ": an input was detached or shrunk while the kernel ran (async kernels "
                                                     "borrow their inputs until the promise settles)")
                             .Value());
        return;
      }
      deferred_.Resolve(Result(Env()));
    });
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
  struct Borrowed {
    Napi::ObjectReference array;
    const void* data;
    size_t length;  // elements
  };

  // Whether a borrowed array no longer covers the elements it had when borrowed (a detached
  // buffer has none left; a shrunk one fewer); growing in place is harmless.
  bool BorrowedChanged() {
    for (const Borrowed& b : borrowed_) {
      if (b.length == 0) continue;  // nothing was read
      void* data = nullptr;
      size_t length = 0;
      if (napi_get_typedarray_info(Env(), b.array.Value(), nullptr, &length, &data, nullptr, nullptr) != napi_ok ||
          data != b.data || length < b.length)
        return true;
    }
    return false;
  }

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
  std::vector<Borrowed> borrowed_;
  ErrorKind kind_ = ErrorKind::kError;
};

}  // namespace capibara
