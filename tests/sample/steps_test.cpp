// Each step against a brute-force reference from its definition.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "sample/candidates.h"
#include "sample/steps.h"
#include "sample/test_util.h"

namespace mamba2 {
namespace {

using sample_test::AllIds;
using sample_test::RandomLogits;
using sample_test::RefMinP;
using sample_test::RefTopK;
using sample_test::RefTopP;

std::vector<int32_t> SortedIds(const CandidateSet& c) {
  std::vector<int32_t> ids;
  for (const Candidate& x : c.items) ids.push_back(x.id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

float LogitOf(const CandidateSet& c, int32_t id) {
  for (const Candidate& x : c.items)
    if (x.id == id) return x.logit;
  ADD_FAILURE() << "id " << id << " not in the candidate set";
  return 0.0f;
}

CandidateSet Fresh(const std::vector<float>& logits) {
  CandidateSet c;
  c.Reset(logits.data(), static_cast<int64_t>(logits.size()));
  return c;
}

TEST(RepetitionPenaltyStep, HandComputedValues) {
  // id:                         0     1     2    3     4
  const std::vector<float> l = {2.0f, -1.0f, 0.5f, 0.0f, 3.0f};
  // 1 repeated (penalised once), 7 and -1 out of range (ignored), 2 and 4 absent.
  const std::vector<int32_t> history = {0, 1, 1, 3, 7, -1};
  CandidateSet c = Fresh(l);
  RepetitionPenaltyStep(2.0f, -1).Apply(c, SampleContext{history});
  EXPECT_FLOAT_EQ(LogitOf(c, 0), 1.0f);   // 2 / 2
  EXPECT_FLOAT_EQ(LogitOf(c, 1), -2.0f);  // -1 * 2
  EXPECT_FLOAT_EQ(LogitOf(c, 2), 0.5f);
  EXPECT_FLOAT_EQ(LogitOf(c, 3), 0.0f);   // 0 is not > 0: 0 * 2
  EXPECT_FLOAT_EQ(LogitOf(c, 4), 3.0f);
}

TEST(RepetitionPenaltyStep, PenaltyBelowOneBoostsRepeats) {
  const std::vector<float> l = {1.5f, -3.0f};
  const std::vector<int32_t> history = {0, 1};
  CandidateSet c = Fresh(l);
  RepetitionPenaltyStep(0.5f, -1).Apply(c, SampleContext{history});
  EXPECT_FLOAT_EQ(LogitOf(c, 0), 3.0f);   // 1.5 / 0.5
  EXPECT_FLOAT_EQ(LogitOf(c, 1), -1.5f);  // -3 * 0.5
}

TEST(RepetitionPenaltyStep, WindowOnlyCoversRecentIds) {
  const std::vector<float> l = {4.0f, 4.0f, 4.0f, 4.0f};
  const std::vector<int32_t> history = {0, 1, 2, 2};
  CandidateSet c = Fresh(l);
  RepetitionPenaltyStep(4.0f, 2).Apply(c, SampleContext{history});  // window = {2, 2}
  EXPECT_FLOAT_EQ(LogitOf(c, 0), 4.0f);
  EXPECT_FLOAT_EQ(LogitOf(c, 1), 4.0f);
  EXPECT_FLOAT_EQ(LogitOf(c, 2), 1.0f);
  EXPECT_FLOAT_EQ(LogitOf(c, 3), 4.0f);

  CandidateSet none = Fresh(l);
  RepetitionPenaltyStep(4.0f, 0).Apply(none, SampleContext{history});
  for (int id = 0; id < 4; ++id) EXPECT_FLOAT_EQ(LogitOf(none, id), 4.0f);

  CandidateSet wide = Fresh(l);
  RepetitionPenaltyStep(4.0f, 100).Apply(wide, SampleContext{history});
  EXPECT_FLOAT_EQ(LogitOf(wide, 0), 1.0f);
  EXPECT_FLOAT_EQ(LogitOf(wide, 3), 4.0f);
}

TEST(RepetitionPenaltyStep, SameResultOnAReorderedSet) {
  // After top-k the set is sorted and no longer indexed by id: the lookup path differs.
  const std::vector<float> l = RandomLogits(200, 11);
  const std::vector<int32_t> history = {5, 17, 17, 199, 0, 64};
  CandidateSet reordered = Fresh(l);
  TopKStep(150).Apply(reordered, SampleContext{});
  ASSERT_FALSE(reordered.id_indexed);
  RepetitionPenaltyStep(1.3f, -1).Apply(reordered, SampleContext{history});
  for (const Candidate& x : reordered.items) {
    const bool repeated = std::find(history.begin(), history.end(), x.id) != history.end();
    const float orig = l[x.id];
    const float want = !repeated ? orig : (orig > 0 ? orig / 1.3f : orig * 1.3f);
    EXPECT_FLOAT_EQ(x.logit, want) << "id " << x.id;
  }
}

TEST(TemperatureStep, DividesLogits) {
  const std::vector<float> l = {1.0f, -2.0f, 0.25f};
  CandidateSet c = Fresh(l);
  TemperatureStep(0.5f).Apply(c, SampleContext{});
  EXPECT_FLOAT_EQ(LogitOf(c, 0), 2.0f);
  EXPECT_FLOAT_EQ(LogitOf(c, 1), -4.0f);
  EXPECT_FLOAT_EQ(LogitOf(c, 2), 0.5f);
}

struct Case {
  int n;
  uint32_t seed;
  float quantum;  // > 0: many exact ties
};
const Case kCases[] = {{1, 1, 0}, {7, 2, 0}, {300, 3, 0}, {300, 4, 0.5f}, {513, 5, 1.0f}};

TEST(TopKStep, MatchesBruteForce) {
  for (const Case& cs : kCases) {
    const std::vector<float> l = RandomLogits(cs.n, cs.seed, 2.0f, cs.quantum);
    for (int k : {1, 2, 5, 40, cs.n - 1, cs.n, cs.n + 3}) {
      if (k <= 0) continue;
      CandidateSet c = Fresh(l);
      TopKStep(k).Apply(c, SampleContext{});
      EXPECT_EQ(SortedIds(c), RefTopK(l, AllIds(cs.n), k)) << "n=" << cs.n << " k=" << k << " q=" << cs.quantum;
    }
  }
}

TEST(TopKStep, LargeVocabMatchesSortReference) {
  const int n = 50288;
  const std::vector<float> l = RandomLogits(n, 99, 3.0f, 0.25f);
  const std::vector<int32_t> ranked = sample_test::RefRanked(l, AllIds(n));
  for (int k : {1, 40, 1000}) {
    CandidateSet c = Fresh(l);
    TopKStep(k).Apply(c, SampleContext{});
    std::vector<int32_t> want(ranked.begin(), ranked.begin() + k);
    // The kept set comes back best first.
    std::vector<int32_t> got;
    for (const Candidate& x : c.items) got.push_back(x.id);
    EXPECT_EQ(got, want) << "k=" << k;
  }
}

TEST(TopPStep, MatchesBruteForce) {
  for (const Case& cs : kCases) {
    const std::vector<float> l = RandomLogits(cs.n, cs.seed, 2.0f, cs.quantum);
    for (float p : {1e-6f, 0.13f, 0.37f, 0.81f, 0.93f, 0.999f}) {
      CandidateSet c = Fresh(l);
      TopPStep(p).Apply(c, SampleContext{});
      EXPECT_EQ(SortedIds(c), RefTopP(l, AllIds(cs.n), p)) << "n=" << cs.n << " p=" << p << " q=" << cs.quantum;
      EXPECT_GE(c.items.size(), 1u);
    }
  }
}

TEST(TopPStep, LargeVocabMatchesBruteForce) {
  // Flat logits make the nucleus thousands of ids: several widening rounds.
  const int n = 50288;
  for (float stddev : {0.5f, 4.0f}) {
    const std::vector<float> l = RandomLogits(n, 77, stddev, 0.01f);
    for (float p : {0.3f, 0.95f}) {
      CandidateSet c = Fresh(l);
      TopPStep(p).Apply(c, SampleContext{});
      EXPECT_EQ(SortedIds(c), RefTopP(l, AllIds(n), p)) << "stddev=" << stddev << " p=" << p;
      EXPECT_TRUE(std::is_sorted(c.items.begin(), c.items.end(), RanksBefore));
    }
  }
}

TEST(TopPStep, TinyPKeepsOnlyTheBest) {
  const std::vector<float> l = {0.0f, 5.0f, 5.0f, 1.0f};
  CandidateSet c = Fresh(l);
  TopPStep(1e-9f).Apply(c, SampleContext{});
  ASSERT_EQ(c.items.size(), 1u);
  EXPECT_EQ(c.items[0].id, 1);  // tie with id 2 -> lower id
}

TEST(TopPStep, ExactBoundaryStopsAtTheFirstPrefixReachingP) {
  // Four equal logits: probabilities are exactly 0.25, so two of them reach p = 0.5 exactly.
  const std::vector<float> l = {0.0f, 0.0f, 0.0f, 0.0f};
  CandidateSet c = Fresh(l);
  TopPStep(0.5f).Apply(c, SampleContext{});
  EXPECT_EQ(SortedIds(c), (std::vector<int32_t>{0, 1}));
}

TEST(MinPStep, MatchesBruteForce) {
  for (const Case& cs : kCases) {
    const std::vector<float> l = RandomLogits(cs.n, cs.seed, 2.0f, cs.quantum);
    for (float mp : {0.01f, 0.07f, 0.3f, 0.77f, 1.0f}) {
      CandidateSet c = Fresh(l);
      MinPStep(mp).Apply(c, SampleContext{});
      EXPECT_EQ(SortedIds(c), RefMinP(l, AllIds(cs.n), mp)) << "n=" << cs.n << " min_p=" << mp << " q=" << cs.quantum;
    }
  }
}

TEST(Chain, TopKThenTopPThenMinPMatchesBruteForce) {
  // Each step renormalises over what the previous one kept.
  for (const Case& cs : kCases) {
    const std::vector<float> l = RandomLogits(cs.n, cs.seed + 100, 1.5f, cs.quantum);
    for (int k : {3, 50}) {
      for (float p : {0.41f, 0.9f}) {
        const float mp = 0.05f;
        CandidateSet c = Fresh(l);
        TopKStep(k).Apply(c, SampleContext{});
        TopPStep(p).Apply(c, SampleContext{});
        MinPStep(mp).Apply(c, SampleContext{});
        const auto want = RefMinP(l, RefTopP(l, RefTopK(l, AllIds(cs.n), k), p), mp);
        EXPECT_EQ(SortedIds(c), want) << "n=" << cs.n << " k=" << k << " p=" << p;
      }
    }
  }
}

TEST(CandidateSet, NanLogitsNeverWin) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> l = {nan, -1.0f, nan, -0.5f};
  CandidateSet c = Fresh(l);
  EXPECT_EQ(c.items[c.BestIndex()].id, 3);
  std::vector<double> probs;
  c.Softmax(probs);
  EXPECT_EQ(probs[0], 0.0);
  EXPECT_EQ(probs[2], 0.0);
  EXPECT_NEAR(probs[1] + probs[3], 1.0, 1e-12);
}

}  // namespace
}  // namespace mamba2
