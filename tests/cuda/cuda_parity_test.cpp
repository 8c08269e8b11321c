// Op-level parity of the CUDA backend against ref, on random inputs laid out as the model lays
// them out (column-slice views, scrambled state slots). Each check runs on two targets:
//   cuda      the real backend; skipped with "no CUDA device" when MakeCudaBackend() is null
//   cuda-emu  the same kernel text run on the host by tests/cuda/cuda_emu.h (always runs)
// Tests/backend checks the real backend too (it joins BackendsUnderTest when a GPU is present);
// this file adds the matmul modes, aliasing, memory ops, large realistic shapes and the emulator.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <tuple>

#include "backend/mixer_test_util.h"
#include "cuda/cuda_test_options.h"
#include "cuda/emu_backend.h"
#if defined(MAMBA2_HAVE_CUDA)
#include "backend/cuda/cuda_backend.h"
#endif

namespace mamba2::testing {
namespace {

// Stated bounds (relative L2 against ref's double-accumulated results).
constexpr double kFp32Tol = 1e-5;     // any op in fp32 mode
constexpr double kTf32MatMulTol = 2e-3;   // TF32 operands (10-bit mantissa), fp32 accumulation
constexpr double kBf16MatMulTol = 1e-2;   // bf16 operands, fp32 accumulation
constexpr double kFp16MatMulTol = 2e-3;   // fp16 operands (10-bit mantissa), fp32 accumulation
constexpr double kRoundedOracleTol = 1e-5;  // a 16-bit mode vs double sums of the same rounded operands
constexpr double kTf32ScanTol = 1e-3;       // the tensor-core scan of the fp16 and tf32 modes (TF32 products)
constexpr double kBf16ScanTol = 1e-2;       // the tensor-core scan of bf16 mode (bf16 products)

enum class Mode { kFp32, kTf32, kBf16, kFp16 };

// The CUDA backend in one mode, made once per process (null without a device or a CUDA build).
Backend* Cuda(Mode mode) {
  static std::map<Mode, std::unique_ptr<Backend>> made;
  auto it = made.find(mode);
  if (it != made.end()) return it->second.get();
  std::unique_ptr<Backend> b;
#if defined(MAMBA2_HAVE_CUDA)
  CudaBackendOptions o = TestCudaOptions();
  o.matmul = mode == Mode::kFp32   ? CudaMatMul::kFp32
             : mode == Mode::kTf32 ? CudaMatMul::kTf32
             : mode == Mode::kBf16 ? CudaMatMul::kBf16
                                   : CudaMatMul::kFp16;
  b = MakeCudaBackend(o);
#else
  if (mode == Mode::kFp32) b = MakeCudaBackend();
#endif
  return made.emplace(mode, std::move(b)).first->second.get();
}

// The emulated backend with fp32 GEMMs, or with the 16-bit ones of `half` (BF16 / F16).
Backend* Emu(DType half = DType::F32) {
  static std::map<DType, std::unique_ptr<Backend>> made;
  auto it = made.find(half);
  if (it == made.end()) it = made.emplace(half, MakeEmuBackend(half)).first;
  return it->second.get();
}

// "cuda" or "emu": the backend in fp32 mode, or skip.
#define TARGET_OR_SKIP(target, var)                                     \
  Backend* var = (target) == "cuda" ? Cuda(Mode::kFp32) : Emu();        \
  if (!var) GTEST_SKIP() << "no CUDA device";

std::string TargetName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

class CudaOps : public ::testing::TestWithParam<std::string> {};

// ---- memory ------------------------------------------------------------------------------------

TEST(CudaMemory, AllocZeroesCopiesRoundTripFillAndCopySlot) {
  Backend* b = Cuda(Mode::kFp32);
  if (!b) GTEST_SKIP() << "no CUDA device";
  const size_t n = (size_t(1) << 20) + 13;
  auto* p = static_cast<float*>(b->Alloc(n * sizeof(float)));
  std::vector<float> host(n, 7.0f);
  b->CopyToHost(host.data(), p, n * sizeof(float));
  EXPECT_EQ(std::count(host.begin(), host.end(), 0.0f), ptrdiff_t(n)) << "Alloc must zero-fill";
  Rng rng(5);
  const std::vector<float> values = rng.UniformVec(n, -1.0f, 1.0f);
  b->CopyToDevice(p, values.data(), n * sizeof(float));
  b->CopyToHost(host.data(), p, n * sizeof(float));
  EXPECT_EQ(host, values);
  b->Fill(p + 3, -2.5f, n - 10);
  b->CopyToHost(host.data(), p, n * sizeof(float));
  for (size_t i = 0; i < n; ++i) {
    const float want = i >= 3 && i < n - 7 ? -2.5f : values[i];
    if (host[i] != want) {
      ADD_FAILURE() << "Fill: element " << i << " is " << host[i] << ", expected " << want;
      break;
    }
  }
  // Slots of 1000 floats: copy slot 2 onto slot 5.
  b->CopyToDevice(p, values.data(), n * sizeof(float));
  b->CopySlot(p, 1000, 2, 5);
  b->CopyToHost(host.data(), p, n * sizeof(float));
  std::vector<float> want = values;
  std::copy(values.begin() + 2000, values.begin() + 3000, want.begin() + 5000);
  EXPECT_EQ(host, want);
  b->Free(p);
}

#if defined(MAMBA2_HAVE_CUDA)
// The probe `mamba2 bench --backend cuda` compares decode with: its kernels sum the buffer they
// read (it fails otherwise), and the nominal figures come from the device's attributes.
TEST(CudaMemory, ReadBandwidthProbeSumsItsBuffer) {
  if (!Cuda(Mode::kFp32)) GTEST_SKIP() << "no CUDA device";
  Result<CudaMemoryBandwidth> bw = MeasureCudaReadBandwidth(0, size_t(1) << 20, 2);
  ASSERT_TRUE(bw.ok()) << bw.status().message();
  EXPECT_GT(bw->read_bytes_per_s, 0.0);
  EXPECT_GT(bw->nominal_bytes_per_s, 0.0);
  EXPECT_FALSE(bw->device.empty());
  std::printf("read bandwidth probe on %s: %.1f GB/s over 1 MiB (nominal %.0f GB/s)\n", bw->device.c_str(),
              bw->read_bytes_per_s / 1e9, bw->nominal_bytes_per_s / 1e9);
}
#endif

TEST(CudaMemory, FactoryWithoutDeviceIsNullAndQuiet) {
  // On a machine without a GPU this is the whole test: the factory returned null (above) and
  // printed nothing; with a GPU it names itself.
  std::unique_ptr<Backend> b = MakeCudaBackend();
  if (!b) GTEST_SKIP() << "no CUDA device";
  EXPECT_EQ(b->name().substr(0, 4), "cuda");
}

// ---- embedding and norms ---------------------------------------------------------------------------

TEST_P(CudaOps, EmbedEveryTableDtype) {
  TARGET_OR_SKIP(GetParam(), b);
  Rng rng(42);
  const int64_t vocab = 300, d = 80;
  std::vector<float> values(size_t(vocab * d));
  for (auto& e : values) e = rng.Normal(0.0f, 0.5f);
  const std::vector<int32_t> ids = {0, 299, 17, 17, 150, 3, 298, 1};
  const int64_t n = int64_t(ids.size());
  const HostMat out0 = MakeHostMat(n, d, 1, 3);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    StoredTensor table = Store(values, dtype, Shape{vocab, d});
    auto run = [&](Backend& be) {
      DeviceArena mem(be);
      Mat out = mem.Upload(out0);
      be.Embed(mem.Upload(ids), n, be.PrepareWeight(table.view, WeightKind::kMatrix), out);
      return mem.Download(out, out0);
    };
    const HostMat want = run(Ref());
    const HostMat got = run(*b);
    // A lookup converts exactly: no tolerance.
    EXPECT_EQ(got.Values(), want.Values()) << GetParam() << " Embed " << DTypeName(dtype);
    ExpectPaddingIntact(got, GetParam() + " Embed");
  }
}

TEST_P(CudaOps, RmsNormIncludingOutOverX) {
  TARGET_OR_SKIP(GetParam(), b);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 64}, {5, 768}, {33, 2560}})
    for (bool aliased : {false, true}) {
      Rng rng(uint64_t(rows * 7 + cols + aliased));
      HostMat x = MakeHostMat(rows, cols, 0, 4);
      rng.Fill(x, -3.0f, 3.0f);
      const HostMat out0 = MakeHostMat(rows, cols, 0, 4);
      std::vector<float> w = rng.UniformVec(size_t(cols), 0.5f, 1.5f);
      auto run = [&](Backend& be, bool alias) {
        DeviceArena mem(be);
        Mat xd = mem.Upload(x);
        Mat out = alias ? xd : mem.Upload(out0);
        be.RmsNorm(xd, be.PrepareWeight(F32View(w, Shape{cols}), WeightKind::kVector), 1e-5f, out);
        return mem.Download(out, alias ? x : out0).Values();
      };
      const std::string what = GetParam() + " RmsNorm " + std::to_string(rows) + "x" + std::to_string(cols) +
                               (aliased ? " out=x" : "");
      ExpectClose(run(*b, aliased), run(Ref(), false), kFp32Tol, what);
    }
}

TEST_P(CudaOps, GatedRmsNormGroupsAndOutOverY) {
  TARGET_OR_SKIP(GetParam(), b);
  for (auto [rows, cols, groups] : {std::tuple<int64_t, int64_t, int64_t>{1, 128, 1}, {4, 1536, 1}, {3, 512, 8},
                                    {17, 5120, 1}})
    for (bool aliased : {false, true}) {
      Rng rng(uint64_t(rows + cols + groups + aliased));
      HostMat y = MakeHostMat(rows, cols, 0, 0);
      rng.Fill(y, -2.0f, 2.0f);
      HostMat z = MakeHostMat(rows, cols, 5, 9);  // a slice of a wider in_proj output
      rng.Fill(z, -3.0f, 3.0f);
      const HostMat out0 = MakeHostMat(rows, cols, 0, 0);
      std::vector<float> w = rng.UniformVec(size_t(cols), 0.5f, 1.5f);
      auto run = [&](Backend& be, bool alias) {
        DeviceArena mem(be);
        Mat yd = mem.Upload(y);
        Mat out = alias ? yd : mem.Upload(out0);
        be.GatedRmsNorm(yd, mem.Upload(z), be.PrepareWeight(F32View(w, Shape{cols}), WeightKind::kVector),
                        cols / groups, 1e-5f, out);
        return mem.Download(out, out0).Values();
      };
      ExpectClose(run(*b, aliased), run(Ref(), false), kFp32Tol,
                  GetParam() + " GatedRmsNorm " + std::to_string(rows) + "x" + std::to_string(cols) + " g" +
                      std::to_string(groups) + (aliased ? " out=y" : ""));
    }
}

// ---- matmul in each mode ---------------------------------------------------------------------------

struct MatMulRun {
  std::vector<float> out;
  HostMat out_mat;
};

MatMulRun RunMatMul(Backend& be, const HostMat& x, const StoredTensor& w, const HostMat& out0) {
  DeviceArena mem(be);
  Mat out = mem.Upload(out0);
  be.MatMul(mem.Upload(x), be.PrepareWeight(w.view, WeightKind::kMatrix), out);
  MatMulRun r;
  r.out_mat = mem.Download(out, out0);
  r.out = r.out_mat.Values();
  return r;
}

// out = x w^T with both operands rounded to `half` (BF16 or F16) first, summed in double: what
// that 16-bit mode computes, up to the order of its fp32 sums. round_x false: x as it is (the GEMV).
std::vector<float> RoundedOracle(const HostMat& x, const std::vector<float>& w, int64_t n, DType half,
                                 bool round_x = true) {
  auto round = [half](float v) { return half == DType::BF16 ? BF16ToF32(F32ToBF16(v)) : F16ToF32(F32ToF16(v)); };
  auto round_a = [&](float v) { return round_x ? round(v) : v; };
  std::vector<float> out;
  for (int64_t r = 0; r < x.rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < x.cols; ++k) acc += double(round_a(x.at(r, k))) * double(round(w[size_t(j * x.cols + k)]));
      out.push_back(float(acc));
    }
  return out;
}

struct MatMulShape {
  int64_t rows, k, n;
};

TEST(CudaMatMul, EveryModeAndWeightDtype) {
  if (!Cuda(Mode::kFp32)) GTEST_SKIP() << "no CUDA device";
  const MatMulShape shapes[] = {{1, 2560, 300}, {3, 768, 1000}, {70, 1000, 129}, {257, 2560, 520}, {2, 16, 1}};
  for (const MatMulShape& s : shapes)
    for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
      Rng rng(uint64_t(s.rows * 31 + s.k * 7 + s.n + int(dtype)));
      HostMat x = MakeHostMat(s.rows, s.k, 3, 5);
      rng.Fill(x, -1.0f, 1.0f);
      const float bound = 1.0f / std::sqrt(float(s.k));
      StoredTensor w = Store(rng.UniformVec(size_t(s.n * s.k), -bound, bound), dtype, Shape{s.n, s.k});
      std::vector<float> w_values(size_t(s.n * s.k));
      for (size_t i = 0; i < w_values.size(); ++i) w_values[i] = LoadAsF32(w.view.data, dtype, i);
      const HostMat out0 = MakeHostMat(s.rows, s.n, 2, 7);
      const std::vector<float> want = RunMatMul(Ref(), x, w, out0).out;
      const std::string what = "MatMul rows" + std::to_string(s.rows) + " k" + std::to_string(s.k) + " n" +
                               std::to_string(s.n) + " " + DTypeName(dtype);
      const MatMulRun fp32 = RunMatMul(*Cuda(Mode::kFp32), x, w, out0);
      ExpectClose(fp32.out, want, kFp32Tol, "cuda fp32 " + what);
      ExpectPaddingIntact(fp32.out_mat, "cuda fp32 " + what);
      ExpectClose(RunMatMul(*Cuda(Mode::kTf32), x, w, out0).out, want, kTf32MatMulTol, "cuda tf32 " + what);
      const MatMulRun bf16 = RunMatMul(*Cuda(Mode::kBf16), x, w, out0);
      ExpectClose(bf16.out, want, kBf16MatMulTol, "cuda bf16 " + what);
      ExpectClose(bf16.out, RoundedOracle(x, w_values, s.n, DType::BF16), kRoundedOracleTol,
                  "cuda bf16 vs rounded oracle " + what);
      ExpectPaddingIntact(bf16.out_mat, "cuda bf16 " + what);
      const MatMulRun fp16 = RunMatMul(*Cuda(Mode::kFp16), x, w, out0);
      ExpectClose(fp16.out, want, kFp16MatMulTol, "cuda fp16 " + what);
      ExpectClose(fp16.out, RoundedOracle(x, w_values, s.n, DType::F16), kRoundedOracleTol,
                  "cuda fp16 vs rounded oracle " + what);
      ExpectPaddingIntact(fp16.out_mat, "cuda fp16 " + what);
    }
}

// The 16-bit paths' own kernels (weight conversion, activation packing) under the emulator.
TEST(CudaMatMul, EmulatedHalfConversionKernels) {
  const MatMulShape shapes[] = {{1, 300, 40}, {5, 77, 33}};
  for (const MatMulShape& s : shapes)
    for (DType half : {DType::BF16, DType::F16})
    for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
      Rng rng(uint64_t(s.rows + s.k + s.n + int(dtype)));
      HostMat x = MakeHostMat(s.rows, s.k, 3, 5);
      rng.Fill(x, -1.0f, 1.0f);
      StoredTensor w = Store(rng.UniformVec(size_t(s.n * s.k), -0.1f, 0.1f), dtype, Shape{s.n, s.k});
      std::vector<float> w_values(size_t(s.n * s.k));
      for (size_t i = 0; i < w_values.size(); ++i) w_values[i] = LoadAsF32(w.view.data, dtype, i);
      const HostMat out0 = MakeHostMat(s.rows, s.n, 2, 7);
      const MatMulRun got = RunMatMul(*Emu(half), x, w, out0);
      const std::string what = std::string("emu ") + DTypeName(half) + " mode, " + DTypeName(dtype) + " weights";
      ExpectClose(got.out, RoundedOracle(x, w_values, s.n, half), kRoundedOracleTol, what);
      ExpectPaddingIntact(got.out_mat, what);
    }
}

// Decode-sized products of the 16-bit modes go through gemv.cuh when the activation rows are
// 16-byte aligned (x offset 4 floats, ld a multiple of 4) and K a multiple of 8: 16-bit weights
// times the fp32 activations as they are. A misaligned view (offset 3) and 9 rows take cuBLAS (the
// plain loop under the emulator): the activations rounded to 16 bits too.
TEST(CudaMatMul, DecodeProductsOfThe16BitModes) {
  struct Case { int64_t k, n; bool device_only; };
  const Case cases[] = {{8, 5, false}, {264, 40, false}, {1032, 13, false}, {2560, 10576, true}, {5120, 2560, true}};
  for (const bool device : {false, true})
    for (DType half : {DType::BF16, DType::F16}) {
      Backend* b = device ? Cuda(half == DType::BF16 ? Mode::kBf16 : Mode::kFp16) : Emu(half);
      if (!b) continue;
      for (const Case& c : cases) {
        if (c.device_only && !device) continue;
        for (int64_t rows : {1, 2, 3, 5, 8, 9})
          for (int64_t pad_left : {4, 3}) {
            if (!device && (rows == 9 || pad_left == 3) && c.k > 300) continue;  // the plain loop is slow
            // On the fake device the kernels run in the emulator: one product of each large shape.
            if (kFakeDevice && c.device_only && (rows != 1 || pad_left != 4)) continue;
            Rng rng(uint64_t(rows * 1000 + c.k + c.n + pad_left));
            HostMat x = MakeHostMat(rows, c.k, pad_left, 4);
            rng.Fill(x, -1.0f, 1.0f);
            const float bound = 1.0f / std::sqrt(float(c.k));
            StoredTensor w = Store(rng.UniformVec(size_t(c.n * c.k), -bound, bound), DType::BF16, Shape{c.n, c.k});
            std::vector<float> w_values(size_t(c.n * c.k));
            for (size_t i = 0; i < w_values.size(); ++i) w_values[i] = LoadAsF32(w.view.data, DType::BF16, i);
            const HostMat out0 = MakeHostMat(rows, c.n, 1, 3);
            const MatMulRun got = RunMatMul(*b, x, w, out0);
            const std::string what = std::string(device ? "cuda " : "emu ") + DTypeName(half) + " rows" +
                                     std::to_string(rows) + " k" + std::to_string(c.k) + " n" + std::to_string(c.n) +
                                     " x offset " + std::to_string(pad_left);
            const bool gemv = rows <= 8 && pad_left % 4 == 0;
            ExpectClose(got.out, RoundedOracle(x, w_values, c.n, half, /*round_x=*/!gemv), kRoundedOracleTol,
                        what + (gemv ? " (GEMV)" : " (GEMM)"));
            ExpectPaddingIntact(got.out_mat, what);
          }
      }
    }
}

// ---- conv ------------------------------------------------------------------------------------------

struct ConvCase {
  MixerShape shape;
  int64_t n_seqs, seq_len;
  bool bias, in_place;
};

TEST_P(CudaOps, ConvPrefillAndStep) {
  TARGET_OR_SKIP(GetParam(), b);
  std::vector<ConvCase> cases;
  const MixerShape shapes[] = {{4, 16, 16, 1}, {8, 16, 128, 8}, {3, 16, 16, 1, 2}, {5, 16, 16, 1, 3}};
  // Lengths around the kernel's 32-step time tiles and the conv width.
  for (const auto& shape : shapes)
    for (int64_t n_seqs : {1, 3})
      for (int64_t len : {1, 2, 3, 4, 5, 31, 32, 33, 70}) cases.push_back({shape, n_seqs, len, true, false});
  cases.push_back({shapes[0], 3, 9, false, false});
  cases.push_back({shapes[0], 3, 1, false, true});
  cases.push_back({shapes[1], 3, 40, true, true});
  cases.push_back({shapes[1], 1, 2, true, true});
  for (const ConvCase& c : cases) {
    const MixerData d = MakeMixerData(c.shape, c.n_seqs, c.seq_len, 300 + uint64_t(c.seq_len * 5 + c.n_seqs));
    const std::string what = GetParam() + " " + c.shape.str() + " s" + std::to_string(c.n_seqs) + " L" +
                             std::to_string(c.seq_len) + (c.bias ? "" : " nobias") + (c.in_place ? " inplace" : "");
    const ConvResult want = RunConv(Ref(), d, true, c.bias, false);
    const ConvResult got = RunConv(*b, d, true, c.bias, c.in_place);
    ExpectClose(got.out, want.out, kFp32Tol, what + " ConvPrefill out");
    ExpectClose(got.conv_state, want.conv_state, kFp32Tol, what + " ConvPrefill state");
    if (!c.in_place) ExpectPaddingIntact(got.out_mat, what + " ConvPrefill out");
    if (c.seq_len == 1) {
      const ConvResult want_step = RunConv(Ref(), d, false, c.bias, false);
      const ConvResult got_step = RunConv(*b, d, false, c.bias, c.in_place);
      ExpectClose(got_step.out, want_step.out, kFp32Tol, what + " ConvStep out");
      ExpectClose(got_step.conv_state, want_step.conv_state, kFp32Tol, what + " ConvStep state");
    }
  }
}

// Decode's in_proj with the conv step in the GEMV's epilogue (16-bit modes) gives the very bits of
// MatMul then ConvStep on the same backend: product, conv output and conv state.
TEST(CudaMatMul, FusedConvStepEqualsTheTwoOps) {
  const MixerShape shapes[] = {{4, 16, 16, 1}, {8, 16, 128, 8}, {5, 16, 16, 1, 3}};
  for (const bool device : {false, true})
    for (DType half : {DType::BF16, DType::F16}) {
      Backend* b = device ? Cuda(half == DType::BF16 ? Mode::kBf16 : Mode::kFp16) : Emu(half);
      if (!b) continue;
      for (const MixerShape& shape : shapes)
        for (int64_t n_seqs : {int64_t(1), int64_t(3), kNumSlots}) {  // rows of distinct slots, as in a step
          if (!device && shape.d_state > 16 && n_seqs != 3) continue;  // the emulator takes one wide case
          const StepProduct t = RandomStepProduct(shape, n_seqs, 72, 1.0f, 40 + uint64_t(n_seqs));
          const MixerData& d = t.d;
          auto run = [&](bool fused) {
            MixerOnDevice dev(*b, d);
            const Mat xd = dev.mem.Upload(t.x);
            const TensorView wd = b->PrepareWeight(t.w.view, WeightKind::kMatrix);
            if (fused) {
              b->MatMulConvStep(xd, wd, dev.zxbcdt, d.xbc_col(), dev.slots, d.dims, dev.conv_state, dev.conv_w,
                                dev.conv_b, dev.conv_out);
            } else {
              b->MatMul(xd, wd, dev.zxbcdt);
              b->ConvStep(dev.xbc, dev.slots, d.dims, dev.conv_state, dev.conv_w, dev.conv_b, dev.conv_out);
            }
            return DownloadStep(dev, d);
          };
          const std::string what = std::string(device ? "cuda " : "emu ") + DTypeName(half) + " " + shape.str() +
                                   " rows " + std::to_string(n_seqs);
          ExpectSameStep(run(true), run(false), what);
        }
    }
}

// A norm (gated: GatedRmsNorm of a and b, else RmsNorm of a) into `normed` and the product after
// it (gated: added to out, as out_proj adds to the residual stream), as one backend op (fused) or
// as the two ops. Returns the product and normed as the op left it.
std::pair<std::vector<float>, std::vector<float>> NormThenProductOn(Backend& b, const NormThenProduct& in,
                                                                    const HostMat& normed0, const HostMat& out0,
                                                                    int64_t group, bool gated, bool fused) {
  const int64_t K = in.a.cols;
  DeviceArena mem(b);
  const Mat ad = mem.Upload(in.a), cd = mem.Upload(in.b);
  const Mat normed = mem.Upload(normed0), out = mem.Upload(out0);
  const TensorView nw =
      b.PrepareWeight(TensorView{const_cast<float*>(in.norm_w.data()), DType::F32, Shape{K}}, WeightKind::kVector);
  const TensorView wd = b.PrepareWeight(in.w.view, WeightKind::kMatrix);
  if (gated && fused) b.GatedRmsNormMatMulAdd(ad, cd, nw, group, 1e-5f, normed, wd, out);
  if (gated && !fused) {
    b.GatedRmsNorm(ad, cd, nw, group, 1e-5f, normed);
    b.MatMul(normed, wd, out, /*accumulate=*/true);
  }
  if (!gated && fused) b.RmsNormMatMul(ad, nw, 1e-5f, normed, wd, out);
  if (!gated && !fused) {
    b.RmsNorm(ad, nw, 1e-5f, normed);
    b.MatMul(normed, wd, out);
  }
  return {mem.Download(out, out0).buf, mem.Download(normed, normed0).buf};
}

// The fused norm-and-product ops must give the very bits of the norm op followed by MatMul.
// Where the product is the decode GEMV (normed's rows on 16-byte boundaries, rows <= 8) the norm
// runs inside the GEMV's blocks (gemv.cuh, GemvNormRows, with the norm kernels' code), and normed
// stays as it was: the proof that the fused path ran (the op leaves it unspecified). The emulated
// backend runs 3 blocks, so each walks several column groups. Elsewhere (normed's rows off those
// boundaries, or more rows) the norm writes the 16-bit GEMM's packed operand itself.
TEST(CudaMatMul, FusedNormsEqualTheTwoOps) {
  const int64_t K = 64, N = 40, group = 16;
  for (const bool device : {false, true})
    for (DType half : {DType::BF16, DType::F16}) {
      Backend* b = device ? Cuda(half == DType::BF16 ? Mode::kBf16 : Mode::kFp16) : Emu(half);
      if (!b) continue;
      for (const bool in_gemv : {true, false})
        for (int64_t rows : in_gemv ? std::vector<int64_t>{1, 3, 8} : std::vector<int64_t>{3, 9, 20})
          for (bool gated : {false, true}) {
            const NormThenProduct in = RandomNormThenProduct(rows, K, N, 4, 2.0f, uint64_t(rows * 10 + gated + 7));
            const HostMat normed0 = in_gemv ? MakeHostMat(rows, K, 4, 4) : MakeHostMat(rows, K, 1, 1);
            HostMat out0 = MakeHostMat(rows, N, 0, 2);
            Rng rng{uint64_t(rows)};
            rng.Fill(out0, -1.0f, 1.0f);  // the residual the gated product adds to
            const std::string what = std::string(device ? "cuda " : "emu ") + DTypeName(half) + " rows " +
                                     std::to_string(rows) + (gated ? " gated" : " rms") +
                                     (in_gemv ? " in the GEMV" : " packed");
            const auto fused = NormThenProductOn(*b, in, normed0, out0, group, gated, true);
            const auto apart = NormThenProductOn(*b, in, normed0, out0, group, gated, false);
            EXPECT_EQ(fused.first, apart.first) << what << ": product";
            if (in_gemv) {
              EXPECT_EQ(fused.second, normed0.buf) << what << ": normed was written: the norm ran apart";
            }
          }
      // The whole front of a decode layer: norm, in_proj and the conv step in one kernel.
      const MixerShape shape{4, 16, 16, 1};
      for (int64_t n_seqs : {int64_t(1), int64_t(3)}) {
        const StepProduct t = RandomStepProduct(shape, n_seqs, 72, 2.0f, 60 + uint64_t(n_seqs));
        const MixerData& d = t.d;
        const HostMat normed0 = MakeHostMat(n_seqs, t.K, 4, 4);
        Rng rng{uint64_t(n_seqs)};
        const std::vector<float> norm_w = rng.UniformVec(size_t(t.K), 0.5f, 1.5f);
        auto run = [&](bool fused) {
          MixerOnDevice dev(*b, d);
          const Mat xd = dev.mem.Upload(t.x), normed = dev.mem.Upload(normed0);
          const TensorView nw = b->PrepareWeight(
              TensorView{const_cast<float*>(norm_w.data()), DType::F32, Shape{t.K}}, WeightKind::kVector);
          const TensorView wd = b->PrepareWeight(t.w.view, WeightKind::kMatrix);
          if (fused) {
            b->RmsNormMatMulConvStep(xd, nw, 1e-5f, normed, wd, dev.zxbcdt, d.xbc_col(), dev.slots, d.dims,
                                     dev.conv_state, dev.conv_w, dev.conv_b, dev.conv_out);
          } else {
            b->RmsNorm(xd, nw, 1e-5f, normed);
            b->MatMulConvStep(normed, wd, dev.zxbcdt, d.xbc_col(), dev.slots, d.dims, dev.conv_state, dev.conv_w,
                              dev.conv_b, dev.conv_out);
          }
          return std::make_pair(DownloadStep(dev, d), dev.mem.Download(normed, normed0).buf);
        };
        const std::string what = std::string(device ? "cuda " : "emu ") + DTypeName(half) + " conv step rows " +
                                 std::to_string(n_seqs);
        const auto fused = run(true), apart = run(false);
        ExpectSameStep(fused.first, apart.first, what);
        EXPECT_EQ(fused.second, normed0.buf) << what << ": normed was written, so the norm ran apart";
      }
    }
}

// ---- scan ------------------------------------------------------------------------------------------

struct ScanCase {
  MixerShape shape;
  int64_t n_seqs, seq_len, chunk;
  bool strong_decay = false;
  bool emu = true;  // small enough for the emulator
};

std::string ScanName(const ScanCase& c) {
  return c.shape.str() + " s" + std::to_string(c.n_seqs) + " L" + std::to_string(c.seq_len) + " Q" +
         std::to_string(c.chunk) + (c.strong_decay ? " strong" : "");
}

std::vector<ScanCase> ScanCases() {
  std::vector<ScanCase> cases;
  const MixerShape small[] = {{4, 16, 16, 1}, {4, 64, 128, 2}, {8, 16, 128, 8}, {6, 24, 40, 3}};
  for (int64_t q : {8, 16, 64, 256})
    for (int64_t len : {int64_t(1), q - 1, q, q + 1, 3 * q + 5})
      for (size_t si = 0; si < std::size(small); ++si)
        for (int64_t n_seqs : {1, 3}) {
          if (len < 1) continue;
          // The emulator takes the smaller shapes and lengths; the device all of them.
          const bool emu = (si != 1 || len <= 64) && len * n_seqs <= 300;
          cases.push_back({small[si], n_seqs, len, q, false, emu});
        }
  for (int64_t q : {16, 256}) cases.push_back({small[2], 3, 3 * q + 5, q, true, q == 16});
  // head_dim and d_state not multiples of 8, and a chunk not of 4: the kernels' rows of 8
  // elements straddle the heads' and tiles' ends and are not 16-byte aligned (element loads).
  cases.push_back({{3, 12, 20, 1}, 2, 45, 16, false, true});
  cases.push_back({{2, 12, 20, 2}, 1, 150, 70, false, true});
  // More chunks than the state passing loads at once (8): 20 chunks of 8.
  cases.push_back({small[0], 1, 155, 8, false, true});
  // A d_state over what the decode step loads at once (128): three batches, the last partial.
  cases.push_back({{2, 16, 300, 1}, 3, 1, 16, false, true});
  // Realistic heads: 130m (24 x 64, n 128) and 2.7b (80 x 64, n 128), g 1.
  cases.push_back({{24, 64, 128, 1}, 2, 300, 256, false, false});
  cases.push_back({{80, 64, 128, 1}, 1, 260, 256, false, false});
  cases.push_back({{80, 64, 128, 1}, 4, 1, 256, false, false});
  return cases;
}

TEST_P(CudaOps, SsdPrefillAndStep) {
  TARGET_OR_SKIP(GetParam(), b);
  const bool emu = GetParam() != "cuda";
  for (const ScanCase& c : ScanCases()) {
    if (emu && !c.emu) continue;
    const MixerData d = MakeMixerData(c.shape, c.n_seqs, c.seq_len,
                                      uint64_t(c.seq_len * 131 + c.chunk * 7 + c.n_seqs + c.shape.n_groups * 1000),
                                      c.strong_decay);
    const std::string what = GetParam() + " " + ScanName(c);
    const ScanResult want = RunScan(Ref(), d, true, c.chunk);
    const ScanResult got = RunScan(*b, d, true, c.chunk);
    ExpectClose(got.y.Values(), want.y.Values(), kFp32Tol, what + " SsdPrefill y");
    ExpectClose(got.ssm_state, want.ssm_state, kFp32Tol, what + " SsdPrefill ssm_state");
    ExpectPaddingIntact(got.y, what + " SsdPrefill y");
    if (c.seq_len == 1) {
      const ScanResult want_step = RunScan(Ref(), d, false, 0);
      const ScanResult got_step = RunScan(*b, d, false, 0);
      ExpectClose(got_step.y.Values(), want_step.y.Values(), kFp32Tol, what + " SsmStep y");
      ExpectClose(got_step.ssm_state, want_step.ssm_state, kFp32Tol, what + " SsmStep ssm_state");
    }
  }
}

// dt clamped from both sides (the config's dt_limit), and y written over x.
TEST_P(CudaOps, SsdClampedDtAndYOverX) {
  TARGET_OR_SKIP(GetParam(), b);
  for (bool prefill : {true, false}) {
    const MixerShape shape{4, 16, 32, 2};
    const int64_t n_seqs = 3, len = prefill ? 37 : 1, chunk = 16;
    const MixerData d = MakeMixerData(shape, n_seqs, len, 99 + uint64_t(prefill));
    auto run = [&](Backend& be, bool y_over_x) {
      MixerOnDevice dev(be, d);
      dev.scan.dt_min = 0.01f;
      dev.scan.dt_max = 0.05f;
      const Mat y = y_over_x ? dev.scan.x : dev.y;
      if (prefill)
        be.SsdPrefill(dev.scan, n_seqs, len, dev.slots, d.dims, chunk, dev.ssm_state, y);
      else
        be.SsmStep(dev.scan, dev.slots, d.dims, dev.ssm_state, y);
      HostMat y_host = y_over_x ? d.conv_out : dev.y_host;
      if (y_over_x) y_host.cols = d.dims.d_inner;
      return std::make_pair(dev.mem.Download(y, y_host).Values(),
                            dev.mem.Download(dev.ssm_state, d.ssm_state.size()));
    };
    const auto want = run(Ref(), false);
    const auto got = run(*b, true);
    const std::string what = GetParam() + (prefill ? " SsdPrefill" : " SsmStep") + " clamped dt, y over x";
    ExpectClose(got.first, want.first, kFp32Tol, what + " y");
    ExpectClose(got.second, want.second, kFp32Tol, what + " ssm_state");
  }
}

// The 16-bit and tf32 modes run the scan's products on the tensor cores (ssd_tc.cuh): the same
// cases as SsdPrefillAndStep, against ref, with bf16 operands in bf16 mode and TF32 ones in fp16
// mode (as in tf32 mode). The state passing and the cumsum are the fp32 kernels', so the bounds
// cover the rounding of the products' operands only.
void CheckTensorCoreScan(const std::string& target, DType half) {
  const bool emu = target != "cuda";
  Backend* b = emu ? Emu(half) : Cuda(half == DType::BF16 ? Mode::kBf16 : Mode::kFp16);
  if (!b) GTEST_SKIP() << "no CUDA device";
  const std::string operands = half == DType::BF16 ? "bf16" : "tf32";
  const double tol = half == DType::BF16 ? kBf16ScanTol : kTf32ScanTol;
  double largest = 0.0;
  for (const ScanCase& c : ScanCases()) {
    // The emulator (also the fake device's) runs each warp-wide product once per lane: it takes
    // several sequences only where they are short.
    if ((emu || kFakeDevice) && (!c.emu || (c.n_seqs > 1 && c.seq_len > 20 && !c.strong_decay))) continue;
    const MixerData d = MakeMixerData(c.shape, c.n_seqs, c.seq_len,
                                      uint64_t(c.seq_len * 131 + c.chunk * 7 + c.n_seqs + c.shape.n_groups * 1000),
                                      c.strong_decay);
    const std::string what = target + " tensor cores (" + operands + " operands) " + ScanName(c);
    const ScanResult want = RunScan(Ref(), d, true, c.chunk);
    const ScanResult got = RunScan(*b, d, true, c.chunk);
    ExpectClose(got.y.Values(), want.y.Values(), tol, what + " SsdPrefill y");
    ExpectClose(got.ssm_state, want.ssm_state, tol, what + " SsdPrefill ssm_state");
    ExpectPaddingIntact(got.y, what + " SsdPrefill y");
    largest = std::max(largest, RelL2(got.y.Values(), want.y.Values()));
  }
  std::printf("%s %s operands: largest relative L2 of y %.2e\n", target.c_str(), operands.c_str(), largest);
  // Rounded operands cannot reproduce fp32 sums: an error this small means the fp32 kernels ran;
  // bf16 operands (8 bits) err well beyond TF32 ones (11 bits).
  EXPECT_GT(largest, half == DType::BF16 ? kTf32ScanTol / 4 : 1e-5) << "the scan's operands are not " << operands;
}

TEST_P(CudaOps, SsdPrefillOnTensorCoresBf16) { CheckTensorCoreScan(GetParam(), DType::BF16); }
TEST_P(CudaOps, SsdPrefillOnTensorCoresTf32) { CheckTensorCoreScan(GetParam(), DType::F16); }

INSTANTIATE_TEST_SUITE_P(Targets, CudaOps, ::testing::Values(std::string("cuda"), std::string("emu")), TargetName);

}  // namespace
}  // namespace mamba2::testing
