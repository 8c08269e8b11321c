#include "sample/sampler.h"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <limits>
#include <string>

#include "sample/pick.h"

namespace mamba2 {
namespace {

std::string Num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

Status Bad(const char* field, const std::string& value, const char* expected) {
  return Status::Error(std::string("sampling parameter ") + field + " = " + value + " is invalid: expected " +
                       expected);
}

// log(sum(exp(l))) over n logits in double; NaN counts as -inf (as in sampling).
double LogSumExp(const float* logits, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(logits[i])) m = std::max(m, static_cast<double>(logits[i]));
  if (!std::isfinite(m)) return m;
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(logits[i])) s += std::exp(static_cast<double>(logits[i]) - m);
  return m + std::log(s);
}

}  // namespace

Status ValidateSamplingParams(const SamplingParams& p) {
  // Written as !(ok) so NaN fails every check.
  if (!(p.temperature >= 0.0f) || std::isinf(p.temperature))
    return Bad("temperature", Num(p.temperature), "a finite value >= 0 (0 = greedy)");
  if (p.top_k < 0) return Bad("top_k", std::to_string(p.top_k), ">= 0 (0 = off)");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return Bad("top_p", Num(p.top_p), "a value in (0, 1] (1 = off)");
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) return Bad("min_p", Num(p.min_p), "a value in [0, 1] (0 = off)");
  if (!(p.repetition_penalty > 0.0f) || std::isinf(p.repetition_penalty))
    return Bad("repetition_penalty", Num(p.repetition_penalty), "a finite value > 0 (1 = off)");
  if (p.n_valid == 0 || p.n_valid < -1)
    return Bad("n_valid", std::to_string(p.n_valid), "-1 (all rows) or a count > 0");
  return Status::Ok();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  const Status st = ValidateSamplingParams(params);
  CHECK_MSG(st.ok(), st.message());
  if (params.repetition_penalty != 1.0f && params.repeat_last_n != 0)
    steps_.push_back(std::make_unique<RepetitionPenaltyStep>(params.repetition_penalty, params.repeat_last_n));
  greedy_ = params.temperature == 0.0f;
  // Greedy: top-k/top-p/min-p always keep the argmax, so they cannot change the pick.
  if (greedy_) return;
  if (params.temperature != 1.0f) steps_.push_back(std::make_unique<TemperatureStep>(params.temperature));
  if (params.top_k > 0) steps_.push_back(std::make_unique<TopKStep>(params.top_k));
  if (params.top_p < 1.0f) steps_.push_back(std::make_unique<TopPStep>(params.top_p));
  if (params.min_p > 0.0f) steps_.push_back(std::make_unique<MinPStep>(params.min_p));
}

Result<Sampler> Sampler::Create(const SamplingParams& params) {
  RETURN_IF_ERROR(ValidateSamplingParams(params));
  return Sampler(params);
}

std::vector<const char*> Sampler::StepNames() const {
  std::vector<const char*> names;
  for (const auto& s : steps_) names.push_back(s->name());
  return names;
}

int32_t Sampler::Sample(const float* logits, int64_t n_logits, const std::vector<int32_t>& history) {
  CHECK(logits != nullptr && n_logits > 0);
  const int64_t n = params_.n_valid > 0 ? std::min<int64_t>(params_.n_valid, n_logits) : n_logits;
  candidates_.Reset(logits, n);
  const SampleContext ctx{std::span<const int32_t>(history.data(), history.size())};
  for (auto& step : steps_) step->Apply(candidates_, ctx);
  if (greedy_) return PickGreedy(candidates_);
  return PickCategorical(candidates_, rng_, scratch_);
}

float Sampler::LogProb(const float* logits, int64_t n, int32_t id) {
  CHECK(logits != nullptr && id >= 0 && id < n);
  const float l = logits[id];
  if (std::isnan(l)) return -std::numeric_limits<float>::infinity();
  const double lse = LogSumExp(logits, n);
  if (!std::isfinite(lse)) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(static_cast<double>(l) - lse);
}

std::vector<TokenLogProb> Sampler::TopLogProbs(const float* logits, int64_t n, int k) {
  CHECK(logits != nullptr && n > 0);
  std::vector<TokenLogProb> out;
  if (k <= 0) return out;
  CandidateSet c;
  c.Reset(logits, n);
  TopKStep(k).Apply(c, SampleContext{});
  c.SortDescending();  // when k >= n TopK leaves the set untouched
  const double lse = LogSumExp(logits, n);
  out.reserve(c.items.size());
  for (const Candidate& cand : c.items) {
    const float lp = std::isfinite(lse) ? static_cast<float>(static_cast<double>(cand.logit) - lse)
                                        : -std::numeric_limits<float>::infinity();
    out.push_back(TokenLogProb{cand.id, lp});
  }
  return out;
}

}  // namespace mamba2
