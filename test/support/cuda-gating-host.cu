// Runs the device gating kernel's per-token logic (native/cuda/gating_row.cuh) on the host, for
// test/cuda-gating-host.test.ts: argv[1] a request file, argv[2] the result file.
// Request: int64 tokens; int32 experts, k, scoring, renormalize, groups, topkGroups, groupScore,
// rangeStart, rangeEnd, sum16, hasBias; float32 routeScale; bias [experts] if hasBias; logits [tokens * experts].
// Result: float32 weights [tokens * k], int32 indices [tokens * k], int64 first bad flat index or -1.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "cuda/gating_row.cuh"

using capibara::cuda::GatingParams;
using capibara::cuda::gating_row::TopkRow;

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  FILE* in = std::fopen(argv[1], "rb");
  if (in == nullptr) return 3;
  int64_t tokens = 0;
  int32_t h[11];
  float scale = 1;
  if (std::fread(&tokens, 8, 1, in) != 1 || std::fread(h, 4, 11, in) != 11 || std::fread(&scale, 4, 1, in) != 1) return 4;
  GatingParams p;
  p.tokens = tokens;
  p.experts = h[0];
  p.k = h[1];
  p.scoring = h[2];
  p.renormalize = h[3] != 0;
  p.groups = h[4];
  p.topk_groups = h[5];
  p.group_score = h[6];
  p.range_start = h[7];
  p.range_end = h[8];
  p.sum16 = h[9] != 0;
  p.route_scale = scale;
  std::vector<float> bias(h[10] ? p.experts : 0), logits(static_cast<size_t>(tokens) * p.experts);
  if (h[10] && std::fread(bias.data(), 4, bias.size(), in) != bias.size()) return 5;
  if (std::fread(logits.data(), 4, logits.size(), in) != logits.size()) return 6;
  std::fclose(in);
  std::vector<float> w(static_cast<size_t>(tokens) * p.k);
  std::vector<int32_t> idx(w.size());
  int64_t bad = -1;
  for (int64_t t = 0; t < tokens && bad < 0; ++t) {
    const float* b = h[10] ? bias.data() : nullptr;
    const int64_t e = p.k <= 8 ? TopkRow<8>(logits.data() + t * p.experts, b, p, w.data() + t * p.k, idx.data() + t * p.k)
                               : TopkRow<32>(logits.data() + t * p.experts, b, p, w.data() + t * p.k, idx.data() + t * p.k);
    if (e >= 0) bad = t * p.experts + e;
  }
  FILE* out = std::fopen(argv[2], "wb");
  if (out == nullptr) return 7;
  std::fwrite(w.data(), 4, w.size(), out);
  std::fwrite(idx.data(), 4, idx.size(), out);
  std::fwrite(&bad, 8, 1, out);
  std::fclose(out);
  return 0;
}
