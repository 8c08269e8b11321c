#include "sample/candidates.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/status.h"

namespace mamba2 {

void CandidateSet::Reset(const float* logits, int64_t n_valid) {
  CHECK(n_valid > 0);
  items.resize(static_cast<size_t>(n_valid));
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n_valid; ++i) {
    const float l = logits[i];
    items[i] = Candidate{static_cast<int32_t>(i), std::isnan(l) ? kNegInf : l};
  }
  sorted = false;
  id_indexed = true;
}

void CandidateSet::SortDescending() {
  if (sorted) return;
  std::sort(items.begin(), items.end(), RanksBefore);
  sorted = true;
  id_indexed = false;
}

size_t CandidateSet::BestIndex() const {
  CHECK(!items.empty());
  if (sorted) return 0;
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i)
    if (RanksBefore(items[i], items[best])) best = i;
  return best;
}

void CandidateSet::Softmax(std::vector<double>& probs) const {
  probs.resize(items.size());
  if (items.empty()) return;
  const double max_logit = items[BestIndex()].logit;
  if (!std::isfinite(max_logit)) {
    // All -inf (or +inf present): no proper distribution; put all mass on the best.
    std::fill(probs.begin(), probs.end(), 0.0);
    probs[BestIndex()] = 1.0;
    return;
  }
  double total = 0.0;
  for (size_t i = 0; i < items.size(); ++i) {
    probs[i] = std::exp(static_cast<double>(items[i].logit) - max_logit);
    total += probs[i];
  }
  for (double& p : probs) p /= total;
}

}  // namespace mamba2
