// bf16 mode keeps the mixer's intermediates (in_proj's output, the conv output, y) in bf16. The
// storage must change nothing but one rounding where each is written: every op run on bf16 views
// gives the bits of the same op on fp32 views holding the same (bf16-representable) values, its
// bf16 outputs equal to the fp32 outputs rounded to nearest even. Checked on the emulated backend
// (always) and the real one (skipped without a GPU). The one exception is cuBLAS writing a bf16
// product: its fp32 sums may come from another kernel than the fp32-output call's, so there the
// bound is one bf16 rounding step.
#include <cmath>
#include <string>
#include <tuple>

#include "backend/mixer_test_util.h"
#include "cuda/emu_backend.h"
#if defined(MAMBA2_HAVE_CUDA)
#include "backend/cuda/cuda_backend.h"
#include "cuda/cuda_test_options.h"
#endif

namespace mamba2::testing {
namespace {

// The bf16-mode backend: "emu" always, "cuda" when a device is present (else null).
Backend* Bf16Backend(const std::string& target) {
  static std::unique_ptr<Backend> emu = MakeEmuBackend(DType::BF16);
  if (target == "emu") return emu.get();
#if defined(MAMBA2_HAVE_CUDA)
  static std::unique_ptr<Backend> cuda = [] {
    CudaBackendOptions o = TestCudaOptions();
    o.matmul = CudaMatMul::kBf16;
    o.bf16_intermediates = true;
    return MakeCudaBackend(o);
  }();
  return cuda.get();
#else
  return nullptr;
#endif
}

#define BF16_TARGET_OR_SKIP(var)                       \
  Backend* var = Bf16Backend(GetParam());              \
  if (!var) GTEST_SKIP() << "no CUDA device";          \
  ASSERT_EQ(var->IntermediateDType(), DType::BF16) << "bf16 mode must keep the intermediates in bf16"

float RoundBf16(float v) { return BF16ToF32(F32ToBF16(v)); }

std::vector<float> RoundedBf16(std::vector<float> v) {
  for (float& e : v) e = RoundBf16(e);
  return v;
}

HostMat RoundedBf16(HostMat m) {
  m.buf = RoundedBf16(std::move(m.buf));
  return m;
}

// The data with its intermediates (zxbcdt, conv_out) already bf16 values, so that the fp32 run
// sees exactly what the bf16 run reads.
MixerData RoundedIntermediates(MixerData d) {
  d.zxbcdt = RoundedBf16(std::move(d.zxbcdt));
  d.conv_out = RoundedBf16(std::move(d.conv_out));
  return d;
}

class Bf16Intermediates : public ::testing::TestWithParam<std::string> {};

TEST_P(Bf16Intermediates, ConvIsTheFp32ConvRounded) {
  BF16_TARGET_OR_SKIP(b);
  struct Case {
    MixerShape shape;
    int64_t n_seqs, seq_len;
    bool in_place;
  };
  const Case cases[] = {{{4, 16, 16, 1}, 1, 1, false},  {{4, 16, 16, 1}, 3, 1, true},   {{4, 16, 16, 1}, 3, 33, false},
                        {{5, 16, 16, 1, 3}, 1, 70, false}, {{4, 16, 16, 1}, 3, 40, true}};
  for (const Case& c : cases) {
    const MixerData d = RoundedIntermediates(MakeMixerData(c.shape, c.n_seqs, c.seq_len, 7 + uint64_t(c.seq_len)));
    for (bool prefill : {true, false}) {
      if (!prefill && c.seq_len != 1) continue;
      const std::string what = GetParam() + (prefill ? " ConvPrefill " : " ConvStep ") + c.shape.str() + " s" +
                               std::to_string(c.n_seqs) + " L" + std::to_string(c.seq_len) +
                               (c.in_place ? " in place" : "");
      const ConvResult f32 = RunConv(*b, d, prefill, true, c.in_place, DType::F32);
      const ConvResult bf16 = RunConv(*b, d, prefill, true, c.in_place, DType::BF16);
      // Whole buffers, padding included (the sentinel rounds alike on both sides).
      EXPECT_EQ(bf16.out_mat.buf, RoundedBf16(f32.out_mat.buf)) << what << ": out";
      EXPECT_EQ(bf16.conv_state, f32.conv_state) << what << ": conv state";
    }
  }
}

TEST_P(Bf16Intermediates, ScanIsTheFp32ScanRounded) {
  BF16_TARGET_OR_SKIP(b);
  struct Case {
    MixerShape shape;
    int64_t n_seqs, seq_len, chunk;
    bool strong_decay;
  };
  const Case cases[] = {{{4, 16, 16, 1}, 2, 37, 16, false},
                        {{4, 16, 32, 2}, 3, 1, 16, false},
                        {{4, 16, 16, 2}, 1, 70, 32, true},
                        {{2, 64, 128, 1}, 1, 40, 32, false}};
  for (const Case& c : cases) {
    const MixerData d = RoundedIntermediates(
        MakeMixerData(c.shape, c.n_seqs, c.seq_len, 70 + uint64_t(c.seq_len * 3 + c.n_seqs), c.strong_decay));
    for (bool prefill : {true, false}) {
      if (!prefill && c.seq_len != 1) continue;
      const std::string what = GetParam() + (prefill ? " SsdPrefill " : " SsmStep ") + c.shape.str() + " s" +
                               std::to_string(c.n_seqs) + " L" + std::to_string(c.seq_len);
      const ScanResult f32 = RunScan(*b, d, prefill, c.chunk, DType::F32);
      const ScanResult bf16 = RunScan(*b, d, prefill, c.chunk, DType::BF16);
      EXPECT_EQ(bf16.y.buf, RoundedBf16(f32.y.buf)) << what << ": y";
      EXPECT_EQ(bf16.ssm_state, f32.ssm_state) << what << ": ssm state";
    }
  }
}

// y and z in bf16, the norm's output fp32: the same bits; also where the norm writes the packed
// operand of the out_proj GEMM (rows 9) instead of rows.
TEST_P(Bf16Intermediates, GatedNormReadsThemAsStored) {
  BF16_TARGET_OR_SKIP(b);
  const int64_t cols = 64, group = 32, N = 24;
  for (int64_t rows : {3, 9}) {
    Rng rng{uint64_t(rows)};
    HostMat y = MakeHostMat(rows, cols, 1, 2), z = MakeHostMat(rows, cols, 0, 3);
    rng.Fill(y, -2.0f, 2.0f);
    rng.Fill(z, -2.0f, 2.0f);
    y = RoundedBf16(y);
    z = RoundedBf16(z);
    const std::vector<float> norm_w = rng.UniformVec(size_t(cols), 0.5f, 1.5f);
    StoredTensor w = Store(rng.UniformVec(size_t(N * cols), -0.2f, 0.2f), DType::F32, Shape{N, cols});
    auto run = [&](DType inter) {
      DeviceArena mem(*b);
      const Mat yd = mem.Upload(y, inter), zd = mem.Upload(z, inter);
      const TensorView nw =
          b->PrepareWeight(TensorView{const_cast<float*>(norm_w.data()), DType::F32, Shape{cols}}, WeightKind::kVector);
      const HostMat gated0 = MakeHostMat(rows, cols, 0, 1), out0 = MakeHostMat(rows, N, 0, 2);
      const Mat gated = mem.Upload(gated0), out = mem.Upload(out0);
      b->GatedRmsNorm(yd, zd, nw, group, 1e-5f, gated);
      const std::vector<float> g = mem.Download(gated, gated0).buf;
      b->GatedRmsNormMatMulAdd(yd, zd, nw, group, 1e-5f, gated, b->PrepareWeight(w.view, WeightKind::kMatrix), out);
      return std::make_pair(g, mem.Download(out, out0).buf);
    };
    const auto f32 = run(DType::F32), bf16 = run(DType::BF16);
    EXPECT_EQ(bf16.first, f32.first) << GetParam() << " rows " << rows << ": GatedRmsNorm";
    EXPECT_EQ(bf16.second, f32.second) << GetParam() << " rows " << rows << ": GatedRmsNormMatMulAdd";
  }
}

// in_proj writing bf16: the decode GEMV (rows 3) rounds its fp32 sums, bit for bit; the GEMM
// (rows 9, 20) too on the emulator, within one bf16 step on cuBLAS. Also through
// RmsNormMatMul, the op the model's prefill calls.
TEST_P(Bf16Intermediates, ProductsWriteTheirSumsRounded) {
  BF16_TARGET_OR_SKIP(b);
  const bool exact_gemm = GetParam() == "emu";
  const int64_t K = 64, N = 40;
  for (int64_t rows : {3, 9, 20})
    for (bool with_norm : {false, true}) {
      // x: 16-byte aligned rows, so that rows 3 take the GEMV
      const NormThenProduct in = RandomNormThenProduct(rows, K, N, 4, 1.0f, uint64_t(rows * 2 + with_norm));
      auto run = [&](DType inter) {
        DeviceArena mem(*b);
        const Mat xd = mem.Upload(in.a);
        const HostMat out0 = MakeHostMat(rows, N, 1, 3), normed0 = MakeHostMat(rows, K, 0, 0);
        const Mat out = mem.Upload(out0, inter), normed = mem.Upload(normed0);
        const TensorView wd = b->PrepareWeight(in.w.view, WeightKind::kMatrix);
        if (with_norm) {
          const TensorView nw = b->PrepareWeight(
              TensorView{const_cast<float*>(in.norm_w.data()), DType::F32, Shape{K}}, WeightKind::kVector);
          b->RmsNormMatMul(xd, nw, 1e-5f, normed, wd, out);
        } else {
          b->MatMul(xd, wd, out);
        }
        return mem.Download(out, out0).buf;
      };
      const std::vector<float> want = RoundedBf16(run(DType::F32)), got = run(DType::BF16);
      const std::string what =
          GetParam() + " rows " + std::to_string(rows) + (with_norm ? " RmsNormMatMul" : " MatMul");
      if (rows <= 8 || exact_gemm) {
        EXPECT_EQ(got, want) << what;
        continue;
      }
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        const float step = std::ldexp(1.0f, std::ilogb(std::max(std::fabs(want[i]), 1e-30f)) - 7);
        ASSERT_LE(std::fabs(got[i] - want[i]), step) << what << ": element " << i;
      }
    }
}

// Decode's in_proj with the conv in the GEMV's epilogue, writing bf16: the conv reads the
// product as stored, so the fused op gives the bits of MatMul then ConvStep on bf16 views.
TEST_P(Bf16Intermediates, FusedConvStepReadsTheStoredProduct) {
  BF16_TARGET_OR_SKIP(b);
  const MixerShape shape{4, 16, 16, 1};
  for (int64_t n_seqs : {int64_t(1), int64_t(3)}) {
    const StepProduct t = RandomStepProduct(shape, n_seqs, 72, 1.0f, 90 + uint64_t(n_seqs));
    const MixerData& d = t.d;
    auto run = [&](bool fused) {
      MixerOnDevice dev(*b, d, DType::BF16);
      const Mat xd = dev.mem.Upload(t.x);
      const TensorView wd = b->PrepareWeight(t.w.view, WeightKind::kMatrix);
      if (fused) {
        b->MatMulConvStep(xd, wd, dev.zxbcdt, d.xbc_col(), dev.slots, d.dims, dev.conv_state, dev.conv_w, dev.conv_b,
                          dev.conv_out);
      } else {
        b->MatMul(xd, wd, dev.zxbcdt);
        b->ConvStep(dev.xbc, dev.slots, d.dims, dev.conv_state, dev.conv_w, dev.conv_b, dev.conv_out);
      }
      return DownloadStep(dev, d);
    };
    ExpectSameStep(run(true), run(false), GetParam() + " rows " + std::to_string(n_seqs));
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, Bf16Intermediates, ::testing::Values(std::string("cuda"), std::string("emu")),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace mamba2::testing
