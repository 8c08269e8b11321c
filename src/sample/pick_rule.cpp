#include "sample/pick_rule.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace mamba2 {

Result<PickParams> PickParamsFrom(const SamplingParams& s, int32_t n_valid) {
  RETURN_IF_ERROR(ValidateSamplingParams(s));
  if (s.repetition_penalty != 1.0f && s.repeat_last_n != 0)
    return Status::Error("sampling parameter repetition_penalty = " + std::to_string(s.repetition_penalty) +
                         " cannot be applied by the on-device token pick (it keeps no token history): "
                         "expected 1 (off), or sample on the host");
  if (n_valid <= 0)
    return Status::Error("on-device token pick: n_valid = " + std::to_string(n_valid) + ", expected a count > 0");
  PickParams p;
  p.temperature = s.temperature;
  p.top_k = s.top_k;
  p.top_p = s.top_p;
  p.min_p = s.min_p;
  p.n_valid = n_valid;
  p.seed = s.seed;
  return p;
}

int32_t PickReference(const float* logits, const PickParams& p, double u, double* margin) {
  const int n = p.n_valid;
  CHECK(logits != nullptr && n > 0);
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (margin) *margin = kInf;
  auto clean = [](float v) { return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v; };

  if (p.temperature == 0.0f) {
    int best = 0;
    float best_v = clean(logits[0]);
    for (int i = 1; i < n; ++i) {
      const float v = clean(logits[i]);
      if (v > best_v) best = i, best_v = v;
    }
    return best;
  }

  // Scratch reused across calls: a decode loop on a host backend allocates nothing per token.
  thread_local std::vector<float> x, tmp;
  thread_local std::vector<double> w;
  thread_local std::vector<int32_t> cand, order;
  thread_local std::vector<char> keep;
  x.resize(size_t(n));
  for (int i = 0; i < n; ++i) x[i] = clean(logits[i] / p.temperature);
  const float m = *std::max_element(x.begin(), x.end());
  if (!std::isfinite(m)) return static_cast<int32_t>(std::find(x.begin(), x.end(), m) - x.begin());

  float cut = -std::numeric_limits<float>::infinity();  // kept: x >= cut
  if (p.top_k > 0 && p.top_k < n) {
    tmp.assign(x.begin(), x.end());
    std::nth_element(tmp.begin(), tmp.begin() + (p.top_k - 1), tmp.end(), std::greater<float>());
    cut = tmp[size_t(p.top_k - 1)];  // the top_k-th largest x
  }
  // The candidates past top-k, in ascending id order, and their weights (only theirs are needed).
  cand.clear();
  for (int i = 0; i < n; ++i)
    if (x[i] >= cut) cand.push_back(i);
  w.resize(size_t(n));
  for (int32_t i : cand) w[i] = std::exp(static_cast<double>(x[i]) - static_cast<double>(m));

  if (p.top_p < 1.0f) {
    double kept = 0.0;
    for (int32_t i : cand) kept += w[i];
    const double goal = static_cast<double>(p.top_p) * kept;
    // The candidates by x descending (ties by id), sorted only as deep as the cut needs: the top
    // `depth` by nth_element, then sorted; deeper when the walk reaches the value at the depth
    // (its ties may continue past it). Walk groups of equal x from the top: the first group that
    // brings the prefix to goal sets the cut.
    order.assign(cand.begin(), cand.end());
    auto desc = [&](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); };
    bool found = false;
    for (size_t depth = std::min<size_t>(order.size(), 256);; depth = std::min(order.size(), depth * 4)) {
      const bool complete = depth == order.size();
      if (!complete) std::nth_element(order.begin(), order.begin() + std::ptrdiff_t(depth), order.end(), desc);
      std::sort(order.begin(), order.begin() + std::ptrdiff_t(depth), desc);
      const float boundary = complete ? -std::numeric_limits<float>::infinity() : x[order[depth]];
      double before = 0.0;
      size_t g = 0;
      while (g < depth) {
        const float v = x[order[g]];
        if (!complete && v == boundary) break;  // its ties may continue past the depth
        double group = 0.0;
        size_t e = g;
        while (e < depth && x[order[e]] == v) group += w[order[e++]];
        const double after = before + group;
        if (after >= goal) {
          cut = v;
          found = true;
          if (margin) *margin = std::min({*margin, (after - goal) / kept, (goal - before) / kept});
          break;
        }
        before = after;
        g = e;
      }
      if (found || complete) break;
    }
    if (!found && margin) *margin = 0.0;  // rounding left the whole set short of goal: keep it all
  }

  keep.assign(size_t(n), 0);
  for (int32_t i : cand) {
    if (x[i] < cut) continue;
    if (p.min_p > 0.0f) {
      const double mp = p.min_p;
      if (margin) *margin = std::min(*margin, std::fabs(w[i] - mp) / mp);
      if (w[i] < mp) continue;
    }
    keep[i] = 1;
  }

  double total = 0.0;
  for (int32_t i : cand)
    if (keep[i]) total += w[i];
  const double target = u * total;
  double cum = 0.0;
  int last_nonzero = -1;
  for (int32_t i : cand) {
    if (!keep[i] || w[i] == 0.0) continue;
    const double before = cum;
    cum += w[i];
    last_nonzero = i;
    if (cum > target) {
      // Before the first nonzero weight the sum is an exact 0: no rounding can move that side.
      const double below = before == 0.0 ? kInf : (target - before) / total;
      if (margin) *margin = std::min({*margin, below, (cum - target) / total});
      return i;
    }
  }
  if (margin) *margin = 0.0;
  CHECK(last_nonzero >= 0);  // the max always has weight 1 and is always kept
  return last_nonzero;
}

}  // namespace mamba2
