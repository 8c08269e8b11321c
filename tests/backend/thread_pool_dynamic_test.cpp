// ThreadPool::ParallelForDynamic: pieces of exactly `grain` indices (the last one shorter),
// every index once, whatever the thread count; several threads take part; nesting runs inline.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

namespace mamba2 {
namespace {

TEST(ThreadPoolDynamic, GrainSizedPiecesCoverEveryIndexOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 5, 64, 1000, 10007})
      for (int64_t grain : {1, 7, 64, 5000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::mutex mu;
        std::vector<std::pair<int64_t, int64_t>> pieces;
        pool.ParallelForDynamic(n, grain, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
          std::lock_guard<std::mutex> lock(mu);
          pieces.push_back({b, e});
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "n " << n << " index " << i;
        if (n == 0) {
          EXPECT_TRUE(pieces.empty());
          continue;
        }
        std::sort(pieces.begin(), pieces.end());
        const int64_t want = (n + grain - 1) / grain;
        // One piece, or a single thread, runs the whole range inline.
        if (want == 1 || threads == 1) {
          ASSERT_EQ(pieces.size(), 1u);
          EXPECT_EQ(pieces[0], std::make_pair(int64_t(0), n));
          continue;
        }
        ASSERT_EQ(int64_t(pieces.size()), want) << "threads " << threads << " n " << n << " grain " << grain;
        for (size_t p = 0; p < pieces.size(); ++p) {
          EXPECT_EQ(pieces[p].first, int64_t(p) * grain);
          EXPECT_EQ(pieces[p].second, std::min(n, int64_t(p + 1) * grain));
        }
      }
  }
}

TEST(ThreadPoolDynamic, SlowPiecesLeaveTheRestToTheOtherThreads) {
  ThreadPool pool(2);
  std::mutex mu;
  std::set<std::thread::id> ids;
  std::atomic<int> done{0};
  pool.ParallelForDynamic(64, 1, [&](int64_t b, int64_t) {
    // The first piece is slow; meanwhile the other thread must take the remaining ones.
    if (b == 0) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    {
      std::lock_guard<std::mutex> lock(mu);
      ids.insert(std::this_thread::get_id());
    }
    done.fetch_add(1);
  });
  EXPECT_EQ(done.load(), 64);
  EXPECT_EQ(ids.size(), 2u);
}

TEST(ThreadPoolDynamic, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  pool.ParallelForDynamic(8, 1, [&](int64_t b, int64_t e) {
    const std::thread::id outer = std::this_thread::get_id();
    pool.ParallelForDynamic(100, 10, [&](int64_t ib, int64_t ie) {
      EXPECT_EQ(std::this_thread::get_id(), outer);
      EXPECT_EQ(ib, 0);
      EXPECT_EQ(ie, 100);
      sum.fetch_add(ie - ib);
    });
    (void)b, (void)e;
  });
  EXPECT_EQ(sum.load(), 800);
}

}  // namespace
}  // namespace mamba2
