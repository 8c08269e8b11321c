#include "sample/steps.h"

#include <algorithm>
#include <cmath>

#include "core/status.h"

namespace mamba2 {

void RepetitionPenaltyStep::Apply(CandidateSet& c, const SampleContext& ctx) {
  if (window_ == 0 || ctx.history.empty() || c.items.empty()) return;
  std::span<const int32_t> h = ctx.history;
  if (window_ > 0 && h.size() > static_cast<size_t>(window_)) h = h.subspan(h.size() - window_);

  // Dedupe first: HF gathers then scatters, so a repeated id is penalised once.
  recent_.assign(h.begin(), h.end());
  std::sort(recent_.begin(), recent_.end());
  recent_.erase(std::unique(recent_.begin(), recent_.end()), recent_.end());

  auto penalise = [this](float& logit) { logit = logit > 0.0f ? logit / penalty_ : logit * penalty_; };
  if (c.id_indexed) {
    const int64_t n = static_cast<int64_t>(c.items.size());
    for (int32_t id : recent_)
      if (id >= 0 && id < n) penalise(c.items[id].logit);
  } else {
    for (Candidate& cand : c.items)
      if (std::binary_search(recent_.begin(), recent_.end(), cand.id)) penalise(cand.logit);
  }
  c.sorted = false;
}

void TemperatureStep::Apply(CandidateSet& c, const SampleContext&) {
  CHECK(temperature_ > 0.0f);
  for (Candidate& cand : c.items) cand.logit /= temperature_;
  // Division can round two distinct logits to the same value, breaking the tie-by-id order.
  c.sorted = false;
}

void TopKStep::Apply(CandidateSet& c, const SampleContext&) {
  if (k_ <= 0 || static_cast<size_t>(k_) >= c.items.size()) return;
  if (!c.sorted) {
    auto kth = c.items.begin() + k_;
    std::nth_element(c.items.begin(), kth, c.items.end(), RanksBefore);
    std::sort(c.items.begin(), kth, RanksBefore);
    c.sorted = true;
  }
  c.items.resize(static_cast<size_t>(k_));
  c.id_indexed = false;
}

void TopPStep::Apply(CandidateSet& c, const SampleContext&) {
  if (p_ >= 1.0f || c.items.size() <= 1) return;
  const size_t n = c.items.size();
  const size_t best = c.BestIndex();
  const double max_logit = c.items[best].logit;
  if (!std::isfinite(max_logit)) {
    // No proper distribution (all -inf, or a +inf): all mass sits on the best.
    const Candidate keep = c.items[best];
    c.items.assign(1, keep);
    c.sorted = true;
    c.id_indexed = false;
    return;
  }
  // The total is summed in the incoming order, before any reordering, so the
  // cut does not depend on how a standard library arranges nth_element's output.
  double total = 0.0;
  for (const Candidate& cand : c.items) total += std::exp(static_cast<double>(cand.logit) - max_logit);
  const double target = static_cast<double>(p_) * total;

  // The nucleus is usually a few dozen ids out of ~50k: rank a growing prefix
  // with nth_element instead of sorting everything. Every round's prefix is
  // the same prefix of the one total order, so the result equals a full sort's.
  size_t k = c.sorted ? n : std::min<size_t>(n, 64);
  for (;;) {
    if (!c.sorted && k < n) {
      std::nth_element(c.items.begin(), c.items.begin() + k, c.items.end(), RanksBefore);
      std::sort(c.items.begin(), c.items.begin() + k, RanksBefore);
    } else {
      c.SortDescending();
      k = n;
    }
    double cum = 0.0;
    for (size_t i = 0; i < k; ++i) {
      cum += std::exp(static_cast<double>(c.items[i].logit) - max_logit);
      if (cum >= target) {
        c.items.resize(i + 1);
        c.sorted = true;
        c.id_indexed = false;
        return;
      }
    }
    if (k == n) return;  // rounding left cum just under target: keep all (now sorted)
    k = std::min(n, k * 4);
  }
}

void MinPStep::Apply(CandidateSet& c, const SampleContext&) {
  if (min_p_ <= 0.0f || c.items.size() <= 1) return;
  const double max_logit = c.items[c.BestIndex()].logit;
  if (!std::isfinite(max_logit)) return;  // no proper distribution to threshold
  const double min_p = min_p_;
  const size_t before = c.items.size();
  std::erase_if(c.items, [&](const Candidate& cand) {
    return std::exp(static_cast<double>(cand.logit) - max_logit) < min_p;
  });
  if (c.items.size() != before) c.id_indexed = false;
}

}  // namespace mamba2
