// Token-level MoE gating kernels: plain C++ over raw pointers, no Node-API.
// Shapes are row-major: logits [tokens, experts], routing results [tokens, k].
#pragma once
#include <cstdint>
#include <vector>

namespace capibara {
namespace gating {

// Enum tables shared with src/experts/gating/native-enums.ts; values are part of the binding contract.
enum class Scoring : int32_t { kSoftmax = 0, kSigmoid = 1 };
enum class GroupScore : int32_t { kTop2Sum = 0, kMax = 1 };
enum class DropPolicy : int32_t { kPosition = 0, kProbability = 1 };
static_assert(static_cast<int32_t>(Scoring::kSigmoid) == 1, "Scoring table mirrored in TypeScript");
static_assert(static_cast<int32_t>(GroupScore::kMax) == 1, "GroupScore table mirrored in TypeScript");
static_assert(static_cast<int32_t>(DropPolicy::kProbability) == 1, "DropPolicy table mirrored in TypeScript");

struct TopkParams {
  int64_t tokens = 0;
  int64_t experts = 0;
  int32_t k = 1;
  Scoring scoring = Scoring::kSoftmax;
  const float* bias = nullptr;  // [experts], selection only; nullptr = none
  bool renormalize = true;
  float route_scale = 1.f;
  int32_t groups = 1;       // 1 = no group-limited routing
  int32_t topk_groups = 1;  // groups kept per token
  GroupScore group_score = GroupScore::kTop2Sum;
  int32_t range_start = 0;  // [range_start, range_end): winners outside are reported as `experts`
  int32_t range_end = 0;
  int threads = 1;
};

// Index (token * experts + expert) of the first NaN or +Infinity logit, or -1.
struct TopkStatus {
  int64_t bad_index = -1;
};

// Fills weights/indices [tokens, k]. Slots a token cannot fill (every remaining expert
// masked with -Infinity) get index -1 and weight 0.
TopkStatus TopkGating(const float* logits, const TopkParams& p, float* weights, int32_t* indices);

// The instruction set the kernels run with: "avx512", "avx2" or "generic".
const char* KernelIsa();

struct DispatchParams {
  int64_t tokens = 0;
  int32_t k = 1;
  int32_t experts = 1;
  int64_t capacity = -1;  // -1 = dropless
  int32_t block_size = 1;
  DropPolicy policy = DropPolicy::kPosition;
  const float* weights = nullptr;  // [tokens, k], required by kProbability
};

struct DispatchResult {
  // All sized by the caller from the counts below (two-phase: Count, then Fill).
  int32_t* loads = nullptr;          // [experts] slots routed to each expert before capacity
  int32_t* counts = nullptr;         // [experts] slots kept
  int32_t* offsets = nullptr;        // [experts + 1] exclusive scan of padded counts
  int32_t* permutation = nullptr;    // [offsets[experts]] slot ids grouped by expert, pad = -1
  int32_t* slot_position = nullptr;  // [tokens * k] position in permutation, -1 if not placed
  int32_t* dropped = nullptr;        // [dropped_count] slot ids, ascending
};

// Phase 1 decides which slots are kept and sizes the outputs; phase 2 writes them.
struct DispatchPlanner {
  explicit DispatchPlanner(const int32_t* indices, const DispatchParams& p);
  // Returns the flat index of the first invalid entry (not in [-1, experts]), or -1.
  int64_t Plan();
  int64_t PaddedTotal() const { return padded_total_; }
  int64_t DroppedCount() const { return dropped_count_; }
  void Fill(DispatchResult& out) const;

 private:
  const int32_t* indices_;
  DispatchParams p_;
  int64_t padded_total_ = 0;
  int64_t dropped_count_ = 0;
  // 1 = kept, 0 = dropped, -1 = not routed here (masked or non-local sentinel).
  void Admit(int64_t slot);
  std::vector<int8_t> keep_;
  std::vector<int32_t> counts_, loads_;
};

struct StatsParams {
  int64_t tokens = 0;
  int64_t experts = 0;
  int32_t k = 1;
  Scoring scoring = Scoring::kSoftmax;
};

struct StatsResult {
  double* load_fraction = nullptr;  // [experts] f_i
  double* mean_prob = nullptr;      // [experts] P_i
  int32_t* loads = nullptr;         // [experts]
  double aux_loss = 0, z_loss = 0, max_vio = 0, cv2 = 0, entropy = 0;
  int64_t counted_tokens = 0;  // tokens with at least one unmasked expert
};

// Returns the first bad logit index (NaN/+Inf) or -1; invalid indices are reported as
// -(2 + flat index) so the binding can name them.
int64_t RouterStats(const float* logits, const int32_t* indices, const StatsParams& p, StatsResult& out);

// out[T, E] = hidden[T, H] · weight[E, H]^T (the router projection).
void RouterLogits(const float* hidden, const float* weight, int64_t tokens, int64_t hidden_size, int64_t experts,
                  float* out, int threads);

}  // namespace gating
}  // namespace capibara
