// The last link of a chain: choose one id from what the steps left.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "sample/candidates.h"

namespace mamba2 {

// A uniform double in [0, 1) from the top 53 bits of one mt19937_64 output.
// Written out because std::uniform_real_distribution's algorithm is
// implementation-defined, and a seed must give the same tokens on every platform.
inline double UniformDouble(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Max logit, ties -> lowest id.
int32_t PickGreedy(const CandidateSet& c);

// Inverse-CDF draw from softmax(logits) of the candidates in their current
// order, with u = UniformDouble(rng): the first candidate whose cumulative
// mass exceeds u * total. Consumes exactly one rng output per call, whatever
// the candidates, so a seed's stream never depends on how many were left.
// With no proper distribution (all -inf, or a +inf logit) it falls back to PickGreedy.
int32_t PickCategorical(const CandidateSet& c, std::mt19937_64& rng, std::vector<double>& scratch);

}  // namespace mamba2
