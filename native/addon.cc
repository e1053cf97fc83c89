// Addon entry: each feature folder registers its exports. Context-aware (one instance per
// Node environment, so worker threads each get their own); no static JS objects.
#include <napi.h>

namespace capibara {
void InitGating(Napi::Env env, Napi::Object exports);
void InitMemory(Napi::Env env, Napi::Object exports);
void InitAttention(Napi::Env env, Napi::Object exports);
void InitCuda(Napi::Env env, Napi::Object exports);
}  // namespace capibara

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  capibara::InitGating(env, exports);
  capibara::InitMemory(env, exports);
  capibara::InitAttention(env, exports);
  capibara::InitCuda(env, exports);
  exports.Set("abiVersion", Napi::Number::New(env, 4));
  exports.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  return exports;
}

NODE_API_MODULE(capibara, Init)
