// The composable steps of a sampling chain. Each step narrows or reshapes the
// candidate set in place; the final pick (pick.h) then chooses one id.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sample/candidates.h"

namespace mamba2 {

struct SampleContext {
  std::span<const int32_t> history;  // prompt + generated ids so far, oldest first
};

class SamplerStep {
 public:
  virtual ~SamplerStep() = default;
  virtual void Apply(CandidateSet& candidates, const SampleContext& ctx) = 0;
  virtual const char* name() const = 0;
};

// HF RepetitionPenaltyLogitsProcessor: every distinct id in the window is
// penalised once: logit > 0 -> logit / penalty, else logit * penalty.
// window < 0: the whole history; 0: nothing; > 0: the last `window` ids.
// Ids outside the candidate set (padded rows, bad ids) are ignored.
class RepetitionPenaltyStep : public SamplerStep {
 public:
  RepetitionPenaltyStep(float penalty, int window) : penalty_(penalty), window_(window) {}
  void Apply(CandidateSet& c, const SampleContext& ctx) override;
  const char* name() const override { return "repetition_penalty"; }

 private:
  float penalty_;
  int window_;
  std::vector<int32_t> recent_;  // reused across calls
};

// logit / temperature; temperature > 0 (0 means greedy and is handled by the Sampler).
class TemperatureStep : public SamplerStep {
 public:
  explicit TemperatureStep(float temperature) : temperature_(temperature) {}
  void Apply(CandidateSet& c, const SampleContext& ctx) override;
  const char* name() const override { return "temperature"; }

 private:
  float temperature_;
};

// Keeps the k best by RanksBefore (ties at the cut go to the lower id).
// Uses nth_element + a sort of the k kept, never a sort of the whole vocab.
class TopKStep : public SamplerStep {
 public:
  explicit TopKStep(int k) : k_(k) {}
  void Apply(CandidateSet& c, const SampleContext& ctx) override;
  const char* name() const override { return "top_k"; }

 private:
  int k_;
};

// Nucleus: the shortest prefix (in RanksBefore order) whose softmax mass is
// >= p; always at least one candidate. Ranks only as much as it needs.
class TopPStep : public SamplerStep {
 public:
  explicit TopPStep(float p) : p_(p) {}
  void Apply(CandidateSet& c, const SampleContext& ctx) override;
  const char* name() const override { return "top_p"; }

 private:
  float p_;
};

// Keeps candidates with prob >= min_p * max prob, i.e. exp(logit - max) >= min_p.
// Keeps the current order.
class MinPStep : public SamplerStep {
 public:
  explicit MinPStep(float min_p) : min_p_(min_p) {}
  void Apply(CandidateSet& c, const SampleContext& ctx) override;
  const char* name() const override { return "min_p"; }

 private:
  float min_p_;
};

}  // namespace mamba2
