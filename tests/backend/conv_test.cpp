// ConvPrefill and ConvStep on every backend against ref, including the updated conv states of
// all slots (used and unused).
#include "backend/mixer_test_util.h"

namespace mamba2::testing {
namespace {

// d_conv products + bias in float and a float SiLU against ref's double: errors near 1e-7.
constexpr double kConvTol = 1e-6;

struct ConvCase {
  MixerShape shape;
  int64_t n_seqs, seq_len;
  bool bias = true;
  bool in_place = false;  // out aliases the input slice
};

std::string CaseName(const ConvCase& c) {
  return c.shape.str() + "_s" + std::to_string(c.n_seqs) + "_L" + std::to_string(c.seq_len) +
         (c.bias ? "" : "_nobias") + (c.in_place ? "_inplace" : "");
}

class ConvTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvTest, PrefillMatchesRef) {
  const ConvCase c = GetParam();
  const MixerData d = MakeMixerData(c.shape, c.n_seqs, c.seq_len, 1000 + uint64_t(c.seq_len * 7 + c.n_seqs));
  const ConvResult want = RunConv(Ref(), d, true, c.bias, false);
  for (auto& nb : BackendsUnderTest()) {
    const ConvResult got = RunConv(*nb.backend, d, true, c.bias, c.in_place);
    const std::string what = nb.name + " ConvPrefill " + CaseName(c);
    ExpectClose(got.out, want.out, kConvTol * nb.tol_scale, what + " out");
    ExpectClose(got.conv_state, want.conv_state, kConvTol * nb.tol_scale, what + " conv_state");
    if (!c.in_place) ExpectPaddingIntact(got.out_mat, what + " out");
  }
}

std::vector<ConvCase> ConvCases() {
  std::vector<ConvCase> cases;
  const MixerShape shapes[] = {{4, 16, 16, 1}, {4, 64, 128, 2}, {8, 16, 128, 8}, {3, 16, 16, 1, 2}};
  for (const auto& shape : shapes)
    for (int64_t n_seqs : {1, 3})
      for (int64_t len : {1, 2, 3, 4, 5, 17, 64}) cases.push_back({shape, n_seqs, len});
  cases.push_back({shapes[0], 3, 1, false});
  cases.push_back({shapes[1], 3, 9, false});
  cases.push_back({shapes[1], 3, 1, true, true});
  cases.push_back({shapes[1], 3, 2, true, true});
  cases.push_back({shapes[2], 1, 37, true, true});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvTest, ::testing::ValuesIn(ConvCases()),
                         [](const auto& info) { return CaseName(info.param); });

// One token for each of n_seqs sequences.
class ConvStepTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvStepTest, MatchesRef) {
  const ConvCase c = GetParam();
  const MixerData d = MakeMixerData(c.shape, c.n_seqs, 1, 2000 + uint64_t(c.n_seqs));
  const ConvResult want = RunConv(Ref(), d, false, c.bias, false);
  for (auto& nb : BackendsUnderTest()) {
    const ConvResult got = RunConv(*nb.backend, d, false, c.bias, c.in_place);
    const std::string what = nb.name + " ConvStep " + CaseName(c);
    ExpectClose(got.out, want.out, kConvTol * nb.tol_scale, what + " out");
    ExpectClose(got.conv_state, want.conv_state, kConvTol * nb.tol_scale, what + " conv_state");
    if (!c.in_place) ExpectPaddingIntact(got.out_mat, what + " out");
  }
}

std::vector<ConvCase> ConvStepCases() {
  std::vector<ConvCase> cases;
  for (const auto& shape : {MixerShape{4, 16, 16, 1}, MixerShape{4, 64, 128, 2}, MixerShape{8, 16, 128, 8},
                            MixerShape{3, 16, 16, 1, 2}})
    for (int64_t n_seqs : {1, 3, 4}) cases.push_back({shape, n_seqs, 1});
  cases.push_back({MixerShape{4, 16, 16, 1}, 3, 1, false});
  cases.push_back({MixerShape{4, 64, 128, 2}, 3, 1, true, true});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvStepTest, ::testing::ValuesIn(ConvStepCases()),
                         [](const auto& info) { return CaseName(info.param); });

}  // namespace
}  // namespace mamba2::testing
