// Two builds of the attention kernel (native/attention/attend.cc from two revisions: A in
// namespace capibara, B renamed to capb by the preprocessor) timed in alternation on the same
// key/value buffers. On the project's VMs equal allocations read at speeds up to 2x apart, so
// only a comparison over one set of buffers can tell a kernel change from where memory landed.
// Built and run by run.sh; not part of the package.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "attention/kernels.h"
#include "bench/floors.h"
#include "kernels_b.h"

using namespace capibara::attention;

static double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: ab KEYS ROUNDS FORMAT(f32|f16|bf16|int8) [THREADS]\n");
    return 2;
  }
  const int64_t keys = std::atoll(argv[1]), rounds = std::max<int64_t>(3, std::atoll(argv[2]));
  const std::string name = argv[3];
  const Format fm = name == "f32" ? Format::kBlockF32 : name == "f16" ? Format::kBlockF16 : name == "bf16" ? Format::kBlockBf16 : Format::kBlockI8;
  const int64_t kKvHeads = 8, kGroup = 4, kDim = 128, kSource = 4096;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> k(kSource * kDim), v(kSource * kDim), q(kGroup * kKvHeads * kDim), oa(q.size()), ob(q.size());
  for (auto* x : {&k, &v, &q})
    for (float& e : *x) e = nd(rng);
  const int64_t blocks = (keys + kBlockKeys - 1) / kBlockKeys;
  const int64_t kb = KeyBlockElements(fm, kDim) * ElementBytes(fm), vb = ValueBlockElements(fm, kDim) * ElementBytes(fm);
  const size_t kbytes = static_cast<size_t>(blocks * kb * kKvHeads), vbytes = static_cast<size_t>(blocks * vb * kKvHeads);
  const size_t align = size_t{1} << 21;
  char* K = static_cast<char*>(std::aligned_alloc(align, (kbytes + align - 1) / align * align));
  char* V = static_cast<char*>(std::aligned_alloc(align, (vbytes + align - 1) / align * align));
  std::vector<std::vector<Segment>> segs(kKvHeads);
  for (int64_t h = 0; h < kKvHeads; ++h) {
    std::vector<Write> writes;
    for (int64_t b = 0; b < blocks; ++b) {
      Write w;
      const int64_t src = b % (kSource / kBlockKeys) * kBlockKeys;
      w.k = k.data() + src * kDim;
      w.v = v.data() + src * kDim;
      w.stride = kDim;
      w.count = std::min(kBlockKeys, keys - b * kBlockKeys);
      w.dst_k = K + (h * blocks + b) * kb;
      w.dst_v = V + (h * blocks + b) * vb;
      w.format = fm;
      writes.push_back(w);
    }
    WriteRows(writes, kDim);
    Segment s;
    s.k = K + h * blocks * kb;
    s.v = V + h * blocks * vb;
    s.count = keys;
    s.format = fm;
    segs[static_cast<size_t>(h)].push_back(s);
  }
  Params p;
  p.queries = 1;
  p.group = kGroup;
  p.kv_heads = kKvHeads;
  p.dim = kDim;
  p.pos0 = keys;
  p.scale = 1.f / std::sqrt(static_cast<float>(kDim));
  p.threads = argc > 4 ? std::atoi(argv[4]) : 1;
  const auto& pb = reinterpret_cast<const capb::attention::Params&>(p);
  const auto& sb = reinterpret_cast<const std::vector<std::vector<capb::attention::Segment>>&>(segs);
  std::vector<double> ta, tb, tf;
  volatile uint64_t sink = 0;
  using Clock = std::chrono::steady_clock;
  auto secs = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  for (int64_t r = 0; r < rounds; ++r) {
    const auto t0 = Clock::now();
    Attend(p, q.data(), segs, nullptr, oa.data(), nullptr);
    const auto t1 = Clock::now();
    capb::attention::Attend(pb, q.data(), sb, nullptr, ob.data(), nullptr);
    const auto t2 = Clock::now();
    // The bench's read floor (native/bench) over the same bytes.
    sink = sink ^ capibara::bench::ReadFloor(reinterpret_cast<const int8_t*>(K), static_cast<int64_t>(kbytes)) ^
           capibara::bench::ReadFloor(reinterpret_cast<const int8_t*>(V), static_cast<int64_t>(vbytes));
    const auto t3 = Clock::now();
    if (r < 2) continue;  // warm-up
    ta.push_back(secs(t0, t1));
    tb.push_back(secs(t1, t2));
    tf.push_back(secs(t2, t3));
  }
  double diff = 0;
  for (size_t i = 0; i < oa.size(); ++i) diff = std::max(diff, static_cast<double>(std::fabs(oa[i] - ob[i])));
  const double bytes = static_cast<double>(kbytes + vbytes), a = Median(ta), b = Median(tb);
  std::printf("%-4s %7lld keys, %d thread(s): A %8.3f ms %5.1f GB/s | B %8.3f ms %5.1f GB/s | B vs A %.3fx | floor %5.1f GB/s | max |A-B| %.1e\n",
              name.c_str(), static_cast<long long>(keys), p.threads, a * 1e3, bytes / a / 1e9, b * 1e3, bytes / b / 1e9, a / b,
              bytes / Median(tf) / 1e9, diff);
  std::free(K);
  std::free(V);
  return 0;
}
