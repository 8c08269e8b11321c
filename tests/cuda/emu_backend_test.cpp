// The emulated CUDA backend (see emu_backend.h) and checks of the emulator itself: that it
// computes block/warp reductions right and that its shuffled scheduling exposes a missing
// barrier, which is what makes a pass of the kernels under it meaningful.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/params.h"
#include "backend/cuda/views.h"
#include "backend/host_backend.h"
#include "core/dtype.h"
#include "cuda/emu_backend.h"

// Last: the emulator defines CUDA's keywords as macros for the kernel text that follows.
#include "cuda/cuda_emu.h"
#define M2_KERNEL_NS cuda_emu
#include "backend/cuda/elementwise.cuh"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/ssd.cuh"

namespace mamba2::cuda_emu {

// Thread i publishes i*k in shared memory and reads its neighbour's value, with or without
// the barrier in between.
__global__ void NeighbourKernel(int k, bool barrier, int* out) {
  __shared__ int slot[64];
  const int i = int(threadIdx.x);
  slot[i] = i * k;
  if (barrier) __syncthreads();
  out[i] = slot[(i + 1) % 64];
}

// Only block 0 writes v; the others read it all the same (on a device: whatever the SM held).
__global__ void UnwrittenSharedKernel(float* out) {
  __shared__ float v;
  if (blockIdx.x == 0 && threadIdx.x == 0) v = 7.0f;
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = v;
}

// Each block appends its index to out as it runs.
__global__ void BlockOrderKernel(int* out, int* n) {
  if (threadIdx.x == 0) out[(*n)++] = int(blockIdx.x);
}

__global__ void SumKernel(float* out) {
  const float s = BlockSum(float(threadIdx.x));
  const float w = WarpSum(1.0f);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
  if (threadIdx.x == 33) out[gridDim.x + blockIdx.x] = w;
}

}  // namespace mamba2::cuda_emu

#include "cuda/cuda_emu_end.h"

namespace mamba2::testing {
namespace {

namespace emu = ::mamba2::cuda_emu;

using cuda_args::KernelDType;

// Dense host copy of a view into `buf`, and the view of the copy.
Mat Dense(const Mat& m, std::vector<unsigned char>& buf) {
  const size_t row_bytes = size_t(m.cols) * DTypeSize(m.dtype);
  buf.resize(size_t(m.rows) * row_bytes);
  for (int64_t r = 0; r < m.rows; ++r) std::memcpy(buf.data() + size_t(r) * row_bytes, m.at(r, 0), row_bytes);
  return Mat{buf.data(), m.rows, m.cols, m.cols, m.dtype};
}

class EmuBackend final : public HostBackend {
 public:
  // half: DType::F32 (fp32 mode), BF16 or F16 (the 16-bit GEMM modes). As the CUDA backend,
  // bf16 mode keeps the mixer's intermediates in bf16 unless bf16_intermediates is false.
  EmuBackend(DType half, bool bf16_intermediates, bool bf16_scan)
      : half_(half),
        intermediates_(cuda_args::IntermediatesFor(half == DType::BF16, bf16_intermediates)),
        scan_products_(cuda_args::ScanProductsFor(half == DType::F32, half == DType::BF16, bf16_scan)) {}
  std::string name() const override { return half_ == DType::F32 ? "cuda-emu" : std::string("cuda-emu-") + DTypeName(half_); }
  DType IntermediateDType() const override { return intermediates_; }

  void Fill(float* dst, float value, size_t n) override { emu::LaunchFill(dst, value, int64_t(n), nullptr); }

  void PickTokens(const float* logits, int64_t n_rows, int64_t ld, const PickParams& p, uint64_t* draw,
                  int32_t* out_ids) override {
    EmuLaunchPick(logits, ld, n_rows, p, draw, out_ids);
  }

  void Embed(const int32_t* ids, int64_t n, const TensorView& table, Mat out) override {
    emu::LaunchEmbed(ids, n, table.data, KernelDType(table.dtype), table.shape[1], out.f32(), out.ld, nullptr);
  }

  void RmsNorm(Mat x, const TensorView& weight, float eps, Mat out) override {
    emu::LaunchRmsNorm(x.f32(), x.ld, weight.as<float>(), eps, out.f32(), out.ld, x.rows, x.cols, nullptr);
  }

  using Backend::MatMul;
  void MatMul(Mat x, const TensorView& w, Mat out, bool accumulate) override {
    const int64_t N = w.shape[0], K = w.shape[1];
    CHECK(x.cols == K && out.cols == N && out.rows == x.rows);
    if (half_ != DType::F32 && w.dtype == half_) {
      const auto* wh = w.as<uint16_t>();
      if (cuda_args::UsesGemv(true, x, w)) {  // as the CUDA backend
        emu::LaunchGemv(x.f32(), x.rows, x.ld, wh, KernelDType(half_), N, K, cuda_args::Act(out), accumulate, nullptr,
                        nullptr, nullptr);
        return;
      }
      std::vector<uint16_t> xh(size_t(x.rows * K));
      emu::LaunchPackHalf(x.f32(), x.rows, K, x.ld, KernelDType(half_), xh.data(), nullptr);
      HalfGemm(xh, w, out, accumulate);
      return;
    }
    for (int64_t r = 0; r < x.rows; ++r)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0.0;
        for (int64_t k = 0; k < K; ++k)
          acc += double(x.row(r)[k]) * double(LoadAsF32(w.data, w.dtype, size_t(n * K + k)));
        out.row(r)[n] = accumulate ? out.row(r)[n] + float(acc) : float(acc);
      }
  }

  // As the CUDA backend: where the product is the GEMV, the norm runs in its blocks; where a
  // 16-bit GEMM follows, the norm writes its packed operand.
  void RmsNormMatMul(Mat x, const TensorView& norm_weight, float eps, Mat normed, const TensorView& w,
                     Mat out) override {
    if (FusesNorm(normed, w)) {
      GemvWithNorm(cuda_args::RmsGemvNorm(x, norm_weight, eps), normed, w, out, false, nullptr);
      return;
    }
    if (!PacksForHalfGemm(normed, w)) {
      Backend::RmsNormMatMul(x, norm_weight, eps, normed, w, out);
      return;
    }
    std::vector<uint16_t> xh(size_t(x.rows * x.cols));
    emu::LaunchRmsNormHalf(x.f32(), x.ld, norm_weight.as<float>(), eps, xh.data(), KernelDType(half_), x.rows,
                           x.cols, nullptr);
    HalfGemm(xh, w, out, /*accumulate=*/false);
  }
  void GatedRmsNormMatMulAdd(Mat y, Mat z, const TensorView& norm_weight, int64_t group_size, float eps, Mat gated,
                             const TensorView& w, Mat out) override {
    if (FusesNorm(gated, w)) {
      GemvWithNorm(cuda_args::GatedGemvNorm(y, z, norm_weight, group_size, eps), gated, w, out, true,
                   nullptr);
      return;
    }
    if (!PacksForHalfGemm(gated, w)) {
      Backend::GatedRmsNormMatMulAdd(y, z, norm_weight, group_size, eps, gated, w, out);
      return;
    }
    std::vector<uint16_t> xh(size_t(y.rows * y.cols));
    emu::LaunchGatedRmsNormHalf(cuda_args::Act(y), cuda_args::Act(z), norm_weight.as<float>(), group_size, eps,
                                xh.data(), KernelDType(half_), y.rows, y.cols, nullptr);
    HalfGemm(xh, w, out, /*accumulate=*/true);
  }

  // As the CUDA backend: the conv in the GEMV's epilogue where the product is the GEMV.
  void MatMulConvStep(Mat x, const TensorView& w, Mat out, int64_t conv_begin, const int32_t* slots,
                      const MixerDims& dims, float* conv_state, const TensorView& conv_weight,
                      const TensorView& conv_bias, Mat conv_out) override {
    const auto* wh = static_cast<const uint16_t*>(w.data);
    if (!cuda_args::UsesGemv(true, x, w)) {
      Backend::MatMulConvStep(x, w, out, conv_begin, slots, dims, conv_state, conv_weight, conv_bias, conv_out);
      return;
    }
    const cuda_args::GemvConv conv =
        StepConv(out, conv_begin, x.rows, slots, dims, conv_state, conv_weight, conv_bias, conv_out);
    emu::LaunchGemv(x.f32(), x.rows, x.ld, wh, KernelDType(half_), w.shape[0], w.shape[1], cuda_args::Act(out),
                    /*accumulate=*/false, &conv, nullptr, nullptr);
  }
  void RmsNormMatMulConvStep(Mat x, const TensorView& norm_weight, float eps, Mat normed, const TensorView& w,
                             Mat out, int64_t conv_begin, const int32_t* slots, const MixerDims& dims,
                             float* conv_state, const TensorView& conv_weight, const TensorView& conv_bias,
                             Mat conv_out) override {
    if (!FusesNorm(normed, w)) {
      Backend::RmsNormMatMulConvStep(x, norm_weight, eps, normed, w, out, conv_begin, slots, dims, conv_state,
                                     conv_weight, conv_bias, conv_out);
      return;
    }
    const cuda_args::GemvConv conv =
        StepConv(out, conv_begin, x.rows, slots, dims, conv_state, conv_weight, conv_bias, conv_out);
    GemvWithNorm(cuda_args::RmsGemvNorm(x, norm_weight, eps), normed, w, out, false, &conv);
  }

  void ConvPrefill(Mat xbc, int64_t n_seqs, int64_t seq_len, const int32_t* slots, const MixerDims& dims,
                   float* conv_state, const TensorView& weight, const TensorView& bias, Mat out) override {
    std::vector<unsigned char> copy;
    Mat in = xbc;
    if (cuda::MayOverlap(xbc, out)) in = Dense(xbc, copy);
    emu::LaunchConvPrefill(ConvArgs(in, n_seqs, seq_len, slots, dims, conv_state, weight, bias, out), nullptr);
  }

  void ConvStep(Mat xbc, const int32_t* slots, const MixerDims& dims, float* conv_state, const TensorView& weight,
                const TensorView& bias, Mat out) override {
    emu::LaunchConvStep(ConvArgs(xbc, xbc.rows, 1, slots, dims, conv_state, weight, bias, out), nullptr);
  }

  void SsdPrefill(const ScanInputs& in, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                  const MixerDims& dims, int64_t chunk_size, float* ssm_state, Mat y) override {
    std::vector<unsigned char> x_copy;
    ScanInputs inputs = in;
    if (cuda::MayOverlap(in.x, y)) inputs.x = Dense(in.x, x_copy);
    cuda_args::ScanParams p = ScanArgs(inputs, dims, slots, ssm_state, y);
    p.n_seqs = n_seqs;
    p.seq_len = seq_len;
    const cuda_args::SsdLayout layout =
        cuda_args::PlanSsdScratch(n_seqs, seq_len, dims.n_heads, dims.head_dim, dims.d_state, dims.n_groups,
                                  chunk_size, scan_products_);
    if (scratch_.size() < layout.bytes) scratch_.resize(layout.bytes);
    // Poison: every scratch element a kernel reads must have been written by an earlier one.
    std::fill(scratch_.begin(), scratch_.end(), 0xff);
    emu::LaunchSsdPrefill(p, layout, cuda_args::CarveSsdScratch(scratch_.data(), layout), nullptr);
  }

  void SsmStep(const ScanInputs& in, const int32_t* slots, const MixerDims& dims, float* ssm_state,
               Mat y) override {
    cuda_args::ScanParams p = ScanArgs(in, dims, slots, ssm_state, y);
    p.n_seqs = in.x.rows;
    p.seq_len = 1;
    emu::LaunchSsmStep(p, nullptr);
  }

  void GatedRmsNorm(Mat y, Mat z, const TensorView& weight, int64_t group_size, float eps, Mat out) override {
    emu::LaunchGatedRmsNorm(cuda_args::Act(y), cuda_args::Act(z), weight.as<float>(), group_size, eps, out.f32(),
                            out.ld, y.rows, y.cols, nullptr);
  }

 protected:
  // As the CUDA backend: matrices become fp32, or bf16 / f16 in those modes, through its kernels.
  TensorView PrepareMatrix(const TensorView& host) override {
    const int64_t n = host.numel();
    if (half_ != DType::F32) {
      auto buf = std::make_unique<uint16_t[]>(size_t(n));
      emu::LaunchToHalf(host.data, KernelDType(host.dtype), KernelDType(half_), buf.get(), n, nullptr);
      TensorView v{buf.get(), half_, host.shape};
      half_owned_.push_back(std::move(buf));
      return v;
    }
    auto buf = std::make_unique<float[]>(size_t(n));
    emu::LaunchToF32(host.data, KernelDType(host.dtype), buf.get(), n, nullptr);
    TensorView v{buf.get(), DType::F32, host.shape};
    f32_owned_.push_back(std::move(buf));
    return v;
  }

 private:
  static bool PacksForHalfGemm(const Mat& x, const TensorView& w) { return cuda_args::PacksForHalfGemm(true, x, w); }
  static bool FusesNorm(const Mat& normed, const TensorView& w) { return cuda_args::FusesNorm(true, true, normed, w); }
  void GemvWithNorm(const cuda_args::GemvNorm& nm, const Mat& normed, const TensorView& w, Mat out, bool accumulate,
                    const cuda_args::GemvConv* conv) const {
    emu::LaunchGemv(normed.f32(), normed.rows, normed.ld, w.as<uint16_t>(), KernelDType(half_), w.shape[0],
                    w.shape[1], cuda_args::Act(out), accumulate, conv, &nm, nullptr);
  }
  static cuda_args::GemvConv StepConv(Mat out, int64_t conv_begin, int64_t rows, const int32_t* slots,
                                      const MixerDims& dims, float* conv_state, const TensorView& weight,
                                      const TensorView& bias, Mat conv_out) {
    cuda_args::GemvConv conv;
    conv.conv =
        ConvArgs(out.Cols(conv_begin, dims.conv_dim()), rows, 1, slots, dims, conv_state, weight, bias, conv_out);
    conv.begin = conv_begin;
    return conv;
  }
  // As cuBLAS: 16-bit operands (xh dense [rows, K]), exact products, fp32 sums; a bf16 out
  // gets the sums rounded once; with accumulate (fp32 out) the sums are added to out.
  void HalfGemm(const std::vector<uint16_t>& xh, const TensorView& w, Mat out, bool accumulate) const {
    const int64_t N = w.shape[0], K = w.shape[1];
    const auto* wh = w.as<uint16_t>();
    const cuda_args::ActView o = cuda_args::Act(out);
    for (int64_t r = 0; r < out.rows; ++r)
      for (int64_t n = 0; n < N; ++n) {
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k)
          acc += LoadAsF32(xh.data(), half_, size_t(r * K + k)) * LoadAsF32(wh, half_, size_t(n * K + k));
        emu::Put(o, r, n, accumulate ? emu::Get(o, r, n) + acc : acc);
      }
  }

  static cuda_args::ConvParams ConvArgs(Mat in, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                                        const MixerDims& dims, float* conv_state, const TensorView& weight,
                                        const TensorView& bias, Mat out) {
    return cuda_args::MakeConvParams(in, n_seqs, seq_len, slots, dims, conv_state, weight, bias, out);
  }
  static cuda_args::ScanParams ScanArgs(const ScanInputs& in, const MixerDims& dims, const int32_t* slots,
                                        float* ssm_state, Mat y) {
    return cuda_args::MakeScanParams(in.x, in.B, in.C, in.dt, in, dims, slots, ssm_state, y);
  }

  DType half_;
  DType intermediates_;
  int scan_products_;
  std::vector<unsigned char> scratch_;
  std::vector<std::unique_ptr<uint16_t[]>> half_owned_;
  std::vector<std::unique_ptr<float[]>> f32_owned_;
};

TEST(CudaEmulator, BlockAndWarpSums) {
  std::vector<float> out(6, -1.0f);
  emu::EmuLaunch(emu::SumKernel, emu::dim3(3), emu::dim3(256), out.data());
  for (int b = 0; b < 3; ++b) {
    EXPECT_EQ(out[size_t(b)], 255.0f * 256.0f / 2.0f) << "block sum, block " << b;
    EXPECT_EQ(out[size_t(3 + b)], 32.0f) << "warp sum, block " << b;
  }
}

TEST(CudaEmulator, ShuffledSchedulingExposesAMissingBarrier) {
  int wrong_without = 0, wrong_with = 0;
  for (int k = 1; k <= 4; ++k)
    for (bool barrier : {false, true}) {
      std::vector<int> out(64, -1);
      emu::EmuLaunch(emu::NeighbourKernel, emu::dim3(1), emu::dim3(64), k, barrier, out.data());
      for (int i = 0; i < 64; ++i)
        if (out[size_t(i)] != ((i + 1) % 64) * k) ++(barrier ? wrong_with : wrong_without);
    }
  EXPECT_EQ(wrong_with, 0);
  EXPECT_GT(wrong_without, 0) << "the emulator ran every thread in an order that hid the race";
}

TEST(CudaEmulator, SharedMemoryStartsEachBlockAsNaN) {
  std::vector<float> out(3, 0.0f);
  emu::EmuLaunch(emu::UnwrittenSharedKernel, emu::dim3(3), emu::dim3(32), out.data());
  EXPECT_EQ(out[0], 7.0f);
  EXPECT_TRUE(std::isnan(out[1])) << "block 1 read block 0's value: " << out[1];
  EXPECT_TRUE(std::isnan(out[2])) << out[2];
}

TEST(CudaEmulator, BlocksRunOnceEachInAShuffledOrder) {
  std::vector<int> out(32, -1);
  int n = 0;
  emu::EmuLaunch(emu::BlockOrderKernel, emu::dim3(32), emu::dim3(32), out.data(), &n);
  ASSERT_EQ(n, 32);
  std::vector<int> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  for (int b = 0; b < 32; ++b) EXPECT_EQ(sorted[size_t(b)], b);
  EXPECT_FALSE(std::is_sorted(out.begin(), out.end())) << "blocks ran in index order";
}

// The decode product kernel on its own: every row count it takes, K spanning partial unroll
// groups, against double sums of the 16-bit weights times the fp32 activations; columns and rows
// outside stay untouched.
TEST(CudaEmulator, GemvKernelAgainstRoundedOperands) {
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (int half : {cuda_args::kBF16, cuda_args::kF16})
    for (int64_t rows = 1; rows <= cuda_args::kGemvMaxRows; ++rows)
      for (int64_t K : {8, 40, 1032 + 8})
        for (int64_t N : {1, 9, 17}) {
          const int64_t x_ld = K + 4, out_ld = N + 3;
          std::vector<float> x(size_t(rows * x_ld));
          for (float& v : x) v = uni(gen);
          std::vector<uint16_t> w(size_t(N * K));
          for (uint16_t& v : w) v = half == cuda_args::kBF16 ? F32ToBF16(uni(gen)) : F32ToF16(uni(gen));
          std::vector<float> out(size_t((rows + 1) * out_ld), -7.0f);
          const cuda_args::ActView out_view{out.data(), out_ld, cuda_args::kF32};
          emu::LaunchGemv(x.data(), rows, x_ld, w.data(), half, N, K, out_view, /*accumulate=*/false, nullptr, nullptr,
                          nullptr);
          double err2 = 0.0, ref2 = 0.0;
          for (int64_t r = 0; r <= rows; ++r)
            for (int64_t n = 0; n < out_ld; ++n) {
              const float got = out[size_t(r * out_ld + n)];
              if (r == rows || n >= N) {
                ASSERT_EQ(got, -7.0f) << "written outside out: row " << r << " column " << n;
                continue;
              }
              double want = 0.0;
              for (int64_t k = 0; k < K; ++k) {
                const uint16_t wk = w[size_t(n * K + k)];
                want += double(x[size_t(r * x_ld + k)]) *
                        double(half == cuda_args::kBF16 ? BF16ToF32(wk) : F16ToF32(wk));
              }
              err2 += (got - want) * (got - want);
              ref2 += want * want;
            }
          EXPECT_LE(std::sqrt(err2 / ref2), 1e-5) << "rows " << rows << " K " << K << " N " << N << " half " << half;
        }
}

// The emulated tensor-core operations check the device's operand rules.
TEST(CudaEmulatorDeathTest, WmmaRejectsAMisalignedOperand) {
  alignas(32) static float tile[16 * 16 + 8] = {};
  auto load = [](const float* p, unsigned ldm) {
    emu::EmuLaunch(
        +[](const float* q, unsigned l) {
          emu::wmma::fragment<emu::wmma::matrix_a, 16, 16, 8, emu::wmma::precision::tf32, emu::wmma::row_major> f;
          emu::wmma::load_matrix_sync(f, q, l);
        },
        emu::dim3(1), emu::dim3(32), p, ldm);
  };
  load(tile, 16);  // fine
  EXPECT_DEATH(load(tile + 4, 16), "not 32-byte aligned");
  EXPECT_DEATH(load(tile, 10), "stride not a multiple of 16 bytes");
}

}  // namespace

std::unique_ptr<Backend> MakeEmuBackend(DType matmul, bool bf16_intermediates, bool bf16_scan) {
  return std::make_unique<EmuBackend>(matmul, bf16_intermediates, bf16_scan);
}

}  // namespace mamba2::testing
