// Bounded fork-join over index ranges. Kernels only go parallel when a call has enough
// work to amortise starting threads (tens of microseconds), so a persistent pool is not
// worth its shutdown and cross-worker contention; the calling thread takes the first block.
// The first exception thrown in any block is rethrown on the caller after the join.
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace capibara {

// Calls fn(begin, end) over [0, n) split into at most `threads` contiguous blocks.
template <typename Fn>
void ParallelFor(int64_t n, int threads, Fn&& fn) {
  if (n <= 0) return;
  const int64_t t = std::max<int64_t>(1, std::min<int64_t>(threads, n));
  if (t == 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::exception_ptr first;
  std::mutex mu;
  auto run = [&](int64_t b, int64_t e) {
    try {
      fn(b, e);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!first) first = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(t - 1));
  const int64_t chunk = (n + t - 1) / t;
  int64_t i = 1;
  try {
    for (; i < t; ++i) {
      const int64_t b = i * chunk, e = std::min(n, b + chunk);
      if (b < e) pool.emplace_back(run, b, e);
    }
  } catch (...) {
    // No thread could be started (resources exhausted): the caller runs the blocks left, rather
    // than destroying the started threads while joinable (std::terminate).
    for (; i < t; ++i) {
      const int64_t b = i * chunk, e = std::min(n, b + chunk);
      if (b < e) run(b, e);
    }
  }
  run(0, std::min(n, chunk));
  for (auto& th : pool) th.join();
  if (first) std::rethrow_exception(first);
}

// Threads worth using for `work` elementary operations, capped by the caller's limit.
inline int ThreadsFor(int64_t work, int limit, int64_t per_thread = int64_t{1} << 18) {
  const int64_t want = work / per_thread;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(limit, want)));
}

}  // namespace capibara
