// RmsNorm and GatedRmsNorm on every backend against ref.
#include "backend/backend_test_util.h"

namespace mamba2::testing {
namespace {

// Float sums of squares against ref's double: errors near 1e-7.
constexpr double kNormTol = 1e-6;
constexpr float kEps = 1e-5f;

struct NormCase {
  int64_t rows, cols;
};

class RmsNormTest : public ::testing::TestWithParam<NormCase> {};

TEST_P(RmsNormTest, MatchesRef) {
  const auto [rows, cols] = GetParam();
  Rng rng(uint64_t(rows * 31 + cols));
  HostMat x = MakeHostMat(rows, cols, 1, 2);
  rng.Fill(x, -3.0f, 3.0f);
  const HostMat out0 = MakeHostMat(rows, cols, 2, 1);
  std::vector<float> w = rng.UniformVec(size_t(cols), 0.5f, 1.5f);

  auto run = [&](Backend& b, DeviceArena& mem) {
    Mat xd = mem.Upload(x), out = mem.Upload(out0);
    b.RmsNorm(xd, b.PrepareWeight(F32View(w, Shape{cols}), WeightKind::kVector), kEps, out);
    return std::make_pair(mem.Download(out, out0), mem.Download(xd, x));
  };
  DeviceArena ref_mem(Ref());
  const auto [want_out, want_x] = run(Ref(), ref_mem);
  for (auto& nb : BackendsUnderTest()) {
    DeviceArena mem(*nb.backend);
    const auto [out, x_after] = run(*nb.backend, mem);
    const std::string what = nb.name + " RmsNorm " + std::to_string(rows) + "x" + std::to_string(cols);
    ExpectClose(out.Values(), want_out.Values(), kNormTol * nb.tol_scale, what + " out");
    EXPECT_EQ(x_after.Values(), x.Values()) << what << ": the input changed";
    ExpectPaddingIntact(out, what + " out");
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, RmsNormTest,
                         ::testing::Values(NormCase{1, 16}, NormCase{3, 100}, NormCase{7, 768},
                                           NormCase{33, 2560}));

struct GatedCase {
  int64_t rows, cols, n_groups;
};

class GatedRmsNormTest : public ::testing::TestWithParam<GatedCase> {};

TEST_P(GatedRmsNormTest, MatchesRef) {
  const auto [rows, cols, n_groups] = GetParam();
  Rng rng(uint64_t(rows * 17 + cols * 3 + n_groups));
  // y and z are column slices (y of the scan output, z of in_proj's output).
  HostMat y = MakeHostMat(rows, cols, 0, 3);
  rng.Fill(y, -2.0f, 2.0f);
  HostMat z = MakeHostMat(rows, cols, 5, 9);
  rng.Fill(z, -4.0f, 4.0f);
  const HostMat out0 = MakeHostMat(rows, cols, 1, 1);
  std::vector<float> w = rng.UniformVec(size_t(cols), 0.5f, 1.5f);
  const int64_t group_size = cols / n_groups;

  auto run = [&](Backend& b, DeviceArena& mem) {
    Mat out = mem.Upload(out0);
    b.GatedRmsNorm(mem.Upload(y), mem.Upload(z), b.PrepareWeight(F32View(w, Shape{cols}), WeightKind::kVector),
                   group_size, kEps, out);
    return mem.Download(out, out0);
  };
  DeviceArena ref_mem(Ref());
  const HostMat want = run(Ref(), ref_mem);
  for (auto& nb : BackendsUnderTest()) {
    DeviceArena mem(*nb.backend);
    const HostMat got = run(*nb.backend, mem);
    const std::string what = nb.name + " GatedRmsNorm " + std::to_string(rows) + "x" + std::to_string(cols) +
                             " groups " + std::to_string(n_groups);
    ExpectClose(got.Values(), want.Values(), kNormTol * nb.tol_scale, what);
    ExpectPaddingIntact(got, what);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GatedRmsNormTest,
                         ::testing::Values(GatedCase{1, 64, 1}, GatedCase{5, 256, 1}, GatedCase{5, 256, 2},
                                           GatedCase{9, 256, 8}, GatedCase{4, 1000, 8}, GatedCase{20, 5120, 1}));

}  // namespace
}  // namespace mamba2::testing
