// Shared by the CUDA bindings: the run-time probe (binding.cc) and the device exports' registration.
#pragma once
#include <napi.h>

#include <string>

namespace capibara {
namespace cuda {
// Whether a CUDA device answered the probe; otherwise why not (nativeInfo().cuda.reason).
bool Available();
const std::string& Unavailable();
#if CAPIBARA_HAS_CUDA
void InitDeviceBindings(Napi::Env env, Napi::Object exports);
#endif
}  // namespace cuda
}  // namespace capibara
