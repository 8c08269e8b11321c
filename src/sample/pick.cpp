#include "sample/pick.h"

#include <cmath>

#include "core/status.h"

namespace mamba2 {

int32_t PickGreedy(const CandidateSet& c) { return c.items[c.BestIndex()].id; }

int32_t PickCategorical(const CandidateSet& c, std::mt19937_64& rng, std::vector<double>& weights) {
  CHECK(!c.items.empty());
  const double u = UniformDouble(rng);
  const size_t best = c.BestIndex();
  const double max_logit = c.items[best].logit;
  if (!std::isfinite(max_logit)) return c.items[best].id;

  // Unnormalised weights: dividing by the total is folded into the target.
  weights.resize(c.items.size());
  double total = 0.0;
  for (size_t i = 0; i < c.items.size(); ++i) {
    weights[i] = std::exp(static_cast<double>(c.items[i].logit) - max_logit);
    total += weights[i];
  }
  const double target = u * total;
  double cum = 0.0;
  size_t last_nonzero = best;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] == 0.0) continue;
    cum += weights[i];
    last_nonzero = i;
    if (target < cum) return c.items[i].id;
  }
  // Only reachable through rounding with u very close to 1.
  return c.items[last_nonzero].id;
}

}  // namespace mamba2
