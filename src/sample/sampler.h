// Turns one logits row into one token id: a chain of steps (repetition
// penalty, temperature, top-k, top-p, min-p) over a candidate set, then a
// greedy or seeded categorical pick. See steps.h for each step's exact rule.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "core/status.h"
#include "sample/candidates.h"
#include "sample/steps.h"

namespace mamba2 {

struct SamplingParams {
  float temperature = 1.0f;          // 0 -> greedy argmax (ties -> lowest id)
  int top_k = 0;                     // 0 -> off
  float top_p = 1.0f;                // 1 -> off
  float min_p = 0.0f;                // 0 -> off
  float repetition_penalty = 1.0f;   // 1 -> off
  int repeat_last_n = 64;            // penalty window: < 0 whole history, 0 none, > 0 last n ids
  uint64_t seed = 0;                 // std::mt19937_64 seed
  int32_t n_valid = -1;              // only ids < n_valid are candidates; -1 -> all rows
};

// One line naming the field and its value for: temperature < 0 or not finite,
// top_k < 0, top_p outside (0, 1], min_p outside [0, 1], repetition_penalty
// <= 0 or not finite, n_valid == 0 or < -1.
Status ValidateSamplingParams(const SamplingParams& p);

struct TokenLogProb {
  int32_t id;
  float logprob;
};

class Sampler {
 public:
  // Builds the chain from params. Invalid params are a programmer error here
  // (CHECK): validate first, or use Create.
  explicit Sampler(const SamplingParams& params);
  static Result<Sampler> Create(const SamplingParams& params);

  Sampler(Sampler&&) = default;
  Sampler& operator=(Sampler&&) = default;

  // history = prompt + generated ids so far. n_valid larger than n_logits is
  // clamped to n_logits. Greedy draws consume no randomness; each sampled
  // draw consumes exactly one rng output.
  int32_t Sample(const float* logits, int64_t n_logits, const std::vector<int32_t>& history);

  // Restart the random stream (e.g. per request).
  void Reseed(uint64_t seed) { rng_.seed(seed); }

  const SamplingParams& params() const { return params_; }
  bool greedy() const { return greedy_; }
  // Step names in chain order, e.g. {"repetition_penalty", "temperature", "top_k"}.
  std::vector<const char*> StepNames() const;

  // log-probability of `id` under the full (unfiltered, temperature 1)
  // softmax over all n logits, computed in double. CHECKs 0 <= id < n.
  static float LogProb(const float* logits, int64_t n, int32_t id);
  // The k most likely ids under the same distribution, best first (ties -> lower id).
  static std::vector<TokenLogProb> TopLogProbs(const float* logits, int64_t n, int k);

 private:
  SamplingParams params_;
  bool greedy_ = false;
  std::vector<std::unique_ptr<SamplerStep>> steps_;
  std::mt19937_64 rng_;
  CandidateSet candidates_;      // reused across calls: no per-token allocation
  std::vector<double> scratch_;
};

}  // namespace mamba2
