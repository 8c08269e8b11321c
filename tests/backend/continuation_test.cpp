// State carry-over on each optimised backend by itself: prefill(L) must equal prefill(K) followed
// by prefill(L-K), and prefill(K) followed by L-K decode steps, for the conv and for the scan
// (outputs of every position and the final states).
#include "backend/mixer_test_util.h"

namespace mamba2::testing {
namespace {

// Different chunk boundaries and step-vs-chunked association; float rounding only.
constexpr double kContinuationTol = 1e-5;

struct ContinuationCase {
  MixerShape shape;
  int64_t n_seqs, seq_len, split, chunk;
  bool strong_decay = false;
};

std::string CaseName(const ContinuationCase& c) {
  return c.shape.str() + "_s" + std::to_string(c.n_seqs) + "_L" + std::to_string(c.seq_len) + "_K" +
         std::to_string(c.split) + "_Q" + std::to_string(c.chunk) + (c.strong_decay ? "_strong" : "");
}

// Appends the rows of `part` (positions t0.. of each sequence) into `whole` ([n_seqs*L, cols]).
void PlaceRows(const std::vector<float>& part, int64_t n_seqs, int64_t part_len, int64_t t0, int64_t full_len,
               int64_t cols, std::vector<float>& whole) {
  for (int64_t s = 0; s < n_seqs; ++s)
    for (int64_t t = 0; t < part_len; ++t)
      std::copy(part.begin() + (s * part_len + t) * cols, part.begin() + (s * part_len + t + 1) * cols,
                whole.begin() + (s * full_len + t0 + t) * cols);
}

class ContinuationTest : public ::testing::TestWithParam<ContinuationCase> {};

TEST_P(ContinuationTest, ConvPrefillThenPrefillOrSteps) {
  const ContinuationCase c = GetParam();
  const MixerData d = MakeMixerData(c.shape, c.n_seqs, c.seq_len, uint64_t(c.seq_len * 3 + c.split));
  const int64_t cols = d.dims.conv_dim(), L = c.seq_len, K = c.split;
  for (auto& nb : BackendsUnderTest()) {
    Backend& b = *nb.backend;
    const ConvResult full = RunConv(b, d, true, true, false);

    MixerData head = d.Positions(0, K);
    const ConvResult first = RunConv(b, head, true, true, false);
    std::vector<float> out_prefill(full.out.size()), out_steps(full.out.size());
    PlaceRows(first.out, c.n_seqs, K, 0, L, cols, out_prefill);
    PlaceRows(first.out, c.n_seqs, K, 0, L, cols, out_steps);

    MixerData tail = d.Positions(K, L);
    tail.conv_state = first.conv_state;
    const ConvResult rest = RunConv(b, tail, true, true, false);
    PlaceRows(rest.out, c.n_seqs, L - K, K, L, cols, out_prefill);

    std::vector<float> state = first.conv_state;
    for (int64_t t = K; t < L; ++t) {
      MixerData one = d.Positions(t, t + 1);
      one.conv_state = state;
      const ConvResult step = RunConv(b, one, false, true, false);
      PlaceRows(step.out, c.n_seqs, 1, t, L, cols, out_steps);
      state = step.conv_state;
    }
    const std::string what = nb.name + " Conv " + CaseName(c);
    ExpectClose(out_prefill, full.out, kContinuationTol * nb.tol_scale, what + " prefill+prefill out");
    ExpectClose(rest.conv_state, full.conv_state, kContinuationTol * nb.tol_scale, what + " prefill+prefill state");
    ExpectClose(out_steps, full.out, kContinuationTol * nb.tol_scale, what + " prefill+steps out");
    ExpectClose(state, full.conv_state, kContinuationTol * nb.tol_scale, what + " prefill+steps state");
  }
}

TEST_P(ContinuationTest, SsdPrefillThenPrefillOrSteps) {
  const ContinuationCase c = GetParam();
  const MixerData d = MakeMixerData(c.shape, c.n_seqs, c.seq_len, uint64_t(c.seq_len * 5 + c.split), c.strong_decay);
  const int64_t cols = d.dims.d_inner, L = c.seq_len, K = c.split;
  for (auto& nb : BackendsUnderTest()) {
    Backend& b = *nb.backend;
    const ScanResult full = RunScan(b, d, true, c.chunk);
    const std::vector<float> full_y = full.y.Values();

    MixerData head = d.Positions(0, K);
    const ScanResult first = RunScan(b, head, true, c.chunk);
    std::vector<float> y_prefill(full_y.size()), y_steps(full_y.size());
    PlaceRows(first.y.Values(), c.n_seqs, K, 0, L, cols, y_prefill);
    PlaceRows(first.y.Values(), c.n_seqs, K, 0, L, cols, y_steps);

    MixerData tail = d.Positions(K, L);
    tail.ssm_state = first.ssm_state;
    const ScanResult rest = RunScan(b, tail, true, c.chunk);
    PlaceRows(rest.y.Values(), c.n_seqs, L - K, K, L, cols, y_prefill);

    std::vector<float> state = first.ssm_state;
    for (int64_t t = K; t < L; ++t) {
      MixerData one = d.Positions(t, t + 1);
      one.ssm_state = state;
      const ScanResult step = RunScan(b, one, false, 0);
      PlaceRows(step.y.Values(), c.n_seqs, 1, t, L, cols, y_steps);
      state = step.ssm_state;
    }
    const std::string what = nb.name + " Ssd " + CaseName(c);
    ExpectClose(y_prefill, full_y, kContinuationTol * nb.tol_scale, what + " prefill+prefill y");
    ExpectClose(rest.ssm_state, full.ssm_state, kContinuationTol * nb.tol_scale, what + " prefill+prefill state");
    ExpectClose(y_steps, full_y, kContinuationTol * nb.tol_scale, what + " prefill+steps y");
    ExpectClose(state, full.ssm_state, kContinuationTol * nb.tol_scale, what + " prefill+steps state");
  }
}

std::vector<ContinuationCase> ContinuationCases() {
  const MixerShape a{4, 16, 16, 1}, b{4, 64, 128, 2}, g8{8, 16, 128, 8};
  return {
      {a, 1, 20, 7, 8},     {a, 3, 20, 1, 8},      {a, 3, 33, 16, 16},  {b, 3, 40, 13, 16},
      {b, 1, 70, 64, 64},   {g8, 3, 50, 3, 16},    {g8, 3, 50, 25, 256}, {b, 3, 45, 20, 16, true},
      {a, 3, 12, 11, 256},
  };
}

INSTANTIATE_TEST_SUITE_P(Shapes, ContinuationTest, ::testing::ValuesIn(ContinuationCases()),
                         [](const auto& info) { return CaseName(info.param); });

}  // namespace
}  // namespace mamba2::testing
