// The thread pool under the cpu backend: every index covered exactly once, pieces contiguous
// and balanced, nesting and concurrent callers safe.
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

TEST(ThreadPoolTest, CoversEveryIndexOnceInBalancedContiguousPieces) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.n_threads(), threads);
    for (int64_t n : {0, 1, 2, 3, 7, 100, 10007})
      for (int64_t min_chunk : {1, 4, 1000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::mutex mu;
        std::vector<std::pair<int64_t, int64_t>> pieces;
        pool.ParallelFor(
            n,
            [&](int64_t b, int64_t e) {
              for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
              std::lock_guard<std::mutex> lock(mu);
              pieces.push_back({b, e});
            },
            min_chunk);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "n " << n << " index " << i;
        if (n == 0) {
          EXPECT_TRUE(pieces.empty());
          continue;
        }
        const int64_t expect_pieces = std::min<int64_t>(threads, (n + min_chunk - 1) / min_chunk);
        ASSERT_EQ(int64_t(pieces.size()), expect_pieces) << "threads " << threads << " n " << n;
        std::sort(pieces.begin(), pieces.end());
        int64_t lo = n, hi = 0;
        for (size_t k = 0; k < pieces.size(); ++k) {
          EXPECT_EQ(pieces[k].first, k == 0 ? 0 : pieces[k - 1].second);
          lo = std::min(lo, pieces[k].second - pieces[k].first);
          hi = std::max(hi, pieces[k].second - pieces[k].first);
        }
        EXPECT_LE(hi - lo, 1) << "pieces differ in size by more than one";
      }
  }
}

TEST(ThreadPoolTest, ManyBackToBackJobs) {
  ThreadPool pool(3);
  std::vector<int64_t> data(1000);
  for (int rep = 0; rep < 1000; ++rep)
    pool.ParallelFor(int64_t(data.size()), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) data[size_t(i)] += i;
    });
  for (size_t i = 0; i < data.size(); ++i) ASSERT_EQ(data[i], int64_t(i) * 1000);
}

TEST(ThreadPoolTest, NestedLoopsRunInline) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(64 * 64);
  pool.ParallelFor(64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      EXPECT_TRUE(ThreadPool::InJob());
      pool.ParallelFor(64, [&](int64_t b2, int64_t e2) {
        for (int64_t j = b2; j < e2; ++j) hits[size_t(i * 64 + j)].fetch_add(1);
      });
    }
  });
  EXPECT_FALSE(ThreadPool::InJob());
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
}

TEST(ThreadPoolTest, RunOnEachThreadVisitsEveryThreadOnce) {
  ThreadPool pool(4);
  std::mutex mu;
  std::vector<int> indices;
  std::set<std::thread::id> ids;
  for (int rep = 0; rep < 3; ++rep) {
    indices.clear();
    ids.clear();
    pool.RunOnEachThread([&](int t) {
      std::lock_guard<std::mutex> lock(mu);
      indices.push_back(t);
      ids.insert(std::this_thread::get_id());
    });
    std::sort(indices.begin(), indices.end());
    EXPECT_EQ(indices, (std::vector<int>{0, 1, 2, 3}));
    EXPECT_EQ(ids.size(), 4u);
    EXPECT_TRUE(ids.count(std::this_thread::get_id()));  // index 0 is the caller
  }
}

TEST(ThreadPoolTest, ConcurrentCallersShareThePool) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  auto caller = [&] {
    for (int rep = 0; rep < 500; ++rep)
      pool.ParallelFor(100, [&](int64_t b, int64_t e) { total.fetch_add(e - b); });
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(total.load(), 2 * 500 * 100);
}

TEST(ThreadPoolTest, DefaultsToHardwareConcurrency) {
  ThreadPool pool(0);
  EXPECT_GE(pool.n_threads(), 1);
  if (std::thread::hardware_concurrency() > 0) {
    EXPECT_EQ(pool.n_threads(), int(std::thread::hardware_concurrency()));
  }
}

}  // namespace
}  // namespace mamba2
