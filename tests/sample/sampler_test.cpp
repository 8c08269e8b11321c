// The Sampler end to end: greedy, n_valid, seeding, and draw frequencies
// against softmax probabilities computed here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "sample/sampler.h"
#include "sample/test_util.h"

namespace mamba2 {
namespace {

using sample_test::AllIds;
using sample_test::RandomLogits;
using sample_test::RefSoftmax;

int32_t Draw(Sampler& s, const std::vector<float>& l, const std::vector<int32_t>& history = {}) {
  return s.Sample(l.data(), static_cast<int64_t>(l.size()), history);
}

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

TEST(Sampler, GreedyIsArgmaxWithTiesToLowestId) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const std::vector<float> l = RandomLogits(1000, seed, 2.0f, seed % 2 ? 0.5f : 0.0f);
    int32_t want = 0;
    for (int32_t i = 1; i < 1000; ++i)
      if (l[i] > l[want]) want = i;  // strict: the first maximum stays
    Sampler s(Greedy());
    EXPECT_EQ(Draw(s, l), want) << "seed " << seed;
  }
  Sampler s(Greedy());
  EXPECT_EQ(Draw(s, {1.0f, 3.0f, 3.0f, 2.0f}), 1);
}

TEST(Sampler, GreedyIgnoresFiltersButNotPenalty) {
  SamplingParams p = Greedy();
  p.top_k = 2;
  p.top_p = 0.1f;
  p.min_p = 0.5f;
  Sampler s(p);
  EXPECT_EQ(Draw(s, {0.1f, 2.0f, 1.9f}), 1);

  p.repetition_penalty = 1.1f;  // 2.0 / 1.1 = 1.818 < 1.9
  Sampler pen(p);
  EXPECT_EQ(Draw(pen, {0.1f, 2.0f, 1.9f}, {1}), 2);
  EXPECT_EQ(Draw(pen, {0.1f, 2.0f, 1.9f}, {0}), 1);
  // Negative logits are multiplied: -1 * 1.1 = -1.1 < -1.05.
  EXPECT_EQ(Draw(pen, {-1.0f, -1.05f}, {0}), 1);
}

TEST(Sampler, NValidExcludesPaddedRows) {
  const int rows = 50288, vocab = 50277;
  std::vector<float> l = RandomLogits(rows, 7);
  for (int i = vocab; i < rows; ++i) l[i] = 100.0f;  // padded rows look irresistible

  SamplingParams g = Greedy();
  g.n_valid = vocab;
  Sampler greedy(g);
  const int32_t got = Draw(greedy, l);
  EXPECT_LT(got, vocab);
  EXPECT_EQ(got, std::max_element(l.begin(), l.begin() + vocab) - l.begin());

  SamplingParams p;
  p.n_valid = vocab;
  p.seed = 3;
  Sampler sampler(p);
  for (int i = 0; i < 2000; ++i) ASSERT_LT(Draw(sampler, l), vocab);

  // Without n_valid the padded rows dominate: the test above is not vacuous.
  Sampler unrestricted(SamplingParams{});
  EXPECT_GE(Draw(unrestricted, l), vocab);

  // n_valid beyond the row count is clamped.
  SamplingParams big = Greedy();
  big.n_valid = 1 << 20;
  Sampler clamped(big);
  EXPECT_EQ(Draw(clamped, {0.0f, 1.0f}), 1);
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDifferent) {
  const std::vector<float> l = RandomLogits(1000, 5, 1.0f);
  SamplingParams p;
  p.seed = 1234;
  p.top_k = 200;
  p.temperature = 0.9f;
  Sampler a(p), b(p);
  p.seed = 1235;
  Sampler c(p);
  std::vector<int32_t> sa, sb, sc;
  for (int i = 0; i < 300; ++i) {
    sa.push_back(Draw(a, l));
    sb.push_back(Draw(b, l));
    sc.push_back(Draw(c, l));
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);

  a.Reseed(1234);
  std::vector<int32_t> again;
  for (int i = 0; i < 300; ++i) again.push_back(Draw(a, l));
  EXPECT_EQ(again, sa);
}

TEST(Sampler, StdMt19937_64IsTheStandardEngine) {
  // [rand.predef]: the 10000th output of a default-constructed mt19937_64.
  std::mt19937_64 rng;
  rng.discard(9999);
  EXPECT_EQ(rng(), 9981545732273789042ull);
}

TEST(Sampler, DrawIsInverseCdfOfTheDocumentedUniform) {
  // The cross-platform contract, written out independently: one mt19937_64
  // output per draw, u = top 53 bits * 2^-53, ids in order, first id whose
  // cumulative probability exceeds u.
  const std::vector<float> l = RandomLogits(64, 8, 1.5f);
  const std::vector<long double> probs = RefSoftmax(l, AllIds(64));
  SamplingParams p;
  p.seed = 42;
  Sampler s(p);
  std::mt19937_64 ref(42);
  int mismatches = 0;
  for (int i = 0; i < 2000; ++i) {
    const long double u = static_cast<long double>(ref() >> 11) / 9007199254740992.0L;
    int32_t want = 63;
    long double cum = 0;
    for (int32_t id = 0; id < 64; ++id) {
      cum += probs[id];
      if (u < cum) {
        want = id;
        break;
      }
    }
    if (Draw(s, l) != want) ++mismatches;
  }
  EXPECT_EQ(mismatches, 0);
}

// Pearson chi-square of `n_draws` draws against `expected` (zero-probability
// ids must never appear). Bound: the 1 - 1e-4 quantile (Wilson-Hilferty).
void ExpectFrequenciesMatch(Sampler& s, const std::vector<float>& l, const std::vector<long double>& expected,
                            int n_draws, const std::vector<int32_t>& history = {}) {
  std::vector<int> counts(l.size(), 0);
  for (int i = 0; i < n_draws; ++i) ++counts[Draw(s, l, history)];
  double chi2 = 0.0;
  int nonzero = 0;
  for (size_t i = 0; i < l.size(); ++i) {
    if (expected[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "id " << i << " should have been filtered out";
      continue;
    }
    ++nonzero;
    const double e = static_cast<double>(expected[i]) * n_draws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  const double df = nonzero - 1, z = 3.719;
  const double bound = df <= 0 ? 0.0 : df * std::pow(1 - 2 / (9 * df) + z * std::sqrt(2 / (9 * df)), 3);
  EXPECT_LE(chi2, bound) << "df " << df;
}

// Probability vector over all ids: softmax over `kept` (scaled logits), 0 elsewhere.
std::vector<long double> Expected(const std::vector<float>& scaled, const std::vector<int32_t>& kept) {
  std::vector<long double> out(scaled.size(), 0);
  const std::vector<long double> p = RefSoftmax(scaled, kept);
  for (size_t i = 0; i < kept.size(); ++i) out[kept[i]] = p[i];
  return out;
}

const std::vector<float> kTen = {1.2f, -0.3f, 0.8f, 2.0f, 0.0f, -1.5f, 1.9f, 0.4f, -0.7f, 1.0f};
constexpr int kDraws = 100000;

TEST(SamplerFrequencies, PlainSoftmax) {
  SamplingParams p;
  p.seed = 1;
  Sampler s(p);
  ExpectFrequenciesMatch(s, kTen, Expected(kTen, AllIds(10)), kDraws);
}

TEST(SamplerFrequencies, Temperature) {
  for (float t : {0.5f, 2.0f}) {
    SamplingParams p;
    p.seed = 2;
    p.temperature = t;
    Sampler s(p);
    std::vector<float> scaled(kTen);
    for (float& x : scaled) x /= t;
    ExpectFrequenciesMatch(s, kTen, Expected(scaled, AllIds(10)), kDraws);
  }
}

TEST(SamplerFrequencies, FrequencyTestDetectsAWrongDistribution) {
  // Guard against a bound so loose it passes anything: temperature-2 draws
  // must fail against the temperature-1 distribution.
  SamplingParams p;
  p.seed = 2;
  p.temperature = 2.0f;
  Sampler s(p);
  std::vector<int> counts(10, 0);
  for (int i = 0; i < kDraws; ++i) ++counts[Draw(s, kTen)];
  const auto e = Expected(kTen, AllIds(10));
  double chi2 = 0;
  for (int i = 0; i < 10; ++i) chi2 += std::pow(counts[i] - e[i] * kDraws, 2) / (e[i] * kDraws);
  EXPECT_GT(chi2, 1000.0);
}

TEST(SamplerFrequencies, TopKTopPMinPRenormalise) {
  {
    SamplingParams p;
    p.seed = 3;
    p.top_k = 4;
    Sampler s(p);
    ExpectFrequenciesMatch(s, kTen, Expected(kTen, sample_test::RefTopK(kTen, AllIds(10), 4)), kDraws);
  }
  {
    SamplingParams p;
    p.seed = 4;
    p.top_p = 0.7f;
    Sampler s(p);
    ExpectFrequenciesMatch(s, kTen, Expected(kTen, sample_test::RefTopP(kTen, AllIds(10), 0.7)), kDraws);
  }
  {
    SamplingParams p;
    p.seed = 5;
    p.min_p = 0.2f;
    Sampler s(p);
    ExpectFrequenciesMatch(s, kTen, Expected(kTen, sample_test::RefMinP(kTen, AllIds(10), 0.2)), kDraws);
  }
  {
    // Full chain: penalty, temperature, top-k, top-p, min-p.
    SamplingParams p;
    p.seed = 6;
    p.repetition_penalty = 1.3f;
    p.temperature = 0.8f;
    p.top_k = 7;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    const std::vector<int32_t> history = {3, 5, 3};
    std::vector<float> scaled(kTen);
    for (int32_t id : {3, 5}) scaled[id] = scaled[id] > 0 ? scaled[id] / 1.3f : scaled[id] * 1.3f;
    for (float& x : scaled) x /= 0.8f;
    auto kept = sample_test::RefTopK(scaled, AllIds(10), 7);
    kept = sample_test::RefTopP(scaled, kept, 0.95);
    kept = sample_test::RefMinP(scaled, kept, 0.05);
    Sampler s(p);
    ExpectFrequenciesMatch(s, kTen, Expected(scaled, kept), kDraws, history);
  }
}

TEST(Sampler, SingleSurvivorIsAlwaysPicked) {
  SamplingParams p;
  p.seed = 9;
  p.top_k = 1;
  Sampler s(p);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(Draw(s, kTen), 3);
  p.top_k = 0;
  p.min_p = 1.0f;
  Sampler m(p);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(Draw(m, kTen), 3);
}

TEST(Sampler, DegenerateLogitsDoNotCrash) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  SamplingParams p;
  p.top_p = 0.5f;
  p.min_p = 0.1f;
  Sampler s(p);
  EXPECT_EQ(Draw(s, {-inf, -inf, -inf}), 0);
  EXPECT_EQ(Draw(s, {nan, 0.5f, nan}), 1);
  EXPECT_EQ(Draw(s, {0.0f, inf, 1.0f}), 1);
  for (int i = 0; i < 200; ++i) {
    const int32_t id = Draw(s, {-inf, 0.0f, -inf, 0.0f});
    ASSERT_TRUE(id == 1 || id == 3) << id;
  }
}

TEST(Sampler, LogProbMatchesDirectComputation) {
  const std::vector<float> l = RandomLogits(500, 21, 3.0f);
  long double total = 0;
  for (float x : l) total += std::exp(static_cast<long double>(x));
  double mass = 0;
  for (int32_t id = 0; id < 500; ++id) {
    const float lp = Sampler::LogProb(l.data(), 500, id);
    EXPECT_NEAR(lp, static_cast<double>(std::log(std::exp(static_cast<long double>(l[id])) / total)), 1e-5);
    mass += std::exp(static_cast<double>(lp));
  }
  EXPECT_NEAR(mass, 1.0, 1e-5);
  // Large logits must not overflow.
  const std::vector<float> big = {1000.0f, 1000.0f};
  EXPECT_NEAR(Sampler::LogProb(big.data(), 2, 0), std::log(0.5), 1e-6);
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> masked = {0.0f, -inf};
  EXPECT_EQ(Sampler::LogProb(masked.data(), 2, 0), 0.0f);
  EXPECT_EQ(Sampler::LogProb(masked.data(), 2, 1), -inf);
}

TEST(Sampler, TopLogProbsAreTheBestInOrder) {
  const std::vector<float> l = RandomLogits(300, 22, 2.0f, 0.5f);
  const std::vector<int32_t> ranked = sample_test::RefRanked(l, AllIds(300));
  for (int k : {1, 5, 300, 400}) {
    const auto top = Sampler::TopLogProbs(l.data(), 300, k);
    ASSERT_EQ(top.size(), static_cast<size_t>(std::min(k, 300)));
    for (size_t i = 0; i < top.size(); ++i) {
      EXPECT_EQ(top[i].id, ranked[i]) << "rank " << i;
      EXPECT_FLOAT_EQ(top[i].logprob, Sampler::LogProb(l.data(), 300, top[i].id));
    }
  }
  EXPECT_TRUE(Sampler::TopLogProbs(l.data(), 300, 0).empty());
}

}  // namespace
}  // namespace mamba2
