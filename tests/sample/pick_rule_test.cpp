// The device pick rule's host reference (pick_rule.h) against checks written from the rule's
// definition and against the host Sampler's steps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "sample/candidates.h"
#include "sample/pick_rule.h"
#include "sample/sampler.h"
#include "sample/steps.h"
#include "sample/test_util.h"

namespace mamba2 {
namespace {

using sample_test::AllIds;
using sample_test::RandomLogits;
using sample_test::RefMinP;
using sample_test::RefSoftmax;
using sample_test::RefTopK;
using sample_test::RefTopP;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
const double kBelowOne = std::nextafter(1.0, 0.0);

PickParams Params(float temperature, int top_k, float top_p, float min_p, int n_valid) {
  PickParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.n_valid = n_valid;
  return p;
}

// Every id the reference can pick, found by bisecting u: the pick is non-decreasing in u
// (ids are walked in ascending order), so each next id starts where the previous one ends.
// Ids whose share of the mass is below 2^-53 are unreachable and not listed.
std::vector<int32_t> PickableIds(const std::vector<float>& logits, const PickParams& p) {
  std::vector<int32_t> ids;
  const uint64_t kOne = uint64_t(1) << 53;
  auto pick_at = [&](uint64_t k) { return PickReference(logits.data(), p, double(k) * 0x1.0p-53); };
  uint64_t k = 0;
  for (;;) {
    const int32_t id = pick_at(k);
    ids.push_back(id);
    if (pick_at(kOne - 1) == id) break;
    uint64_t lo = k, hi = kOne - 1;  // pick(lo) == id, pick(hi) > id
    while (hi - lo > 1) {
      const uint64_t mid = lo + (hi - lo) / 2;
      if (pick_at(mid) == id) lo = mid;
      else hi = mid;
    }
    k = hi;
  }
  return ids;
}

// The kept set of the host Sampler's chain (steps.h) for the same parameters.
std::vector<int32_t> HostKept(const std::vector<float>& logits, const PickParams& p) {
  CandidateSet c;
  c.Reset(logits.data(), p.n_valid);
  const SampleContext ctx{};
  if (p.temperature != 1.0f) TemperatureStep(p.temperature).Apply(c, ctx);
  if (p.top_k > 0) TopKStep(p.top_k).Apply(c, ctx);
  if (p.top_p < 1.0f) TopPStep(p.top_p).Apply(c, ctx);
  if (p.min_p > 0.0f) MinPStep(p.min_p).Apply(c, ctx);
  std::vector<int32_t> ids;
  for (const Candidate& x : c.items) ids.push_back(x.id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

TEST(PickKey, OrderPreservingWithNaNAsNegInfAndOneZero) {
  std::vector<float> v = RandomLogits(2000, 11, 50.0f);
  v.insert(v.end(), {0.0f, -0.0f, kInf, -kInf, 1e-40f, -1e-40f, std::numeric_limits<float>::max(),
                     -std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min()});
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(PickKeyValue(PickKey(v[i])), v[i] == 0.0f ? 0.0f : v[i]);
    for (size_t j = i; j < std::min(v.size(), i + 40); ++j) {
      EXPECT_EQ(v[i] < v[j], PickKey(v[i]) < PickKey(v[j])) << v[i] << " vs " << v[j];
      EXPECT_EQ(v[i] == v[j], PickKey(v[i]) == PickKey(v[j])) << v[i] << " vs " << v[j];
    }
  }
  EXPECT_EQ(PickKey(kNaN), PickKey(-kInf));
  EXPECT_EQ(PickKey(-kNaN), PickKey(-kInf));
  EXPECT_EQ(PickKey(-kInf), kPickKeyNegInf);
  EXPECT_EQ(PickKey(kInf), kPickKeyPosInf);
  EXPECT_EQ(PickKey(0.0f), PickKey(-0.0f));
}

TEST(PickUniform, RangeSpreadAndDistinctInputs) {
  std::set<double> seen;
  double sum = 0.0;
  int n = 0;
  for (uint64_t seed : {0ull, 1ull, 2ull, 0xffffffffffffffffull})
    for (uint64_t draw = 0; draw < 40; ++draw)
      for (uint64_t row = 0; row < 40; ++row) {
        const double u = PickUniform(seed, draw, row);
        ASSERT_GE(u, 0.0);
        ASSERT_LT(u, 1.0);
        // A multiple of 2^-53: 53 random bits, nothing finer.
        EXPECT_EQ(std::ldexp(u, 53), std::floor(std::ldexp(u, 53)));
        seen.insert(u);
        sum += u;
        ++n;
      }
  EXPECT_EQ(seen.size(), size_t(n)) << "two (seed, draw, row) triples gave the same value";
  EXPECT_NEAR(sum / n, 0.5, 0.02);
  // Swapping draw and row must not give the same stream.
  EXPECT_NE(PickUniform(5, 1, 2), PickUniform(5, 2, 1));
}

TEST(PickParamsFrom, CopiesFieldsAndRefusesRepetitionPenalty) {
  SamplingParams s;
  s.temperature = 0.7f;
  s.top_k = 40;
  s.top_p = 0.9f;
  s.min_p = 0.05f;
  s.seed = 1234;
  s.n_valid = -1;
  Result<PickParams> p = PickParamsFrom(s, 50277);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->temperature, 0.7f);
  EXPECT_EQ(p->top_k, 40);
  EXPECT_EQ(p->top_p, 0.9f);
  EXPECT_EQ(p->min_p, 0.05f);
  EXPECT_EQ(p->n_valid, 50277);
  EXPECT_EQ(p->seed, 1234u);

  s.repetition_penalty = 1.3f;
  Result<PickParams> bad = PickParamsFrom(s, 50277);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("repetition_penalty"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("history"), std::string::npos) << bad.status().message();
  s.repeat_last_n = 0;  // the Sampler ignores the penalty then too
  EXPECT_TRUE(PickParamsFrom(s, 10).ok());

  s.repetition_penalty = 1.0f;
  s.top_p = 1.5f;
  EXPECT_FALSE(PickParamsFrom(s, 10).ok());
  s.top_p = 0.9f;
  EXPECT_FALSE(PickParamsFrom(s, 0).ok());
}

TEST(PickReference, GreedyIsArgmaxWithLowestIdOnTies) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const std::vector<float> l = RandomLogits(300, seed, 2.0f, seed % 2 ? 0.5f : 0.0f);
    int best = 0;
    for (int i = 1; i < 300; ++i)
      if (l[i] > l[best]) best = i;
    EXPECT_EQ(PickReference(l.data(), Params(0.0f, 0, 1.0f, 0.0f, 300), 0.3), best);
  }
  const std::vector<float> ties = {1.0f, kNaN, 3.0f, -kInf, 3.0f, 2.0f};
  EXPECT_EQ(PickReference(ties.data(), Params(0.0f, 0, 1.0f, 0.0f, 6), 0.9), 2);
  const std::vector<float> nan_first = {kNaN, -5.0f, kNaN};
  EXPECT_EQ(PickReference(nan_first.data(), Params(0.0f, 0, 1.0f, 0.0f, 3), 0.9), 1);
  const std::vector<float> none = {-kInf, kNaN, -kInf};
  EXPECT_EQ(PickReference(none.data(), Params(0.0f, 0, 1.0f, 0.0f, 3), 0.9), 0);
  EXPECT_EQ(PickReference(none.data(), Params(1.0f, 0, 1.0f, 0.0f, 3), 0.9), 0);
}

TEST(PickReference, NonFiniteMaxPicksLowestIdAtTheMax) {
  const std::vector<float> inf = {1.0f, kInf, 2.0f, kInf};
  for (double u : {0.0, 0.5, kBelowOne}) EXPECT_EQ(PickReference(inf.data(), Params(1.0f, 0, 0.5f, 0.1f, 4), u), 1);
  // Division overflow: both 100/1e-37 and 200/1e-37 are +inf, so the lower id wins.
  const std::vector<float> big = {-1.0f, 100.0f, 200.0f};
  EXPECT_EQ(PickReference(big.data(), Params(1e-37f, 0, 1.0f, 0.0f, 3), 0.99), 1);
}

TEST(PickReference, NaNAndNegInfAreNeverPicked) {
  std::vector<float> l = RandomLogits(64, 3, 1.0f);
  for (int i = 0; i < 64; i += 3) l[i] = i % 2 ? kNaN : -kInf;
  for (int k = 0; k < 400; ++k) {
    const int32_t id = PickReference(l.data(), Params(1.0f, 0, 1.0f, 0.0f, 64), PickUniform(1, k, 0));
    EXPECT_NE(id % 3, 0) << "picked id " << id << " with logit " << l[id];
  }
}

TEST(PickReference, PaddingBeyondNValidIsNeverPicked) {
  std::vector<float> l = RandomLogits(100, 4, 1.0f);
  for (int i = 80; i < 100; ++i) l[i] = i % 2 ? 1e4f : kNaN;  // would win everything
  for (const PickParams& p : {Params(0.0f, 0, 1.0f, 0.0f, 80), Params(1.0f, 0, 1.0f, 0.0f, 80),
                              Params(0.8f, 5, 0.9f, 0.0f, 80), Params(1.2f, 0, 1.0f, 0.2f, 80)})
    for (int k = 0; k < 300; ++k) EXPECT_LT(PickReference(l.data(), p, PickUniform(9, k, 0)), 80);
}

TEST(PickReference, UZeroAndUBelowOnePickTheEndsOfTheKeptSet) {
  for (uint32_t seed = 0; seed < 30; ++seed) {
    const std::vector<float> l = RandomLogits(200, 100 + seed, 1.0f);
    const PickParams p = Params(0.9f, seed % 3 ? 30 : 0, seed % 2 ? 0.8f : 1.0f, seed % 5 ? 0.0f : 0.1f, 200);
    std::vector<int32_t> kept = RefTopK(l, AllIds(200), p.top_k > 0 ? p.top_k : 200);
    std::vector<float> x(200);
    for (int i = 0; i < 200; ++i) x[i] = l[i] / p.temperature;
    if (p.top_p < 1.0f) kept = RefTopP(x, kept, p.top_p);
    if (p.min_p > 0.0f) kept = RefMinP(x, kept, p.min_p);
    std::sort(kept.begin(), kept.end());
    EXPECT_EQ(PickReference(l.data(), p, 0.0), kept.front()) << "seed " << seed;
    EXPECT_EQ(PickReference(l.data(), p, kBelowOne), kept.back()) << "seed " << seed;
  }
}

// Ties at the thresholds are kept whole (where the host steps cut them by id).
TEST(PickReference, TiesAtTheCutsAreKept) {
  // x sorted: 3, 2, 2, 2, 1, 0. top_k = 2 keeps the 3 and all three 2s.
  const std::vector<float> l = {2.0f, 1.0f, 3.0f, 2.0f, 0.0f, 2.0f};
  const PickParams k2 = Params(1.0f, 2, 1.0f, 0.0f, 6);
  EXPECT_EQ(PickableIds(l, k2), (std::vector<int32_t>{0, 2, 3, 5}));
  // top_p just above the 3's share: the prefix ends inside the 2s, and all of them stay.
  const double share3 = 1.0 / (1.0 + 3.0 * std::exp(-1.0) + std::exp(-2.0) + std::exp(-3.0));
  const PickParams p = Params(1.0f, 0, float(share3) + 0.01f, 0.0f, 6);
  EXPECT_EQ(PickableIds(l, p), (std::vector<int32_t>{0, 2, 3, 5}));
  const PickParams p_top = Params(1.0f, 0, float(share3) - 0.01f, 0.0f, 6);
  EXPECT_EQ(PickableIds(l, p_top), (std::vector<int32_t>{2}));
  // min_p = exp(-1) exactly as the rule computes it keeps the 2s (w >= min_p), a hair more drops them.
  const PickParams m = Params(1.0f, 0, 1.0f, float(std::exp(-1.0)) * (1.0f - 1e-6f), 6);
  EXPECT_EQ(PickableIds(l, m), (std::vector<int32_t>{0, 2, 3, 5}));
  const PickParams m_up = Params(1.0f, 0, 1.0f, float(std::exp(-1.0)) * (1.0f + 1e-6f), 6);
  EXPECT_EQ(PickableIds(l, m_up), (std::vector<int32_t>{2}));
}

// With distinct logits there are no ties to treat differently, so the ids the rule can pick are
// exactly the host chain's kept set.
TEST(PickReference, KeptSetMatchesHostSteps) {
  int compared = 0, near_boundary = 0;
  for (uint32_t seed = 0; seed < 120; ++seed) {
    const int n = 50 + int(seed % 7) * 40;
    const std::vector<float> l = RandomLogits(n, 1000 + seed, 1.5f);
    const float temps[] = {1.0f, 0.7f, 1.6f};
    const int ks[] = {0, 1, 5, 40, n - 1, n};
    const float ps[] = {1.0f, 0.95f, 0.6f, 0.1f};
    const float mps[] = {0.0f, 0.05f, 0.3f};
    const PickParams p = Params(temps[seed % 3], ks[seed % 6], ps[(seed / 3) % 4], mps[(seed / 7) % 3], n);
    double margin = 0.0;
    PickReference(l.data(), p, 0.5, &margin);
    // Decisions within rounding of a cut may differ between two summation orders: skip those.
    // (margin also counts the pick at u = 0.5, which is harmless to skip on.)
    if (margin < 1e-9) {
      ++near_boundary;
      continue;
    }
    ++compared;
    EXPECT_EQ(PickableIds(l, p), HostKept(l, p))
        << "seed " << seed << " T " << p.temperature << " k " << p.top_k << " p " << p.top_p << " min_p " << p.min_p;
  }
  EXPECT_GE(compared, 110) << near_boundary << " cases skipped near a boundary";
}

// Draws with u = PickUniform follow the kept set's softmax (chi-square).
TEST(PickReference, DrawsFollowTheKeptSetProbabilities) {
  struct Setting {
    float temperature;
    int top_k;
    float top_p, min_p;
  };
  const Setting settings[] = {{1.0f, 0, 1.0f, 0.0f}, {0.8f, 8, 1.0f, 0.0f}, {1.3f, 0, 0.85f, 0.0f},
                              {1.0f, 0, 1.0f, 0.1f},  {0.9f, 12, 0.9f, 0.05f}};
  uint64_t seed = 77;
  for (const Setting& s : settings) {
    const int n = 24;
    const std::vector<float> l = RandomLogits(n, uint32_t(seed), 1.0f);
    const PickParams p = Params(s.temperature, s.top_k, s.top_p, s.min_p, n);
    // Expected: the kept set from the test_util references, softmax of x over it in long double.
    std::vector<float> x(n);
    for (int i = 0; i < n; ++i) x[i] = l[i] / s.temperature;
    std::vector<int32_t> kept = RefTopK(x, AllIds(n), s.top_k > 0 ? s.top_k : n);
    if (s.top_p < 1.0f) kept = RefTopP(x, kept, s.top_p);
    if (s.min_p > 0.0f) kept = RefMinP(x, kept, s.min_p);
    std::sort(kept.begin(), kept.end());
    const std::vector<long double> prob = RefSoftmax(x, kept);

    const int draws = 200000;
    std::vector<int> count(n, 0);
    for (int d = 0; d < draws; ++d) ++count[PickReference(l.data(), p, PickUniform(seed, d, 3))];
    double chi2 = 0.0;
    int in_kept = 0;
    for (size_t j = 0; j < kept.size(); ++j) {
      const double e = double(prob[j]) * draws;
      chi2 += (count[kept[j]] - e) * (count[kept[j]] - e) / e;
      in_kept += count[kept[j]];
    }
    EXPECT_EQ(in_kept, draws) << "picked an id outside the kept set";
    // df = |kept| - 1; mean df, sd sqrt(2 df): a bound far in the tail (a correct rule fails it
    // with probability well under 1e-6).
    const double df = double(kept.size()) - 1.0;
    if (df > 0) {
      EXPECT_LT(chi2, df + 8.0 * std::sqrt(2.0 * df) + 10.0) << "kept " << kept.size() << " seed " << seed;
    }
    ++seed;
  }
}

TEST(PickReference, MarginIsSmallOnlyNearABoundary) {
  const std::vector<float> l = {0.0f, 0.0f, 0.0f, 0.0f};  // each id 1/4 of the mass
  const PickParams p = Params(1.0f, 0, 1.0f, 0.0f, 4);
  double margin = 0.0;
  EXPECT_EQ(PickReference(l.data(), p, 0.125, &margin), 0);
  EXPECT_NEAR(margin, 0.125, 1e-15);
  EXPECT_EQ(PickReference(l.data(), p, 0.5, &margin), 2);  // exactly at the 1|2 boundary: cum 2 > 2 is false
  EXPECT_EQ(margin, 0.0);
  EXPECT_EQ(PickReference(l.data(), p, 0.0, &margin), 0);  // nothing below the first id to round
  EXPECT_NEAR(margin, 0.25, 1e-15);
  EXPECT_EQ(PickReference(l.data(), Params(0.0f, 0, 1.0f, 0.0f, 4), 0.3, &margin), 0);
  EXPECT_TRUE(std::isinf(margin));
}

}  // namespace
}  // namespace mamba2
