// Helpers shared by the sampling tests: random logits and brute-force
// references written from the definitions, not from the code under test.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace mamba2::sample_test {

// Normal logits; quantum > 0 rounds them to create many exact ties.
inline std::vector<float> RandomLogits(int n, uint32_t seed, float stddev = 2.0f, float quantum = 0.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) {
    x = dist(gen);
    if (quantum > 0.0f) x = std::round(x / quantum) * quantum;
  }
  return v;
}

// Softmax over the given ids only, long double, no max shift (logits are small).
inline std::vector<long double> RefSoftmax(const std::vector<float>& logits, const std::vector<int32_t>& ids) {
  std::vector<long double> p(ids.size());
  long double total = 0;
  for (size_t i = 0; i < ids.size(); ++i) total += p[i] = std::exp(static_cast<long double>(logits[ids[i]]));
  for (auto& x : p) x /= total;
  return p;
}

// Ids ordered by logit descending, ties by ascending id (stable sort keeps the id order).
inline std::vector<int32_t> RefRanked(const std::vector<float>& logits, std::vector<int32_t> ids) {
  std::sort(ids.begin(), ids.end());
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  return ids;
}

inline std::vector<int32_t> AllIds(int n) {
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  return ids;
}

// Top-k by counting, per id, how many ids beat it: O(n^2), no sorting at all.
inline std::vector<int32_t> RefTopK(const std::vector<float>& logits, const std::vector<int32_t>& ids, int k) {
  std::vector<int32_t> out;
  for (int32_t a : ids) {
    int beaten_by = 0;
    for (int32_t b : ids)
      if (logits[b] > logits[a] || (logits[b] == logits[a] && b < a)) ++beaten_by;
    if (beaten_by < k) out.push_back(a);
  }
  return out;
}

inline std::vector<int32_t> RefTopP(const std::vector<float>& logits, const std::vector<int32_t>& ids, double p) {
  const std::vector<int32_t> ranked = RefRanked(logits, ids);
  const std::vector<long double> probs = RefSoftmax(logits, ranked);
  std::vector<int32_t> out;
  long double cum = 0;
  for (size_t i = 0; i < ranked.size(); ++i) {
    out.push_back(ranked[i]);
    cum += probs[i];
    if (cum >= p) break;
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<int32_t> RefMinP(const std::vector<float>& logits, const std::vector<int32_t>& ids, double min_p) {
  const std::vector<long double> probs = RefSoftmax(logits, ids);
  const long double max_prob = *std::max_element(probs.begin(), probs.end());
  std::vector<int32_t> out;
  for (size_t i = 0; i < ids.size(); ++i)
    if (probs[i] >= min_p * max_prob) out.push_back(ids[i]);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace mamba2::sample_test
