// Node-API bindings of the gating kernels. The sync forms read their inputs in place; the async
// forms take them with PromiseWorker::Take (common/async.h: read in place on a SharedArrayBuffer,
// copied at the call otherwise). Outputs are typed arrays allocated by the caller (sync top-k,
// router logits) or here (dispatch plan, stats, async forms).
#include <napi.h>

#include <cmath>
#include <string>

#include "common/args.h"
#include "common/async.h"
#include "gating/kernels.h"

namespace capibara {
namespace {

using gating::DropPolicy;
using gating::GroupScore;
using gating::Scoring;

constexpr int64_t kMaxExperts = int64_t{1} << 20;
constexpr int64_t kMaxTokens = (int64_t{1} << 31) - 1;
// Largest array the addon allocates itself (1 GiB of int32/float32): V8 aborts, rather than
// throws, when an ArrayBuffer cannot be allocated, so requests beyond this are refused first.
constexpr int64_t kMaxPlanEntries = int64_t{1} << 28;

std::string NonFinite(float v) { return std::isnan(v) ? "NaN" : "Infinity"; }

struct TopkArgs {
  Napi::Float32Array logits, weights;
  Napi::Int32Array indices;
  Napi::Value bias;
  gating::TopkParams p;
};

// gatingTopk(logits, tokens, experts, k, scoring, bias|null, renormalize, routeScale,
//            groups, topkGroups, groupScore, rangeStart, rangeEnd, threads, weightsOut, indicesOut)
TopkArgs ReadTopk(const Napi::CallbackInfo& info, bool outputs = true) {
  Napi::Env env = info.Env();
  RequireArgs(info, outputs ? 16 : 14, outputs ? "gatingTopk" : "gatingTopkAsync");
  TopkArgs a;
  a.logits = Float32Arg(info, 0, "logits");
  auto& p = a.p;
  p.tokens = IntArg(info, 1, "tokens", 0, kMaxTokens);
  p.experts = IntArg(info, 2, "experts", 1, kMaxExperts);
  p.k = static_cast<int32_t>(IntArg(info, 3, "k", 1, p.experts));
  p.scoring = static_cast<Scoring>(IntArg(info, 4, "scoring", 0, 1));
  a.bias = info[5];
  p.renormalize = BoolArg(info, 6, "renormalize");
  const double route_scale = NumberArg(info, 7, "routeScale");
  if (!(route_scale > 0 && route_scale <= 3.4028234663852886e38))
    ThrowRange(env, "Expected routeScale in (0, 3.4028234663852886e38]");
  p.route_scale = static_cast<float>(route_scale);
  p.groups = static_cast<int32_t>(IntArg(info, 8, "groups", 1, p.experts));
  p.topk_groups = static_cast<int32_t>(IntArg(info, 9, "topkGroups", 1, p.groups));
  p.group_score = static_cast<GroupScore>(IntArg(info, 10, "groupScore", 0, 1));
  p.range_start = static_cast<int32_t>(IntArg(info, 11, "rangeStart", 0, p.experts));
  p.range_end = static_cast<int32_t>(IntArg(info, 12, "rangeEnd", p.range_start, p.experts));
  p.threads = static_cast<int>(IntArg(info, 13, "threads", 1, kMaxThreads));
  if (outputs) {
    a.weights = Float32Arg(info, 14, "weightsOut");
    a.indices = Int32Arg(info, 15, "indicesOut");
  }

  if (static_cast<int64_t>(a.logits.ElementLength()) != p.tokens * p.experts)
    ThrowRange(env, "Expected logits of length tokens * experts = " + std::to_string(p.tokens * p.experts) +
                        " but received " + std::to_string(a.logits.ElementLength()));
  if (p.experts % p.groups != 0) ThrowRange(env, "Expected groups to divide experts");
  if (p.groups > 1 && p.k > static_cast<int64_t>(p.topk_groups) * (p.experts / p.groups))
    ThrowRange(env, "Expected k <= topkGroups * experts / groups");
  const size_t out_len = static_cast<size_t>(p.tokens * p.k);
  if (outputs && (a.weights.ElementLength() != out_len || a.indices.ElementLength() != out_len))
    ThrowRange(env, "Expected weightsOut and indicesOut of length tokens * k = " + std::to_string(out_len));
  if (!IsNullish(a.bias)) {
    Napi::Float32Array b = Float32Arg(info, 5, "bias");
    if (static_cast<int64_t>(b.ElementLength()) != p.experts)
      ThrowRange(env, "Expected bias of length experts = " + std::to_string(p.experts));
    for (size_t e = 0; e < b.ElementLength(); ++e)
      if (!std::isfinite(b[e])) ThrowRange(env, "Expected finite bias but bias[" + std::to_string(e) + "] is " + NonFinite(b[e]));
    p.bias = b.Data();
  }
  return a;
}

// Raw pointers only: the async workers build it off the JS thread.
std::string BadLogit(int64_t experts, const float* logits, int64_t flat) {
  return "Expected finite or -Infinity (masked) logits but token " + std::to_string(flat / experts) + ", expert " +
         std::to_string(flat % experts) + " is " + NonFinite(logits[flat]);
}

Napi::Value GatingTopk(const Napi::CallbackInfo& info) {
  TopkArgs a = ReadTopk(info);
  const auto st = gating::TopkGating(a.logits.Data(), a.p, a.weights.Data(), a.indices.Data());
  if (st.bad_index >= 0) ThrowRange(info.Env(), BadLogit(a.p.experts, a.logits.Data(), st.bad_index));
  return info.Env().Undefined();
}

// The async form takes its inputs (PromiseWorker::Take) and allocates its outputs, which JS
// sees only when the promise resolves.
class TopkWorker : public PromiseWorker {
 public:
  TopkWorker(Napi::Env env, const TopkArgs& a)
      : PromiseWorker(env, "gating.topk"),
        logits_(Take(a.logits)),
        p_(a.p),
        weights_(Napi::Persistent(Napi::Float32Array::New(env, static_cast<size_t>(a.p.tokens * a.p.k)))),
        indices_(Napi::Persistent(Napi::Int32Array::New(env, static_cast<size_t>(a.p.tokens * a.p.k)))),
        w_(weights_.Value().Data()),
        i_(indices_.Value().Data()) {
    if (p_.bias != nullptr) p_.bias = Take(a.bias.As<Napi::Float32Array>());
  }

 protected:
  void Run() override {
    const auto st = gating::TopkGating(logits_, p_, w_, i_);
    if (st.bad_index >= 0) Fail(ErrorKind::kRange, BadLogit(p_.experts, logits_, st.bad_index));
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("weights", weights_.Value());
    out.Set("indices", indices_.Value());
    return out;
  }

 private:
  const float* logits_;
  gating::TopkParams p_;
  Napi::Reference<Napi::Float32Array> weights_;
  Napi::Reference<Napi::Int32Array> indices_;
  float* w_;
  int32_t* i_;
};

// gatingTopkAsync(same arguments as gatingTopk without the two outputs) -> Promise<{ weights, indices }>
Napi::Value GatingTopkAsync(const Napi::CallbackInfo& info) {
  const TopkArgs a = ReadTopk(info, false);
  if (a.p.tokens * a.p.k > kMaxPlanEntries)
    ThrowRange(info.Env(), "Expected tokens * k <= 268435456 for outputs allocated by the addon but received " +
                               std::to_string(a.p.tokens * a.p.k));
  return (new TopkWorker(info.Env(), a))->Start();
}

// gatingDispatch(indices, tokens, k, experts, capacity (-1 = dropless), blockSize, policy, weights|null)
Napi::Value GatingDispatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireArgs(info, 8, "gatingDispatch");
  Napi::Int32Array indices = Int32Arg(info, 0, "indices");
  gating::DispatchParams p;
  p.tokens = IntArg(info, 1, "tokens", 0, kMaxTokens);
  p.k = static_cast<int32_t>(IntArg(info, 2, "k", 1, kMaxExperts));
  p.experts = static_cast<int32_t>(IntArg(info, 3, "experts", 1, kMaxExperts));
  p.capacity = IntArg(info, 4, "capacity", -1, kMaxTokens);
  p.block_size = static_cast<int32_t>(IntArg(info, 5, "blockSize", 1, 1 << 16));
  p.policy = static_cast<DropPolicy>(IntArg(info, 6, "dropPolicy", 0, 1));
  if (static_cast<int64_t>(indices.ElementLength()) != p.tokens * p.k)
    ThrowRange(env, "Expected indices of length tokens * k = " + std::to_string(p.tokens * p.k) + " but received " +
                        std::to_string(indices.ElementLength()));
  const int64_t slots = p.tokens * p.k;
  if (slots > kMaxTokens) ThrowRange(env, "Expected tokens * k <= 2147483647");
  if (!IsNullish(info[7])) {
    Napi::Float32Array w = Float32Arg(info, 7, "weights");
    if (static_cast<int64_t>(w.ElementLength()) != slots)
      ThrowRange(env, "Expected weights of length tokens * k = " + std::to_string(slots));
    for (int64_t s = 0; s < slots; ++s)
      if (std::isnan(w.Data()[s])) ThrowRange(env, "Expected weights without NaN but weights[" + std::to_string(s) + "] is NaN");
    p.weights = w.Data();
  }
  // An empty array's Data() may be null: decide by presence, not by pointer.
  if (p.policy == DropPolicy::kProbability && p.capacity >= 0 && IsNullish(info[7]))
    ThrowType(env, "Expected weights for dropPolicy 'probability'");

  gating::DispatchPlanner planner(indices.Data(), p);
  const int64_t bad = planner.Plan();
  if (bad >= 0)
    ThrowRange(env, "Expected expert indices in [-1, experts] but indices[" + std::to_string(bad) +
                        "] is " + std::to_string(indices.Data()[bad]));
  // Padding can amplify a small input enormously (experts x blockSize); V8 aborts rather than
  // throws when a huge array cannot be allocated, so refuse plans beyond 2^28 entries here.
  if (planner.PaddedTotal() > kMaxPlanEntries)
    ThrowRange(env, "Expected a dispatch plan of at most 268435456 padded slots but blockSize " +
                        std::to_string(p.block_size) + " pads it to " + std::to_string(planner.PaddedTotal()));

  auto loads = Napi::Int32Array::New(env, p.experts);
  auto counts = Napi::Int32Array::New(env, p.experts);
  auto offsets = Napi::Int32Array::New(env, p.experts + 1);
  auto permutation = Napi::Int32Array::New(env, planner.PaddedTotal());
  auto slot_position = Napi::Int32Array::New(env, slots);
  auto dropped = Napi::Int32Array::New(env, planner.DroppedCount());
  gating::DispatchResult r{loads.Data(), counts.Data(), offsets.Data(), permutation.Data(), slot_position.Data(),
                           dropped.Data()};
  planner.Fill(r);

  Napi::Object out = Napi::Object::New(env);
  out.Set("loads", loads);
  out.Set("counts", counts);
  out.Set("offsets", offsets);
  out.Set("permutation", permutation);
  out.Set("slotPosition", slot_position);
  out.Set("dropped", dropped);
  return out;
}

struct StatsArgs {
  Napi::Float32Array logits;
  Napi::Int32Array indices;
  gating::StatsParams p;
};

// gatingStats(logits, indices, tokens, experts, k, scoring); gatingStatsAsync takes the same.
StatsArgs ReadStats(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  RequireArgs(info, 6, fn);
  StatsArgs a;
  a.logits = Float32Arg(info, 0, "logits");
  a.indices = Int32Arg(info, 1, "indices");
  gating::StatsParams& p = a.p;
  p.tokens = IntArg(info, 2, "tokens", 0, kMaxTokens);
  p.experts = IntArg(info, 3, "experts", 1, kMaxExperts);
  p.k = static_cast<int32_t>(IntArg(info, 4, "k", 1, p.experts));
  p.scoring = static_cast<Scoring>(IntArg(info, 5, "scoring", 0, 1));
  if (static_cast<int64_t>(a.logits.ElementLength()) != p.tokens * p.experts)
    ThrowRange(env, "Expected logits of length tokens * experts = " + std::to_string(p.tokens * p.experts) +
                        " but received " + std::to_string(a.logits.ElementLength()));
  if (static_cast<int64_t>(a.indices.ElementLength()) != p.tokens * p.k)
    ThrowRange(env, "Expected indices of length tokens * k = " + std::to_string(p.tokens * p.k) + " but received " +
                        std::to_string(a.indices.ElementLength()));
  return a;
}

// The statistics' arrays, allocated on the JS thread and filled by the kernel.
struct StatsOut {
  Napi::Float64Array load_fraction, mean_prob;
  Napi::Int32Array loads;
  StatsOut(Napi::Float64Array f, Napi::Float64Array p, Napi::Int32Array l) : load_fraction(f), mean_prob(p), loads(l) {}
  StatsOut(Napi::Env env, int64_t experts)
      : load_fraction(Napi::Float64Array::New(env, static_cast<size_t>(experts))),
        mean_prob(Napi::Float64Array::New(env, static_cast<size_t>(experts))),
        loads(Napi::Int32Array::New(env, static_cast<size_t>(experts))) {}
  gating::StatsResult Result() {
    gating::StatsResult r;
    r.load_fraction = load_fraction.Data();
    r.mean_prob = mean_prob.Data();
    r.loads = loads.Data();
    return r;
  }
};

// The message of RouterStats's failure code, or "" (raw pointers only: also built off the JS thread).
std::string StatsFailure(int64_t code, const float* logits, const int32_t* indices, const gating::StatsParams& p) {
  if (code >= 0) return BadLogit(p.experts, logits, code);
  if (code < -1) {
    const int64_t s = -(code + 2);
    return "Expected expert indices in [-1, experts] but indices[" + std::to_string(s) + "] is " +
           std::to_string(indices[s]);
  }
  return "";
}

Napi::Object StatsObject(Napi::Env env, const StatsOut& o, const gating::StatsResult& r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("loadFraction", o.load_fraction);
  out.Set("meanProb", o.mean_prob);
  out.Set("loads", o.loads);
  out.Set("auxLoss", r.aux_loss);
  out.Set("zLoss", r.z_loss);
  out.Set("maxVio", r.max_vio);
  out.Set("cv2", r.cv2);
  out.Set("entropy", r.entropy);
  out.Set("countedTokens", static_cast<double>(r.counted_tokens));
  return out;
}

Napi::Value GatingStats(const Napi::CallbackInfo& info) {
  StatsArgs a = ReadStats(info, "gatingStats");
  StatsOut o(info.Env(), a.p.experts);
  gating::StatsResult r = o.Result();
  const std::string failure =
      StatsFailure(gating::RouterStats(a.logits.Data(), a.indices.Data(), a.p, r), a.logits.Data(), a.indices.Data(), a.p);
  if (!failure.empty()) ThrowRange(info.Env(), failure);
  return StatsObject(info.Env(), o, r);
}

// Inputs taken (PromiseWorker::Take), outputs allocated here and handed to JS when the promise resolves.
class StatsWorker : public PromiseWorker {
 public:
  StatsWorker(Napi::Env env, const StatsArgs& a)
      : PromiseWorker(env, "gating.stats"), logits_(Take(a.logits)), indices_(Take(a.indices)), p_(a.p) {
    StatsOut o(env, p_.experts);
    load_fraction_ = Napi::Persistent(o.load_fraction);
    mean_prob_ = Napi::Persistent(o.mean_prob);
    loads_ = Napi::Persistent(o.loads);
    r_ = o.Result();
  }

 protected:
  void Run() override {
    const std::string failure = StatsFailure(gating::RouterStats(logits_, indices_, p_, r_), logits_, indices_, p_);
    if (!failure.empty()) Fail(ErrorKind::kRange, failure);
  }
  Napi::Value Result(Napi::Env env) override {
    return StatsObject(env, StatsOut(load_fraction_.Value(), mean_prob_.Value(), loads_.Value()), r_);
  }

 private:
  const float* logits_;
  const int32_t* indices_;
  gating::StatsParams p_;
  Napi::Reference<Napi::Float64Array> load_fraction_, mean_prob_;
  Napi::Reference<Napi::Int32Array> loads_;
  gating::StatsResult r_;  // pointers into the arrays above
};

// gatingStatsAsync(same arguments as gatingStats) -> Promise<the same result>
Napi::Value GatingStatsAsync(const Napi::CallbackInfo& info) {
  const StatsArgs a = ReadStats(info, "gatingStatsAsync");
  return (new StatsWorker(info.Env(), a))->Start();
}

struct LogitsArgs {
  Napi::Float32Array hidden, weight, out;
  int64_t tokens, hidden_size, experts;
  int threads;
};

// gatingRouterLogits(hidden, weight, tokens, hiddenSize, experts, threads, out)
LogitsArgs ReadLogits(const Napi::CallbackInfo& info, bool output = true) {
  Napi::Env env = info.Env();
  RequireArgs(info, output ? 7 : 6, output ? "gatingRouterLogits" : "gatingRouterLogitsAsync");
  LogitsArgs a;
  a.hidden = Float32Arg(info, 0, "hidden");
  a.weight = Float32Arg(info, 1, "weight");
  a.tokens = IntArg(info, 2, "tokens", 0, kMaxTokens);
  a.hidden_size = IntArg(info, 3, "hiddenSize", 1, int64_t{1} << 20);
  a.experts = IntArg(info, 4, "experts", 1, kMaxExperts);
  a.threads = static_cast<int>(IntArg(info, 5, "threads", 1, kMaxThreads));
  if (output) a.out = Float32Arg(info, 6, "out");
  if (static_cast<int64_t>(a.hidden.ElementLength()) != a.tokens * a.hidden_size)
    ThrowRange(env, "Expected hidden of length tokens * hiddenSize = " + std::to_string(a.tokens * a.hidden_size));
  if (static_cast<int64_t>(a.weight.ElementLength()) != a.experts * a.hidden_size)
    ThrowRange(env, "Expected weight of length experts * hiddenSize = " + std::to_string(a.experts * a.hidden_size));
  if (!output && a.tokens * a.experts > kMaxPlanEntries)
    ThrowRange(env, "Expected tokens * experts <= 268435456 for an output allocated by the addon but received " +
                        std::to_string(a.tokens * a.experts));
  if (output && static_cast<int64_t>(a.out.ElementLength()) != a.tokens * a.experts)
    ThrowRange(env, "Expected out of length tokens * experts = " + std::to_string(a.tokens * a.experts));
  return a;
}

Napi::Value GatingRouterLogits(const Napi::CallbackInfo& info) {
  LogitsArgs a = ReadLogits(info);
  gating::RouterLogits(a.hidden.Data(), a.weight.Data(), a.tokens, a.hidden_size, a.experts, a.out.Data(), a.threads);
  return info.Env().Undefined();
}

// Like TopkWorker: inputs taken, output allocated here until the promise resolves.
class LogitsWorker : public PromiseWorker {
 public:
  LogitsWorker(Napi::Env env, const LogitsArgs& a)
      : PromiseWorker(env, "gating.routerLogits"),
        hidden_(Take(a.hidden)),
        weight_(Take(a.weight)),
        tokens_(a.tokens),
        hidden_size_(a.hidden_size),
        experts_(a.experts),
        threads_(a.threads),
        out_(Napi::Persistent(Napi::Float32Array::New(env, static_cast<size_t>(a.tokens * a.experts)))),
        o_(out_.Value().Data()) {}

 protected:
  void Run() override { gating::RouterLogits(hidden_, weight_, tokens_, hidden_size_, experts_, o_, threads_); }
  Napi::Value Result(Napi::Env env) override { return out_.Value(); }

 private:
  const float* hidden_;
  const float* weight_;
  int64_t tokens_, hidden_size_, experts_;
  int threads_;
  Napi::Reference<Napi::Float32Array> out_;
  float* o_;
};

// gatingRouterLogitsAsync(hidden, weight, tokens, hiddenSize, experts, threads) -> Promise<Float32Array>
Napi::Value GatingRouterLogitsAsync(const Napi::CallbackInfo& info) {
  const LogitsArgs a = ReadLogits(info, false);
  return (new LogitsWorker(info.Env(), a))->Start();
}

}  // namespace

void InitGating(Napi::Env env, Napi::Object exports) {
  exports.Set("gatingTopk", Napi::Function::New(env, GatingTopk, "gatingTopk"));
  exports.Set("gatingTopkAsync", Napi::Function::New(env, GatingTopkAsync, "gatingTopkAsync"));
  exports.Set("gatingDispatch", Napi::Function::New(env, GatingDispatch, "gatingDispatch"));
  exports.Set("gatingStats", Napi::Function::New(env, GatingStats, "gatingStats"));
  exports.Set("gatingStatsAsync", Napi::Function::New(env, GatingStatsAsync, "gatingStatsAsync"));
  exports.Set("gatingRouterLogits", Napi::Function::New(env, GatingRouterLogits, "gatingRouterLogits"));
  exports.Set("gatingRouterLogitsAsync", Napi::Function::New(env, GatingRouterLogitsAsync, "gatingRouterLogitsAsync"));
  exports.Set("kernelIsa", Napi::String::New(env, gating::KernelIsa()));
}

}  // namespace capibara
