// MayOverlap (src/backend/cuda/views.h) against brute force over the bytes of both views (fp32
// and bf16 ones): it may answer "overlap" for disjoint views only when their lds or element
// types differ, never "disjoint" for views that share a byte.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <vector>

#include "backend/cuda/views.h"

namespace mamba2 {
namespace {

// The bytes of a view's elements.
std::set<const char*> Bytes(const Mat& m) {
  std::set<const char*> bytes;
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c)
      for (size_t i = 0; i < DTypeSize(m.dtype); ++i) bytes.insert(static_cast<const char*>(m.at(r, c)) + i);
  return bytes;
}

bool BruteOverlap(const Mat& a, const Mat& b) {
  const std::set<const char*> in_a = Bytes(a);
  for (const char* p : Bytes(b))
    if (in_a.count(p)) return true;
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
  std::vector<float> buf(4000);  // 16000 bytes, viewed as fp32 or bf16 elements
  std::mt19937 rng(7);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int exact_checked = 0, mixed_checked = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    auto view = [&](int64_t ld, DType t) {
      const int64_t es = int64_t(DTypeSize(t)), n_elems = int64_t(buf.size() * sizeof(float)) / es;
      const int64_t cols = pick(1, int(ld)), rows = pick(1, 6);
      const int64_t off = pick(0, int(n_elems - ((rows - 1) * ld + cols)));
      return Mat{reinterpret_cast<char*>(buf.data()) + off * es, rows, cols, ld, t};
    };
    const DType t_a = pick(0, 3) == 0 ? DType::BF16 : DType::F32;
    const DType t_b = pick(0, 3) == 0 ? DType::BF16 : t_a;
    const int64_t ld_a = pick(1, 40);
    const int64_t ld_b = pick(0, 2) == 0 ? pick(1, 40) : ld_a;
    const Mat a = view(ld_a, t_a), b = view(ld_b, t_b);
    const bool brute = BruteOverlap(a, b);
    const bool got = cuda::MayOverlap(a, b);
    if (brute) {
      ASSERT_TRUE(got) << "missed an overlap, iteration " << iter;
    }
    if (a.ld == b.ld && a.dtype == b.dtype) {
      ASSERT_EQ(got, brute) << "same-ld views judged wrongly, iteration " << iter;
      ++exact_checked;
    }
    mixed_checked += a.dtype != b.dtype;
  }
  EXPECT_GT(exact_checked, 1000);
  EXPECT_GT(mixed_checked, 1000);
}

}  // namespace
}  // namespace mamba2
