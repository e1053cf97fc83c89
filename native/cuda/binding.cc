// What the addon knows about CUDA, compiled in every build: whether the kernels were compiled
// in (and why not), and at run time whether a driver and a device answer. The probe runs once
// per process, at the first call: cudart (linked statically) loads libcuda.so.1 then, so a
// machine without the NVIDIA driver gets the runtime's error string here instead of a load failure.
#include <napi.h>

#include <mutex>
#include <string>
#include <vector>

#include "cuda/device.h"

#if CAPIBARA_HAS_CUDA
#include <cuda_runtime_api.h>
#endif

namespace capibara {
namespace cuda {

namespace {

struct Device {
  std::string name;
  int major = 0, minor = 0, sms = 0;
  double memory = 0;
};

struct Probe {
  std::string status;  // available | no-driver | no-device | error | not-compiled
  std::string reason;
  int runtime = 0, driver = 0;
  std::vector<Device> devices;
};

const Probe& Probed() {
  static std::once_flag once;
  static Probe probe;
  std::call_once(once, [] {
#if CAPIBARA_HAS_CUDA
    cudaRuntimeGetVersion(&probe.runtime);
    const cudaError_t derr = cudaDriverGetVersion(&probe.driver);  // 0 without a driver, not an error
    (void)derr;
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      const std::string text = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
      if (err == cudaErrorNoDevice) {
        probe.status = "no-device";
        probe.reason = "no device: cudaGetDeviceCount failed with " + text;
      } else if (err == cudaErrorInsufficientDriver || probe.driver == 0) {
        probe.status = "no-driver";
        probe.reason = "no driver: cudaGetDeviceCount failed with " + text;
      } else {
        probe.status = "error";
        probe.reason = "CUDA error: cudaGetDeviceCount failed with " + text;
      }
      return;
    }
    if (count == 0) {
      probe.status = "no-device";
      probe.reason = "no device: cudaGetDeviceCount found 0 devices";
      return;
    }
    for (int i = 0; i < count; ++i) {
      cudaDeviceProp prop{};
      if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
      probe.devices.push_back({prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                               static_cast<double>(prop.totalGlobalMem)});
    }
    probe.status = "available";
#else
    probe.status = "not-compiled";
    probe.reason = CAPIBARA_CUDA_OFF_REASON;
#endif
  });
  return probe;
}

// cuda.info(): { compiled, architectures, status, reason, runtimeVersion, driverVersion, devices }.
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Probe& p = Probed();
  Napi::Object o = Napi::Object::New(env);
  o.Set("compiled", Napi::Boolean::New(env, CAPIBARA_HAS_CUDA != 0));
#if CAPIBARA_HAS_CUDA
  o.Set("architectures", Napi::String::New(env, CAPIBARA_CUDA_ARCHITECTURES));
#else
  o.Set("architectures", env.Null());
#endif
  o.Set("status", Napi::String::New(env, p.status));
  o.Set("reason", p.reason.empty() ? env.Null() : Napi::String::New(env, p.reason));
  o.Set("runtimeVersion", p.runtime ? Napi::Number::New(env, p.runtime) : env.Null());
  o.Set("driverVersion", p.driver ? Napi::Number::New(env, p.driver) : env.Null());
  Napi::Array devices = Napi::Array::New(env, p.devices.size());
  for (size_t i = 0; i < p.devices.size(); ++i) {
    const Device& d = p.devices[i];
    Napi::Object x = Napi::Object::New(env);
    x.Set("name", d.name);
    x.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
    x.Set("multiProcessors", d.sms);
    x.Set("memoryBytes", d.memory);
    devices.Set(static_cast<uint32_t>(i), x);
  }
  o.Set("devices", devices);
  return o;
}

}  // namespace

bool Available() { return Probed().status == "available"; }
const std::string& Unavailable() { return Probed().reason; }

}  // namespace cuda

// Everything CUDA sits under one export, `cuda`: { info } always, the device entry points with CUDA.
void InitCuda(Napi::Env env, Napi::Object exports) {
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("info", Napi::Function::New(env, cuda::Info, "cuda.info"));
#if CAPIBARA_HAS_CUDA
  cuda::InitDeviceBindings(env, cuda);
#endif
  exports.Set("cuda", cuda);
}

}  // namespace capibara
