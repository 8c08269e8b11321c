// PromptStateCache: which snapshot a prompt may resume from, LRU order and the byte budget.
#include <gtest/gtest.h>

#include <numeric>

#include "serve/state_cache.h"

namespace mamba2::serve {
namespace {

std::vector<int32_t> Seq(int n, int start = 0) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}

std::vector<float> State(float tag, size_t n = 100) { return std::vector<float>(n, tag); }

// Bytes an entry of this shape is charged (as Insert computes them).
int64_t EntryBytes(size_t tokens, size_t state, size_t logits) {
  return int64_t((tokens + state + logits) * sizeof(float) + sizeof(PromptStateCache::Entry));
}

TEST(StateCache, DeepestBoundaryPrefix) {
  PromptStateCache c(1 << 20);
  const auto p = Seq(40);
  ASSERT_TRUE(c.Insert(std::span(p).first(8), State(8), {}));
  ASSERT_TRUE(c.Insert(std::span(p).first(16), State(16), {}));
  ASSERT_TRUE(c.Insert(std::span(p).first(24), State(24), {}));
  const auto* e = c.Lookup(p, 8);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->tokens.size(), 24u);
  EXPECT_EQ(e->state[0], 24.0f);
  // A prompt of 20 tokens may use 16 (a boundary below its end) but not 24.
  e = c.Lookup(std::span(p).first(20), 8);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->tokens.size(), 16u);
  // A prompt that differs at token 10 can only resume at 8.
  auto q = p;
  q[10] = 999;
  e = c.Lookup(q, 8);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->tokens.size(), 8u);
  // Differing at token 3: nothing.
  q[3] = 999;
  EXPECT_EQ(c.Lookup(q, 8), nullptr);
}

TEST(StateCache, NonBoundaryEntriesOnlyServeTheirWholePromptWithLogits) {
  PromptStateCache c(1 << 20);
  const auto p = Seq(30);
  // The end of a 13-token prompt (13 is no multiple of 8), with the last token's logits.
  ASSERT_TRUE(c.Insert(std::span(p).first(13), State(13), std::vector<float>(5, 1.0f)));
  // The same 13-token prompt resumes from it...
  const auto* e = c.Lookup(std::span(p).first(13), 8);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->tokens.size(), 13u);
  // ...a longer prompt cannot: a cold run of it never stops at 13.
  EXPECT_EQ(c.Lookup(std::span(p).first(20), 8), nullptr);
  // A boundary snapshot without logits is no use to a prompt that ends exactly there.
  ASSERT_TRUE(c.Insert(std::span(p).first(16), State(16), {}));
  EXPECT_EQ(c.Lookup(std::span(p).first(16), 8), nullptr);
  e = c.Lookup(std::span(p).first(17), 8);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->tokens.size(), 16u);
  // Once it has logits it serves the 16-token prompt whole.
  ASSERT_TRUE(c.Insert(std::span(p).first(16), State(16), std::vector<float>(5, 2.0f)));
  e = c.Lookup(std::span(p).first(16), 8);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->logits[0], 2.0f);
}

TEST(StateCache, ContainsAndRefreshKeepLogits) {
  PromptStateCache c(1 << 20);
  const auto p = Seq(8);
  ASSERT_TRUE(c.Insert(p, State(1), std::vector<float>(3, 7.0f)));
  EXPECT_TRUE(c.Contains(p, true));
  EXPECT_FALSE(c.Contains(Seq(8, 1), false));
  // Re-inserting without logits keeps the old logits; still one entry.
  ASSERT_TRUE(c.Insert(p, State(2), {}));
  EXPECT_EQ(c.entries(), 1u);
  EXPECT_TRUE(c.Contains(p, true));
  const auto* e = c.Lookup(p, 8);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->state[0], 2.0f);
  EXPECT_EQ(e->logits[0], 7.0f);
  EXPECT_EQ(c.bytes(), EntryBytes(8, 100, 3));
}

TEST(StateCache, EvictsLeastRecentlyUsedWithinBudget) {
  const int64_t one = EntryBytes(4, 100, 0);
  PromptStateCache c(3 * one);
  const auto a = Seq(4, 0), b = Seq(4, 100), d = Seq(4, 200), e = Seq(4, 300);
  ASSERT_TRUE(c.Insert(a, State(1), {}));
  ASSERT_TRUE(c.Insert(b, State(2), {}));
  ASSERT_TRUE(c.Insert(d, State(3), {}));
  EXPECT_EQ(c.bytes(), 3 * one);
  // Using a (as the 4-token boundary prefix of a longer prompt) makes b the oldest.
  ASSERT_NE(c.Lookup(Seq(6, 0), 4), nullptr);
  ASSERT_TRUE(c.Insert(e, State(4), {}));
  EXPECT_EQ(c.entries(), 3u);
  EXPECT_EQ(c.evictions(), 1);
  EXPECT_TRUE(c.Contains(a, false));
  EXPECT_FALSE(c.Contains(b, false));
  EXPECT_TRUE(c.Contains(d, false));
  EXPECT_TRUE(c.Contains(e, false));
  EXPECT_LE(c.bytes(), c.budget());
  // An entry larger than the whole budget is refused and evicts nothing.
  EXPECT_FALSE(c.Insert(Seq(4, 400), State(5, 10000), {}));
  EXPECT_EQ(c.entries(), 3u);
  c.Clear();
  EXPECT_EQ(c.entries(), 0u);
  EXPECT_EQ(c.bytes(), 0);
}

TEST(StateCache, DisabledCacheStoresNothing) {
  PromptStateCache c(0);
  EXPECT_FALSE(c.Insert(Seq(8), State(1), {}));
  EXPECT_EQ(c.Lookup(Seq(8), 8), nullptr);
  EXPECT_EQ(c.entries(), 0u);
}

TEST(StateCache, HashIsRollingAndOrderSensitive) {
  const auto p = Seq(10);
  uint64_t h = PromptStateCache::kHashSeed;
  for (int32_t id : p) h = PromptStateCache::HashStep(h, id);
  EXPECT_EQ(h, PromptStateCache::Hash(p));
  std::vector<int32_t> swapped = p;
  std::swap(swapped[2], swapped[3]);
  EXPECT_NE(PromptStateCache::Hash(p), PromptStateCache::Hash(swapped));
  EXPECT_NE(PromptStateCache::Hash(std::vector<int32_t>{0}), PromptStateCache::Hash(std::vector<int32_t>{0, 0}));
}

}  // namespace
}  // namespace mamba2::serve
