// MayOverlap (src/backend/cuda/views.h) against brute force over the elements of both views:
// it may answer "overlap" for disjoint views only when their lds differ, never "disjoint" for
// views that share an element.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <vector>

#include "backend/cuda/views.h"

namespace mamba2 {
namespace {

bool BruteOverlap(const Mat& a, const Mat& b) {
  std::set<const float*> cells;
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t c = 0; c < a.cols; ++c) cells.insert(a.data + r * a.ld + c);
  for (int64_t r = 0; r < b.rows; ++r)
    for (int64_t c = 0; c < b.cols; ++c)
      if (cells.count(b.data + r * b.ld + c)) return true;
  return false;
}

TEST(CudaViews, ModelSlicesAreDisjointAndAliasesOverlap) {
  std::vector<float> buf(10 * 50);
  const Mat zxbcdt{buf.data(), 10, 50, 50};
  const Mat z = zxbcdt.Cols(0, 16), xbc = zxbcdt.Cols(16, 30), dt = zxbcdt.Cols(46, 4);
  EXPECT_FALSE(cuda::MayOverlap(z, xbc));
  EXPECT_FALSE(cuda::MayOverlap(xbc, z));
  EXPECT_FALSE(cuda::MayOverlap(xbc, dt));
  EXPECT_TRUE(cuda::MayOverlap(xbc, xbc));
  EXPECT_TRUE(cuda::MayOverlap(xbc, zxbcdt.Cols(40, 8)));
  EXPECT_TRUE(cuda::SameView(xbc, zxbcdt.Cols(16, 30)));
  EXPECT_FALSE(cuda::MayOverlap(zxbcdt.Rows(0, 5), zxbcdt.Rows(5, 5)));
  std::vector<float> other(100);
  EXPECT_FALSE(cuda::MayOverlap(xbc, Mat{other.data(), 10, 10, 10}));
}

TEST(CudaViews, NeverMissesASharedElement) {
  std::vector<float> buf(4000);
  std::mt19937 rng(7);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int exact_checked = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    auto view = [&](int64_t ld) {
      const int64_t cols = pick(1, int(ld)), rows = pick(1, 6);
      const int64_t off = pick(0, int(buf.size() - size_t((rows - 1) * ld + cols)));
      return Mat{buf.data() + off, rows, cols, ld};
    };
    const int64_t ld_a = pick(1, 40);
    const int64_t ld_b = pick(0, 2) == 0 ? pick(1, 40) : ld_a;
    const Mat a = view(ld_a), b = view(ld_b);
    const bool brute = BruteOverlap(a, b);
    const bool got = cuda::MayOverlap(a, b);
    if (brute) {
      ASSERT_TRUE(got) << "missed an overlap, iteration " << iter;
    }
    if (a.ld == b.ld) {
      ASSERT_EQ(got, brute) << "same-ld views judged wrongly, iteration " << iter;
      ++exact_checked;
    }
  }
  EXPECT_GT(exact_checked, 1000);
}

}  // namespace
}  // namespace mamba2
