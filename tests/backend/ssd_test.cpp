// SsdPrefill (chunked on optimised backends) and SsmStep on every backend against ref's
// per-token recurrence, including the final states of all slots.
#include "backend/mixer_test_util.h"

namespace mamba2::testing {
namespace {

// Float sums over up to a chunk of rows, and a state carried over hundreds of tokens, against
// ref's double recurrence: observed at most 3.5e-7 (L = 773, Q = 256).
constexpr double kSsdTol = 1e-6;
constexpr double kStepTol = 1e-6;

class SsdTest : public ::testing::TestWithParam<ScanCase> {};

TEST_P(SsdTest, PrefillMatchesRef) {
  const ScanCase c = GetParam();
  const MixerData d = MakeMixerData(c.shape, c.n_seqs, c.seq_len,
                                    uint64_t(c.seq_len * 131 + c.chunk * 7 + c.n_seqs + c.shape.n_groups * 1000),
                                    c.strong_decay);
  const ScanResult want = RunScan(Ref(), d, true, c.chunk);
  for (auto& nb : BackendsUnderTest()) {
    const ScanResult got = RunScan(*nb.backend, d, true, c.chunk);
    const std::string what = nb.name + " SsdPrefill " + ScanCaseName(c);
    ExpectClose(got.y.Values(), want.y.Values(), kSsdTol * nb.tol_scale, what + " y");
    ExpectClose(got.ssm_state, want.ssm_state, kSsdTol * nb.tol_scale, what + " ssm_state");
    ExpectPaddingIntact(got.y, what + " y");
  }
}

std::vector<ScanCase> ScanCases() {
  // (heads, head_dim, d_state, groups): groups 1, 2, 8; head_dim 16, 64; d_state 16, 128;
  // 1 to 4 heads per group.
  const MixerShape shapes[] = {{4, 16, 16, 1}, {4, 64, 128, 2}, {8, 16, 128, 8}, {6, 64, 16, 2}, {16, 64, 128, 8}};
  std::vector<ScanCase> cases;
  for (int64_t q : {8, 16, 64, 256})
    for (int64_t len : {int64_t(1), q - 1, q, q + 1, 3 * q + 5})
      for (size_t si = 0; si < std::size(shapes); ++si)
        for (int64_t n_seqs : {1, 3}) {
          // Keep the double-precision oracle affordable: the widest shape with 3 sequences only
          // for the shorter lengths.
          if (si == 4 && n_seqs == 3 && len > 200) continue;
          cases.push_back({shapes[si], n_seqs, len, q});
        }
  for (int64_t q : {16, 256})
    for (const auto& shape : {shapes[1], shapes[2]}) cases.push_back({shape, 3, 3 * q + 5, q, true});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, SsdTest, ::testing::ValuesIn(ScanCases()),
                         [](const auto& info) { return ScanCaseName(info.param); });

class SsmStepTest : public ::testing::TestWithParam<std::tuple<MixerShape, int64_t, bool>> {};

TEST_P(SsmStepTest, MatchesRef) {
  const auto [shape, n_seqs, strong] = GetParam();
  const MixerData d = MakeMixerData(shape, n_seqs, 1, uint64_t(77 + n_seqs + shape.d_state), strong);
  const ScanResult want = RunScan(Ref(), d, false, 0);
  for (auto& nb : BackendsUnderTest()) {
    const ScanResult got = RunScan(*nb.backend, d, false, 0);
    const std::string what = nb.name + " SsmStep " + shape.str() + " seqs " + std::to_string(n_seqs) +
                             (strong ? " strong" : "");
    ExpectClose(got.y.Values(), want.y.Values(), kStepTol * nb.tol_scale, what + " y");
    ExpectClose(got.ssm_state, want.ssm_state, kStepTol * nb.tol_scale, what + " ssm_state");
    ExpectPaddingIntact(got.y, what + " y");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SsmStepTest,
    ::testing::Combine(::testing::Values(MixerShape{4, 16, 16, 1}, MixerShape{4, 64, 128, 2},
                                         MixerShape{8, 16, 128, 8}, MixerShape{6, 64, 16, 2}),
                       ::testing::Values(int64_t(1), int64_t(3)), ::testing::Bool()),
    [](const auto& info) {
      return std::get<0>(info.param).str() + "_s" + std::to_string(std::get<1>(info.param)) +
             (std::get<2>(info.param) ? "_strong" : "");
    });

}  // namespace
}  // namespace mamba2::testing
