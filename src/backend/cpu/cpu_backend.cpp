// The optimised host backend: the same ops as the reference backend, multi-threaded over one
// persistent pool, SIMD inner loops, BLAS for prefill matmuls and the chunked SSD scan.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_dnnl.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/host_backend.h"
#include "core/host_buffer.h"
#include "core/thread_pool.h"

namespace mamba2 {
namespace {

class CpuBackend final : public HostBackend {
 public:
  explicit CpuBackend(const CpuBackendOptions& o) : pool_(o.n_threads), matmul_(o.matmul) {}

  std::string name() const override {
    return matmul_ == CpuMatMul::kFp32 ? "cpu" : std::string("cpu-") + CpuMatMulName(matmul_);
  }

  void Fill(float* dst, float value, size_t n) override {
    pool_.ParallelFor(
        int64_t(n), [&](int64_t b, int64_t e) { std::fill(dst + b, dst + e, value); }, 1 << 16);
  }

  void Embed(const int32_t* ids, int64_t n, const TensorView& table, Mat out) override {
    const int64_t vocab = table.shape[0], d = table.shape[1];
    CHECK(out.rows == n && out.cols == d);
    pool_.ParallelFor(
        n,
        [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) {
            const int64_t id = ids[i];
            CHECK_MSG(id >= 0 && id < vocab, "Embed: token id out of range");
            float* dst = out.row(i);
            if (table.dtype == DType::F32) {
              std::memcpy(dst, table.as<const float>() + id * d, size_t(d) * sizeof(float));
            } else {
              for (int64_t j = 0; j < d; ++j) dst[j] = LoadAsF32(table.data, table.dtype, size_t(id * d + j));
            }
          }
        },
        std::max<int64_t>(1, 8192 / std::max<int64_t>(1, d)));
  }

  void RmsNorm(Mat x, const TensorView& weight, float eps, Mat out) override {
    CHECK(weight.dtype == DType::F32 && weight.numel() == x.cols);
    cpu::RmsNorm(pool_, x, weight.as<float>(), eps, out);
  }

  using Backend::MatMul;
  void MatMul(Mat x, const TensorView& w, Mat out, bool accumulate) override {
    CHECK(w.shape.ndim == 2);
    const bool bf16 = matmul_ == CpuMatMul::kBf16;
    if (x.rows > cpu::kGemvMaxRows) {
      std::lock_guard<std::mutex> lock(xb_mu_);
      cpu::MatMul(pool_, x, w, out, accumulate, bf16, xb_scratch_);
    } else {
      cpu::MatMul(pool_, x, w, out, accumulate, bf16, xb_scratch_);  // GEMV: touches no scratch
    }
  }

  void ConvPrefill(Mat xbc, int64_t n_seqs, int64_t seq_len, const int32_t* slots, const MixerDims& dims,
                   float* conv_state, const TensorView& weight, const TensorView& bias, Mat out) override {
    CHECK(weight.dtype == DType::F32 && weight.numel() == dims.conv_dim() * dims.d_conv);
    cpu::CausalConv(pool_, xbc, n_seqs, seq_len, slots, dims, conv_state, weight.as<float>(),
                    bias.data ? bias.as<float>() : nullptr, out);
  }

  void ConvStep(Mat xbc, const int32_t* slots, const MixerDims& dims, float* conv_state, const TensorView& weight,
                const TensorView& bias, Mat out) override {
    // A decode step is a prefill of length 1 per sequence.
    ConvPrefill(xbc, xbc.rows, 1, slots, dims, conv_state, weight, bias, out);
  }

  void SsdPrefill(const ScanInputs& in, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                  const MixerDims& dims, int64_t chunk_size, float* ssm_state, Mat y) override {
    std::lock_guard<std::mutex> lock(scratch_mu_);
    cpu::SsdChunked(pool_, in, n_seqs, seq_len, slots, dims, chunk_size, NativeBf16(), ssm_state, y,
                    ssd_scratch_);
  }

  void SsmStep(const ScanInputs& in, const int32_t* slots, const MixerDims& dims, float* ssm_state,
               Mat y) override {
    cpu::SsmStep(pool_, in, slots, dims, ssm_state, y);
  }

  void GatedRmsNorm(Mat y, Mat z, const TensorView& weight, int64_t group_size, float eps, Mat out) override {
    CHECK(weight.dtype == DType::F32 && weight.numel() == y.cols);
    cpu::GatedRmsNorm(pool_, y, z, weight.as<float>(), group_size, eps, out);
  }

  // bf16 prefill: the norm rounds its rows straight into the GEMM's bf16 operand (the model reads
  // only the product, so normed / gated are left unwritten); bitwise the two ops.
  void RmsNormMatMul(Mat x, const TensorView& norm_weight, float eps, Mat normed, const TensorView& w,
                     Mat out) override {
    if (!FusesNormIntoBf16Gemm(x.rows, w)) return Backend::RmsNormMatMul(x, norm_weight, eps, normed, w, out);
    CHECK(norm_weight.dtype == DType::F32 && norm_weight.numel() == x.cols);
    std::lock_guard<std::mutex> lock(xb_mu_);
    uint16_t* xb = RoundedScratch(x.rows * x.cols);
    cpu::RmsNorm(pool_, x, norm_weight.as<float>(), eps, normed, xb);
    cpu::GemmBf16Rounded(pool_, xb, x.rows, w, out, /*accumulate=*/false);
  }
  void GatedRmsNormMatMulAdd(Mat y, Mat z, const TensorView& norm_weight, int64_t group_size, float eps, Mat gated,
                             const TensorView& w, Mat out) override {
    if (!FusesNormIntoBf16Gemm(y.rows, w))
      return Backend::GatedRmsNormMatMulAdd(y, z, norm_weight, group_size, eps, gated, w, out);
    CHECK(norm_weight.dtype == DType::F32 && norm_weight.numel() == y.cols);
    std::lock_guard<std::mutex> lock(xb_mu_);
    uint16_t* xb = RoundedScratch(y.rows * y.cols);
    cpu::GatedRmsNorm(pool_, y, z, norm_weight.as<float>(), group_size, eps, gated, xb);
    cpu::GemmBf16Rounded(pool_, xb, y.rows, w, out, /*accumulate=*/true);
  }

 protected:
  // Matrices are used in place (mmapped) in the dtype they are stored in, except where the
  // mode needs another: bf16 mode rounds f32/f16 matrices to bf16 once (into a HostBuffer: huge
  // pages), and f64 (only in tests' fixtures) becomes f32. The same stored tensor prepared twice
  // (tied embedding / lm_head) shares one copy. Like the in-place views, this assumes host
  // tensors outlive the backend unchanged; the sampled fingerprint only guards against a freed
  // tensor's address being reused.
  TensorView PrepareMatrix(const TensorView& host) override {
    DType target = host.dtype;
    if (matmul_ == CpuMatMul::kBf16) target = DType::BF16;
    else if (host.dtype == DType::F64) target = DType::F32;
    CHECK_MSG(host.dtype == DType::F32 || host.dtype == DType::F16 || host.dtype == DType::BF16 ||
                  host.dtype == DType::F64,
              "cpu PrepareMatrix: matrices must be f32, f16, bf16 or f64");
    if (target == host.dtype) return host;
    std::lock_guard<std::mutex> lock(prepared_mu_);
    const auto key = std::make_tuple(host.data, host.dtype, host.numel(), Fingerprint(host));
    if (auto it = prepared_.find(key); it != prepared_.end()) return TensorView{it->second, target, host.shape};
    const int64_t n = host.numel();
    const size_t es = DTypeSize(target);
    Result<HostBuffer> buf = HostBuffer::Allocate(size_t(n) * es);
    CHECK_MSG(buf.ok(), "out of host memory converting a weight matrix");
    void* dst = buf->data();
    pool_.ParallelFor(
        n,
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            const float v = LoadAsF32(host.data, host.dtype, size_t(i));
            if (target == DType::BF16) static_cast<uint16_t*>(dst)[i] = F32ToBF16(v);
            else static_cast<float*>(dst)[i] = v;
          }
        },
        1 << 16);
    prepared_[key] = dst;
    owned_.push_back(std::move(buf).value());
    return TensorView{dst, target, host.shape};
  }

 private:
  // FNV-1a over the bytes of up to 257 evenly spaced elements.
  static uint64_t Fingerprint(const TensorView& t) {
    const int64_t n = t.numel();
    const size_t es = DTypeSize(t.dtype);
    const auto* bytes = static_cast<const unsigned char*>(t.data);
    uint64_t h = 1469598103934665603ull;
    for (int64_t k = 0, samples = std::min<int64_t>(n, 257); k < samples; ++k) {
      const int64_t i = samples > 1 ? k * (n - 1) / (samples - 1) : 0;
      for (size_t b = 0; b < es; ++b) h = (h ^ bytes[size_t(i) * es + b]) * 1099511628211ull;
    }
    return h;
  }

  // bf16 mode where oneDNN has the bf16 matmul (elsewhere bf16 mode emulates it in fp32).
  bool NativeBf16() const { return matmul_ == CpuMatMul::kBf16 && cpu::HaveBf16Gemm(); }
  bool FusesNormIntoBf16Gemm(int64_t rows, const TensorView& w) const {
    return NativeBf16() && rows > cpu::kGemvMaxRows && w.dtype == DType::BF16;
  }
  uint16_t* RoundedScratch(int64_t halves) {
    if (int64_t(xb_scratch_.size()) < halves) xb_scratch_.resize(size_t(halves));
    return xb_scratch_.data();
  }

  ThreadPool pool_;
  CpuMatMul matmul_;
  std::mutex scratch_mu_;
  cpu::SsdScratch ssd_scratch_;
  std::mutex prepared_mu_;
  std::map<std::tuple<void*, DType, int64_t, uint64_t>, void*> prepared_;
  std::mutex xb_mu_;
  std::vector<uint16_t> xb_scratch_;  // prefill activations rounded to bf16
  std::vector<HostBuffer> owned_;  // converted matrices
};

}  // namespace

const char* CpuMatMulName(CpuMatMul m) { return m == CpuMatMul::kBf16 ? "bf16" : "f32"; }

Result<CpuMatMul> ParseCpuMatMul(const std::string& s) {
  if (s == "f32" || s == "fp32") return CpuMatMul::kFp32;
  if (s == "bf16") return CpuMatMul::kBf16;
  return Status::Error("cpu matmul mode \"" + s + "\" is not one of f32, bf16");
}

std::unique_ptr<Backend> MakeCpuBackend(const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

std::unique_ptr<Backend> MakeCpuBackend(int n_threads) {
  CpuBackendOptions o;
  o.n_threads = n_threads;
  return MakeCpuBackend(o);
}

}  // namespace mamba2
