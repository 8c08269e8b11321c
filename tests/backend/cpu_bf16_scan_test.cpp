// The cpu backend's chunked scan in bf16 mode: its products take bf16 operands (x, B, C, the
// incoming state, the decay-masked coefficients, the weighted x) with fp32 accumulation, against
// ref's double recurrence. Chunk lengths that are not multiples of the 16-row padding, last
// chunks of a few rows, several sequences and groups, strong decays.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_dnnl.h"
#include "backend/mixer_test_util.h"

namespace mamba2::testing {
namespace {

// Relative L2 of y and of the final states; bf16 operands carry 2^-9 relative rounding each.
// Measured here: y 1.2e-3 to 2.8e-3, states 4.3e-5 to 1.3e-3 (the emulated CUDA tensor-core scan:
// 2.9e-3, bound 1e-2).
constexpr double kBf16ScanTol = 1e-2;
// Below this the bf16 products were not used (fp32 products give ~1e-7).
constexpr double kRoundedAtLeast = 1e-4;

class CpuBf16Scan : public ::testing::TestWithParam<ScanCase> {};

TEST_P(CpuBf16Scan, CloseToRefByBf16Rounding) {
  if (!cpu::HaveBf16Gemm()) GTEST_SKIP() << "oneDNN has no bf16 matmul on this CPU: bf16 mode scans in fp32";
  const ScanCase c = GetParam();
  const MixerData d = MakeMixerData(c.shape, c.n_seqs, c.seq_len, uint64_t(c.seq_len * 17 + c.chunk), c.strong_decay);
  const ScanResult want = RunScan(Ref(), d, true, c.chunk);
  for (int threads : {1, 3}) {
    CpuBackendOptions o;
    o.n_threads = threads;
    o.matmul = CpuMatMul::kBf16;
    auto cpu = MakeCpuBackend(o);
    const ScanResult got = RunScan(*cpu, d, true, c.chunk);
    const double ey = RelL2(got.y.Values(), want.y.Values());
    const double eh = RelL2(got.ssm_state, want.ssm_state);
    const std::string what = "cpu" + std::to_string(threads) + "-bf16 " + ScanCaseName(c);
    EXPECT_LT(ey, kBf16ScanTol) << what << " y";
    EXPECT_LT(eh, kBf16ScanTol) << what << " state";
    EXPECT_GT(ey, kRoundedAtLeast) << what << " y: no bf16 rounding seen";
    ExpectPaddingIntact(got.y, what + " y");
    std::printf("%s: y %.2e, state %.2e\n", what.c_str(), ey, eh);
  }
}

std::vector<ScanCase> Cases() {
  // (heads, head_dim, d_state, groups)
  const MixerShape g1{4, 64, 128, 1}, g2{4, 16, 32, 2}, g8{8, 16, 128, 8};
  return {
      {g1, 1, 300, 256, false},  // a full chunk, then 44 rows (padded to 48)
      {g1, 2, 70, 64, true},     // last chunk of 6 rows
      {g2, 3, 100, 40, false},   // chunk not a multiple of 16
      {g8, 1, 129, 128, true},   // a last chunk of one row
      {g2, 1, 5, 256, false},    // shorter than one chunk
  };
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuBf16Scan, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return ScanCaseName(info.param); });

}  // namespace
}  // namespace mamba2::testing
