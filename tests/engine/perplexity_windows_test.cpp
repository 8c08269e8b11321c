// Window layouts of the three protocols, against layouts worked out by hand from
// lm-evaluation-harness's get_rolling_token_windows + make_disjoint_window (context_len=1) and
// the Hugging Face strided-perplexity loop.
#include <gtest/gtest.h>

#include <set>

#include "engine/perplexity.h"
#include "engine/perplexity_windows.h"

namespace mamba2 {
namespace {

struct W {
  int64_t start, length, n_scored, row;
};

void ExpectWindows(const std::vector<PplWindow>& got, const std::vector<W>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].start, want[i].start) << "window " << i;
    EXPECT_EQ(got[i].length, want[i].length) << "window " << i;
    EXPECT_EQ(got[i].n_scored, want[i].n_scored) << "window " << i;
    EXPECT_EQ(got[i].row, want[i].row) << "window " << i;
  }
}

// Fed tokens and targets of each window, from seq.
std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> Expand(const std::vector<int32_t>& seq,
                                                                          const std::vector<PplWindow>& ws) {
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> out;
  for (const PplWindow& w : ws) {
    std::vector<int32_t> fed(seq.begin() + w.start, seq.begin() + w.start + w.length);
    std::vector<int32_t> tg(seq.begin() + w.start + w.length - w.n_scored + 1, seq.begin() + w.start + w.length + 1);
    out.emplace_back(fed, tg);
  }
  return out;
}

TEST(PerplexityWindows, RollingLmEval) {
  // tokens t0..t7 = 10..17, prefix P = 0, max_len 3:
  //   [P t0 t1] -> t0 t1 t2;  [t2 t3 t4] -> t3 t4 t5 (context: t2);
  //   last: t6 t7 with the harness's input tokens[e-1-3, e-1) = [t4 t5 t6] (context t4 t5).
  std::vector<PplWindow> ws;
  AppendRollingWindows(0, 8, 3, ws);
  ExpectWindows(ws, {{0, 3, 3, 0}, {3, 3, 3, 3}, {5, 3, 2, 6}});
  const std::vector<int32_t> seq = {0, 10, 11, 12, 13, 14, 15, 16, 17};
  const auto ex = Expand(seq, ws);
  EXPECT_EQ(ex[0].first, (std::vector<int32_t>{0, 10, 11}));
  EXPECT_EQ(ex[0].second, (std::vector<int32_t>{10, 11, 12}));
  EXPECT_EQ(ex[1].first, (std::vector<int32_t>{12, 13, 14}));
  EXPECT_EQ(ex[1].second, (std::vector<int32_t>{13, 14, 15}));
  EXPECT_EQ(ex[2].first, (std::vector<int32_t>{14, 15, 16}));
  EXPECT_EQ(ex[2].second, (std::vector<int32_t>{16, 17}));
}

TEST(PerplexityWindows, RollingEdges) {
  std::vector<PplWindow> ws;
  AppendRollingWindows(0, 0, 4, ws);
  EXPECT_TRUE(ws.empty());
  AppendRollingWindows(0, 2, 4, ws);  // shorter than max_len: one window [P t0]
  ExpectWindows(ws, {{0, 2, 2, 0}});
  ws.clear();
  AppendRollingWindows(0, 4, 4, ws);  // exactly max_len
  ExpectWindows(ws, {{0, 4, 4, 0}});
  ws.clear();
  AppendRollingWindows(0, 5, 4, ws);  // one token over: fed [t0..t3], scores t4
  ExpectWindows(ws, {{0, 4, 4, 0}, {1, 4, 1, 4}});
  // Rows continue across documents.
  AppendRollingWindows(1, 3, 4, ws);
  ExpectWindows(ws, {{0, 4, 4, 0}, {1, 4, 1, 4}, {0, 3, 3, 5}});
  EXPECT_EQ(ws[2].doc, 1);
  EXPECT_EQ(TotalScored(ws), 8);
}

TEST(PerplexityWindows, RollingScoresEveryTokenOnce) {
  for (int64_t n : {1, 2, 7, 64, 65, 129, 300}) {
    for (int64_t L : {1, 2, 3, 16, 64}) {
      std::vector<PplWindow> ws;
      AppendRollingWindows(0, n, L, ws);
      std::set<int64_t> scored;  // positions in tokens (seq index - 1)
      for (const PplWindow& w : ws) {
        EXPECT_LE(w.length, L);
        EXPECT_GE(w.start, 0);
        EXPECT_LE(w.start + w.length, n);  // the last target seq[start + length] exists
        for (int64_t i = w.start + w.length - w.n_scored; i < w.start + w.length; ++i)
          EXPECT_TRUE(scored.insert(i).second) << "n " << n << " L " << L << " token " << i;
      }
      EXPECT_EQ(int64_t(scored.size()), n);
      EXPECT_EQ(TotalScored(ws), n);
    }
  }
}

TEST(PerplexityWindows, SlidingHfGuide) {
  // n 10, ctx 4, stride 2: windows [0,4) [2,6) [4,8) [6,10); scored [1,4) [4,6) [6,8) [8,10).
  std::vector<PplWindow> ws;
  AppendSlidingWindows(0, 10, 4, 2, ws);
  ExpectWindows(ws, {{0, 3, 3, 0}, {2, 3, 2, 3}, {4, 3, 2, 5}, {6, 3, 2, 7}});
  std::vector<int32_t> seq(10);
  for (int i = 0; i < 10; ++i) seq[size_t(i)] = 100 + i;
  const auto ex = Expand(seq, ws);
  EXPECT_EQ(ex[1].first, (std::vector<int32_t>{102, 103, 104}));  // fed [2,5); 105 is only a target
  EXPECT_EQ(ex[1].second, (std::vector<int32_t>{104, 105}));
  EXPECT_EQ(TotalScored(ws), 9);
}

TEST(PerplexityWindows, SlidingDisjointSkipsEachWindowsFirstToken) {
  // stride == ctx: [0,4) [4,8) [8,10); the guide's label shift never scores tokens 0, 4, 8.
  std::vector<PplWindow> ws;
  AppendSlidingWindows(0, 10, 4, 4, ws);
  ExpectWindows(ws, {{0, 3, 3, 0}, {4, 3, 3, 3}, {8, 1, 1, 6}});
  // n 9: the last window [8,9) would score nothing and is dropped.
  ws.clear();
  AppendSlidingWindows(0, 9, 4, 4, ws);
  ExpectWindows(ws, {{0, 3, 3, 0}, {4, 3, 3, 3}});
}

TEST(PerplexityWindows, SlidingStrideOneAndShortText) {
  std::vector<PplWindow> ws;
  AppendSlidingWindows(0, 4, 2, 1, ws);
  ExpectWindows(ws, {{0, 1, 1, 0}, {1, 1, 1, 1}, {2, 1, 1, 2}});
  ws.clear();
  AppendSlidingWindows(0, 3, 8, 4, ws);  // shorter than ctx: one window
  ExpectWindows(ws, {{0, 2, 2, 0}});
  ws.clear();
  AppendSlidingWindows(0, 1, 8, 4, ws);  // a single token scores nothing
  EXPECT_TRUE(ws.empty());
}

TEST(PerplexityWindows, SlidingScoresAllButFirstWhenOverlapping) {
  for (int64_t n : {2, 5, 100, 257}) {
    for (int64_t ctx : {2, 3, 16, 64}) {
      for (int64_t stride = 1; stride < ctx; stride += std::max<int64_t>(1, ctx / 3)) {
        std::vector<PplWindow> ws;
        AppendSlidingWindows(0, n, ctx, stride, ws);
        EXPECT_EQ(TotalScored(ws), n - 1) << n << " " << ctx << " " << stride;
        for (const PplWindow& w : ws) {
          EXPECT_LE(w.length + 1, ctx);
          EXPECT_LE(w.n_scored, stride + (w.start == 0 ? ctx : 0));
        }
      }
    }
  }
}

TEST(PerplexityWindows, Stateful) {
  std::vector<PplWindow> ws;
  AppendStatefulWindow(0, 5, ws);
  ExpectWindows(ws, {{0, 4, 4, 0}});
}

TEST(PerplexityWindows, TargetsAndContextHash) {
  const std::vector<std::vector<int32_t>> docs = {{5, 6, 7, 8, 9, 10, 11, 12}};
  std::vector<PplWindow> a, b;
  AppendSlidingWindows(0, 8, 4, 2, a);
  AppendSlidingWindows(0, 8, 6, 2, b);
  // Same scored tokens (all but the first), other contexts.
  EXPECT_EQ(CollectTargets(docs, a), (std::vector<int32_t>{6, 7, 8, 9, 10, 11, 12}));
  EXPECT_EQ(CollectTargets(docs, a), CollectTargets(docs, b));
  EXPECT_NE(HashWindows(docs, a), HashWindows(docs, b));
  EXPECT_EQ(HashWindows(docs, a), HashWindows(docs, a));
}

}  // namespace
}  // namespace mamba2
