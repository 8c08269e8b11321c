// The CUDA backend: device memory, weights uploaded once, GEMMs through cuBLAS and the fused
// kernels of elementwise.cuh / ssd.cuh, all queued on one stream. Ops never synchronise with
// the host and never allocate once their scratch has grown to the largest call seen, so after
// one warm-up step a whole decode step can be captured into a CUDA graph.
#include "backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/params.h"
#include "backend/cuda/views.h"

namespace mamba2 {
namespace {

using cuda::MayOverlap;
using cuda::SameView;
using cuda_args::KernelDType;

void CheckCublas(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  std::fprintf(stderr, "cuBLAS error at %s:%d: %s: %s (%s)\n", file, line, what, cublasGetStatusName(s),
               cublasGetStatusString(s));
  std::abort();
}
#define CUBLAS_CHECK(expr) CheckCublas((expr), #expr, __FILE__, __LINE__)

// Device memory that only grows; growing waits for queued work that may still read it, and
// bumps *generation so that recorded graphs holding the old address are recorded again.
class Scratch {
 public:
  explicit Scratch(uint64_t* generation) : generation_(generation) {}
  ~Scratch() {
    if (p_) cudaFree(p_);
  }
  void* Ensure(size_t bytes, cudaStream_t stream) {
    if (bytes <= bytes_) return p_;
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(stream, &capturing));
    CHECK_MSG(capturing == cudaStreamCaptureStatusNone,
              "cuda: scratch must grow while a step is being recorded (run the ops once unrecorded first)");
    ++*generation_;
    CUDA_CHECK(cudaStreamSynchronize(stream));
    if (p_) CUDA_CHECK(cudaFree(p_));
    p_ = nullptr;
    const size_t grown = bytes + bytes / 4;  // fewer regrowths while sizes creep up
    const cudaError_t e = cudaMalloc(&p_, grown);
    CHECK_MSG(e == cudaSuccess, "cuda: scratch allocation of " + std::to_string(grown) +
                                    " bytes failed: " + cudaGetErrorString(e));
    bytes_ = grown;
    return p_;
  }

 private:
  uint64_t* generation_;
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// A captured CUDA graph of some ops. Launch re-captures first when a scratch buffer the graph
// may address has moved since (the ops then run on the new buffers). Should the driver refuse
// the capture, the recording says so once and launches the ops one by one from then on.
class CudaRecording final : public Recording {
 public:
  CudaRecording(cudaStream_t stream, const uint64_t* generation, std::function<void()> ops)
      : stream_(stream), generation_(generation), ops_(std::move(ops)) {}
  ~CudaRecording() override {
    if (exec_) cudaGraphExecDestroy(exec_);
  }
  void Launch() override {
    if (!fallback_ && (!exec_ || captured_at_ != *generation_) && !Capture()) fallback_ = true;
    if (fallback_) {
      ops_();
      return;
    }
    CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
  }

 private:
  bool Capture() {
    if (exec_) CUDA_CHECK(cudaGraphExecDestroy(exec_));
    exec_ = nullptr;
    // Thread-local mode: another host thread's unrelated CUDA calls do not break the capture.
    cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) return Refused("cudaStreamBeginCapture", e);
    ops_();
    cudaGraph_t graph = nullptr;
    e = cudaStreamEndCapture(stream_, &graph);
    if (e != cudaSuccess) {
      if (graph) cudaGraphDestroy(graph);
      return Refused("cudaStreamEndCapture", e);
    }
    e = cudaGraphInstantiate(&exec_, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
      exec_ = nullptr;
      return Refused("cudaGraphInstantiate", e);
    }
    captured_at_ = *generation_;
    return true;
  }

  static bool Refused(const char* what, cudaError_t e) {
    cudaGetLastError();  // not sticky: clear it so that later checks see only their own errors
    std::fprintf(stderr, "cuda: recording a decode step failed at %s (%s); launching its kernels one by one\n", what,
                 cudaGetErrorString(e));
    return false;
  }

  cudaStream_t stream_;
  const uint64_t* generation_;
  std::function<void()> ops_;
  cudaGraphExec_t exec_ = nullptr;
  uint64_t captured_at_ = 0;
  bool fallback_ = false;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& o)
      : device_(o.device),
        mode_(o.matmul),
        graphs_(o.graphs),
        gemv_(o.gemv),
        gemv_norms_(o.gemv_norms),
        pdl_(o.programmatic_launch),
        intermediates_(cuda_args::IntermediatesFor(o.matmul == CudaMatMul::kBf16, o.bf16_intermediates)),
        scan_products_(cuda_args::ScanProductsFor(o.matmul == CudaMatMul::kFp32, o.matmul == CudaMatMul::kBf16,
                                                  o.bf16_scan)) {}

  ~CudaBackend() override {
    // Errors are ignored here: at process exit the driver may already be going away.
    if (device_ != 0) cudaSetDevice(device_);
    if (stream_) cudaStreamSynchronize(stream_);
    if (bounce_) cudaFreeHost(bounce_);
    if (read_ring_) cudaFreeHost(read_ring_);
    for (cudaEvent_t ev : read_events_)
      if (ev) cudaEventDestroy(ev);
    for (void* p : owned_) cudaFree(p);
    if (cublas_) cublasDestroy(cublas_);
    if (workspace_) cudaFree(workspace_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status Init() {
    auto fail = [](const char* what, cudaError_t e) {
      return Status::Error(std::string(what) + ": " + cudaGetErrorString(e));
    };
    cudaError_t e = cudaSetDevice(device_);
    if (e != cudaSuccess) return fail("cudaSetDevice", e);
    e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
    if (e != cudaSuccess) return fail("cudaStreamCreate", e);
    if (cublasCreate(&cublas_) != CUBLAS_STATUS_SUCCESS) return Status::Error("cublasCreate failed");
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    // No TF32 unless asked for: fp32 mode must agree with the reference to ~1e-6.
    CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
    // A workspace of our own, so that cuBLAS never allocates inside a (captured) step.
    e = cudaMalloc(&workspace_, kWorkspaceBytes);
    if (e != cudaSuccess) return fail("cudaMalloc (cuBLAS workspace)", e);
    CUBLAS_CHECK(cublasSetWorkspace(cublas_, workspace_, kWorkspaceBytes));
    e = cudaMallocHost(&bounce_, kBounceBytes);
    if (e != cudaSuccess) return fail("cudaMallocHost (read-back buffer)", e);
    e = cudaMallocHost(reinterpret_cast<void**>(&read_ring_), kMaxQueuedRead * kQueuedReads);
    if (e != cudaSuccess) return fail("cudaMallocHost (queued reads)", e);
    for (cudaEvent_t& ev : read_events_) {
      e = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
      if (e != cudaSuccess) return fail("cudaEventCreate", e);
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, device_) == cudaSuccess) device_name_ = prop.name;
    // The kernels' dependency wait exists from sm_90 on; elsewhere the launches stay in stream order.
    pdl_ = pdl_ && prop.major >= 9;
    return Status::Ok();
  }

  std::string name() const override {
    return mode_ == CudaMatMul::kFp32 ? "cuda" : std::string("cuda-") + CudaMatMulName(mode_);
  }
  DType IntermediateDType() const override { return intermediates_; }

  // ---- memory ---------------------------------------------------------------------------
  void* Alloc(size_t bytes) override {
    Current();
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes == 0 ? 256 : bytes);
    CHECK_MSG(e == cudaSuccess, "cuda: allocation of " + std::to_string(bytes) + " bytes on " + device_name_ +
                                    " failed: " + cudaGetErrorString(e));
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
    return p;
  }
  void Free(void* p) override {
    Current();
    if (!p) return;
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    CUDA_CHECK(cudaFree(p));
  }
  // From pageable host memory the copy is staged before this returns, so the caller may reuse
  // its buffer at once.
  void CopyToDevice(void* dst, const void* host_src, size_t bytes) override {
    Current();
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void CopyToHost(void* host_dst, const void* src, size_t bytes) override {
    Current();
    if (!bytes) return;
    // Small reads (a decode step's token id) go through pinned memory: a direct DMA instead of
    // the driver's staged pageable copy.
    if (bytes <= kBounceBytes) {
      CUDA_CHECK(cudaMemcpyAsync(bounce_, src, bytes, cudaMemcpyDeviceToHost, stream_));
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      std::memcpy(host_dst, bounce_, bytes);
      return;
    }
    CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the caller reads host_dst next
  }
  void Fill(float* dst, float value, size_t n) override {
    Current();
    cuda::LaunchFill(dst, value, int64_t(n), stream_);
  }
  void Sync() override { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  // Vectors become fp32; matrices fp32, or bf16 / fp16 in those modes. Converted on the device.
  TensorView PrepareWeight(const TensorView& host, WeightKind kind) override {
    Current();
    const DType target = kind != WeightKind::kMatrix   ? DType::F32
                         : mode_ == CudaMatMul::kBf16 ? DType::BF16
                         : mode_ == CudaMatMul::kFp16 ? DType::F16
                                                      : DType::F32;
    const int64_t n = host.numel();
    TensorView v{nullptr, target, host.shape};
    if (n == 0) return v;
    const int src_code = KernelDType(host.dtype);
    v.data = Alloc(size_t(n) * DTypeSize(target));
    {
      std::lock_guard<std::mutex> lock(mu_);
      owned_.push_back(v.data);
    }
    if (host.dtype == target) {
      CopyToDevice(v.data, host.data, host.nbytes());
    } else {
      void* raw = nullptr;
      const cudaError_t e = cudaMalloc(&raw, host.nbytes());
      CHECK_MSG(e == cudaSuccess, "cuda: staging allocation of " + std::to_string(host.nbytes()) +
                                      " bytes failed: " + cudaGetErrorString(e));
      CopyToDevice(raw, host.data, host.nbytes());
      if (target == DType::F32)
        cuda::LaunchToF32(raw, src_code, static_cast<float*>(v.data), n, stream_);
      else
        cuda::LaunchToHalf(raw, src_code, KernelDType(target), static_cast<uint16_t*>(v.data), n, stream_);
      Free(raw);  // waits for the conversion
    }
    Sync();  // host.data may be a temporary of the caller
    return v;
  }

  // ---- ops ------------------------------------------------------------------------------
  void Embed(const int32_t* ids, int64_t n, const TensorView& table, Mat out) override {
    Current();
    const int64_t d = table.shape[1];
    CHECK(out.cols == d && out.rows >= n);
    cuda::LaunchEmbed(ids, n, table.data, KernelDType(table.dtype), d, out.f32(), out.ld, stream_);
  }

  void RmsNorm(Mat x, const TensorView& weight, float eps, Mat out) override {
    Current();
    CheckRmsNorm(x, weight, out);
    // Each thread reads x at the columns it writes; only a shifted overlap is unsafe.
    if (!SameView(x, out) && MayOverlap(x, out)) x = Aside({x})[0];
    cuda::LaunchRmsNorm(x.f32(), x.ld, weight.as<float>(), eps, out.f32(), out.ld, x.rows, x.cols, stream_);
  }

  using Backend::MatMul;
  void MatMul(Mat x, const TensorView& w, Mat out, bool accumulate) override {
    Current();
    const int64_t N = w.shape[0], K = w.shape[1];
    CHECK(x.cols == K && out.cols == N && out.rows == x.rows);
    CHECK(!accumulate || out.dtype == DType::F32);
    if (x.rows == 0) return;
    CHECK(N <= INT_MAX && K <= INT_MAX && x.rows <= INT_MAX && x.ld <= INT_MAX && out.ld <= INT_MAX);
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    // Row-major out[rows, N] = x[rows, K] w[N, K]^T is column-major out^T = w^T(op T) x^T.
    if (w.dtype == DType::F32) {
      const cublasComputeType_t compute =
          mode_ == CudaMatMul::kTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(x.rows), int(K), &one, w.data,
                                CUDA_R_32F, int(K), x.f32(), CUDA_R_32F, int(x.ld), &beta, out.f32(), CUDA_R_32F,
                                int(out.ld), compute, CUBLAS_GEMM_DEFAULT));
      return;
    }
    CHECK_MSG(w.dtype == DType::BF16 || w.dtype == DType::F16, std::string("cuda: MatMul weight in ") +
                                                                   DTypeName(w.dtype) + " was not prepared by this backend");
    if (UsesGemv(x, w)) {
      cuda::LaunchGemv(x.f32(), x.rows, x.ld, w.as<uint16_t>(), KernelDType(w.dtype), N, K, cuda_args::Act(out),
                       accumulate, nullptr, nullptr, stream_);
      return;
    }
    // The activations in the weights' 16-bit format; products exact, sums in fp32.
    uint16_t* xh = HalfOperand(x.rows, K);
    cuda::LaunchPackHalf(x.f32(), x.rows, K, x.ld, KernelDType(w.dtype), xh, stream_);
    HalfGemm(xh, x.rows, w, out, accumulate);
  }

  // Where the product is the decode GEMV, the norm runs inside its blocks (gemv.cuh); in the
  // 16-bit modes otherwise, the norm writes the GEMM's packed operand directly: no fp32 rows
  // written and read back by a packing pass.
  void RmsNormMatMul(Mat x, const TensorView& norm_weight, float eps, Mat normed, const TensorView& w,
                     Mat out) override {
    Current();
    if (FusesNorm(normed, w)) {
      CheckRmsNorm(x, norm_weight, normed);
      CHECK(!MayOverlap(x, out));  // other blocks still read x while one writes out
      GemvWithNorm(cuda_args::RmsGemvNorm(x, norm_weight, eps), normed, w, out, false, nullptr);
      return;
    }
    if (!PacksForHalfGemm(normed, w)) {
      Backend::RmsNormMatMul(x, norm_weight, eps, normed, w, out);
      return;
    }
    CheckRmsNorm(x, norm_weight, normed);
    CHECK(w.shape[1] == x.cols && out.rows == x.rows && out.cols == w.shape[0]);
    uint16_t* xh = HalfOperand(x.rows, x.cols);
    cuda::LaunchRmsNormHalf(x.f32(), x.ld, norm_weight.as<float>(), eps, xh, KernelDType(w.dtype), x.rows, x.cols,
                            stream_);
    HalfGemm(xh, x.rows, w, out, /*accumulate=*/false);
  }
  void GatedRmsNormMatMulAdd(Mat y, Mat z, const TensorView& norm_weight, int64_t group_size, float eps, Mat gated,
                             const TensorView& w, Mat out) override {
    Current();
    if (FusesNorm(gated, w)) {
      CheckGatedRmsNorm(y, z, norm_weight, gated);
      CHECK(group_size > 0 && y.cols % group_size == 0);
      CHECK(!MayOverlap(y, out) && !MayOverlap(z, out));
      GemvWithNorm(cuda_args::GatedGemvNorm(y, z, norm_weight, group_size, eps), gated, w, out, true, nullptr);
      return;
    }
    if (!PacksForHalfGemm(gated, w)) {
      Backend::GatedRmsNormMatMulAdd(y, z, norm_weight, group_size, eps, gated, w, out);
      return;
    }
    CheckGatedRmsNorm(y, z, norm_weight, gated);
    CHECK(w.shape[1] == y.cols && out.rows == y.rows && out.cols == w.shape[0]);
    uint16_t* xh = HalfOperand(y.rows, y.cols);
    cuda::LaunchGatedRmsNormHalf(cuda_args::Act(y), cuda_args::Act(z), norm_weight.as<float>(), group_size, eps, xh,
                                 KernelDType(w.dtype), y.rows, y.cols, stream_);
    HalfGemm(xh, y.rows, w, out, /*accumulate=*/true);
  }

  // Where the product is the GEMV kernel, the conv runs in its epilogue: one kernel fewer per layer.
  void MatMulConvStep(Mat x, const TensorView& w, Mat out, int64_t conv_begin, const int32_t* slots,
                      const MixerDims& dims, float* conv_state, const TensorView& conv_weight,
                      const TensorView& conv_bias, Mat conv_out) override {
    Current();
    const int64_t N = w.shape[0], K = w.shape[1];
    if (!UsesGemv(x, w)) {
      Backend::MatMulConvStep(x, w, out, conv_begin, slots, dims, conv_state, conv_weight, conv_bias, conv_out);
      return;
    }
    CHECK(x.cols == K && out.cols == N && out.rows == x.rows);
    const cuda_args::GemvConv conv =
        StepConvArgs(out, conv_begin, x.rows, slots, dims, conv_state, conv_weight, conv_bias, conv_out);
    cuda::LaunchGemv(x.f32(), x.rows, x.ld, w.as<uint16_t>(), KernelDType(w.dtype), N, K, cuda_args::Act(out),
                     /*accumulate=*/false, &conv, nullptr, stream_);
  }
  // And the norm ahead of it in the same kernel: a decode step's layer is then three kernels
  // (this, the scan step, the gated norm with out_proj).
  void RmsNormMatMulConvStep(Mat x, const TensorView& norm_weight, float eps, Mat normed, const TensorView& w,
                             Mat out, int64_t conv_begin, const int32_t* slots, const MixerDims& dims,
                             float* conv_state, const TensorView& conv_weight, const TensorView& conv_bias,
                             Mat conv_out) override {
    Current();
    if (!FusesNorm(normed, w)) {
      Backend::RmsNormMatMulConvStep(x, norm_weight, eps, normed, w, out, conv_begin, slots, dims, conv_state,
                                     conv_weight, conv_bias, conv_out);
      return;
    }
    CheckRmsNorm(x, norm_weight, normed);
    CHECK(!MayOverlap(x, out) && !MayOverlap(x, conv_out));
    const cuda_args::GemvConv conv =
        StepConvArgs(out, conv_begin, x.rows, slots, dims, conv_state, conv_weight, conv_bias, conv_out);
    GemvWithNorm(cuda_args::RmsGemvNorm(x, norm_weight, eps), normed, w, out, false, &conv);
  }

  void ConvPrefill(Mat xbc, int64_t n_seqs, int64_t seq_len, const int32_t* slots, const MixerDims& dims,
                   float* conv_state, const TensorView& weight, const TensorView& bias, Mat out) override {
    Current();
    CHECK(xbc.rows == n_seqs * seq_len && xbc.cols == dims.conv_dim() && out.rows == xbc.rows &&
          out.cols == xbc.cols);
    // Threads read inputs of other steps than they write: an aliased input goes aside first.
    Mat in = xbc;
    if (MayOverlap(xbc, out)) in = Aside({xbc})[0];
    cuda::LaunchConvPrefill(ConvArgs(in, n_seqs, seq_len, slots, dims, conv_state, weight, bias, out), stream_);
  }

  void ConvStep(Mat xbc, const int32_t* slots, const MixerDims& dims, float* conv_state, const TensorView& weight,
                const TensorView& bias, Mat out) override {
    Current();
    CHECK(xbc.cols == dims.conv_dim() && out.rows == xbc.rows && out.cols == xbc.cols);
    Mat in = xbc;
    if (!SameView(xbc, out) && MayOverlap(xbc, out)) in = Aside({xbc})[0];
    cuda::LaunchConvStep(ConvArgs(in, xbc.rows, 1, slots, dims, conv_state, weight, bias, out), stream_);
  }

  void SsdPrefill(const ScanInputs& in, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                  const MixerDims& dims, int64_t chunk_size, float* ssm_state, Mat y) override {
    Current();
    CHECK(in.x.rows == n_seqs * seq_len && y.rows == in.x.rows && y.cols == dims.d_inner);
    cuda_args::ScanParams p = ScanArgs(in, dims, slots, ssm_state, y, /*exact_alias_ok=*/false);
    p.n_seqs = n_seqs;
    p.seq_len = seq_len;
    const cuda_args::SsdLayout layout =
        cuda_args::PlanSsdScratch(n_seqs, seq_len, dims.n_heads, dims.head_dim, dims.d_state, dims.n_groups,
                                  chunk_size, scan_products_);
    void* base = ssd_scratch_.Ensure(layout.bytes, stream_);
    cuda::LaunchSsdPrefill(p, layout, cuda_args::CarveSsdScratch(base, layout), stream_);
  }

  void SsmStep(const ScanInputs& in, const int32_t* slots, const MixerDims& dims, float* ssm_state,
               Mat y) override {
    Current();
    CHECK(y.rows == in.x.rows && y.cols == dims.d_inner);
    cuda_args::ScanParams p = ScanArgs(in, dims, slots, ssm_state, y, /*exact_alias_ok=*/true);
    p.n_seqs = in.x.rows;
    p.seq_len = 1;
    cuda::LaunchSsmStep(p, stream_);
  }

  void GatedRmsNorm(Mat y, Mat z, const TensorView& weight, int64_t group_size, float eps, Mat out) override {
    Current();
    CheckGatedRmsNorm(y, z, weight, out);
    // Each thread reads y and z at the columns it writes; only a shifted overlap is unsafe.
    const bool y_bad = !SameView(y, out) && MayOverlap(y, out);
    const bool z_bad = !SameView(z, out) && MayOverlap(z, out);
    if (y_bad || z_bad) {
      std::vector<Mat> copies = Aside({y, z});
      y = copies[0];
      z = copies[1];
    }
    cuda::LaunchGatedRmsNorm(cuda_args::Act(y), cuda_args::Act(z), weight.as<float>(), group_size, eps, out.f32(),
                             out.ld, y.rows, y.cols, stream_);
  }

  void CopySlot(float* state, int64_t slot_size, int32_t from, int32_t to) override {
    Current();
    if (from == to || slot_size == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(state + int64_t(to) * slot_size, state + int64_t(from) * slot_size,
                               size_t(slot_size) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
  }

  void PickTokens(const float* logits, int64_t n_rows, int64_t ld, const PickParams& p, uint64_t* draw,
                  int32_t* out_ids) override {
    Current();
    CHECK(n_rows >= 0 && p.n_valid >= 1 && p.n_valid <= ld);
    cuda::LaunchPick(logits, ld, n_rows, p, draw, out_ids, stream_);
  }

  std::unique_ptr<Recording> Record(std::function<void()> ops) override {
    Current();
    if (!graphs_) return Backend::Record(std::move(ops));
    return std::make_unique<CudaRecording>(stream_, &scratch_generation_, std::move(ops));
  }

 protected:
  // Each queued read lands in its own slot of a pinned ring, its completion marked by an event.
  void StartRead(int slot, const void* src, size_t bytes) override {
    Current();
    CUDA_CHECK(cudaMemcpyAsync(read_ring_ + size_t(slot) * kMaxQueuedRead, src, bytes, cudaMemcpyDeviceToHost,
                               stream_));
    CUDA_CHECK(cudaEventRecord(read_events_[slot], stream_));
  }
  const void* FinishRead(int slot) override {
    CUDA_CHECK(cudaEventSynchronize(read_events_[slot]));
    return read_ring_ + size_t(slot) * kMaxQueuedRead;
  }

 private:
  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLAS' recommendation for Hopper
  static constexpr size_t kBounceBytes = 4096;

  // The current device is per host thread and starts as 0: another device is made current on
  // entry to each call (device 0 needs nothing, so the usual path makes no extra API call).
  void Current() const {
    if (device_ != 0) CUDA_CHECK(cudaSetDevice(device_));
    cuda::SetProgrammaticLaunch(pdl_);
  }

  cuda_args::ConvParams ConvArgs(Mat in, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                                 const MixerDims& dims, float* conv_state, const TensorView& weight,
                                 const TensorView& bias, Mat out) const {
    CHECK(weight.dtype == DType::F32 && weight.numel() == dims.conv_dim() * dims.d_conv);
    CHECK(bias.data == nullptr || (bias.dtype == DType::F32 && bias.numel() == dims.conv_dim()));
    return cuda_args::MakeConvParams(in, n_seqs, seq_len, slots, dims, conv_state, weight, bias, out);
  }

  // The conv step of the in_proj GEMV's epilogue over the columns conv_begin.. of out.
  cuda_args::GemvConv StepConvArgs(Mat out, int64_t conv_begin, int64_t rows, const int32_t* slots,
                                   const MixerDims& dims, float* conv_state, const TensorView& weight,
                                   const TensorView& bias, Mat conv_out) const {
    CHECK(conv_out.rows == rows && conv_begin >= 0 && conv_begin + dims.conv_dim() <= out.cols &&
          conv_out.cols == dims.conv_dim());
    // Each conv channel is read and written by the one thread that produced its input, so
    // conv_out may alias the conv columns exactly; any other overlap would be read after being written.
    CHECK(SameView(out.Cols(conv_begin, dims.conv_dim()), conv_out) || !MayOverlap(out, conv_out));
    cuda_args::GemvConv conv;
    conv.conv =
        ConvArgs(out.Cols(conv_begin, dims.conv_dim()), rows, 1, slots, dims, conv_state, weight, bias, conv_out);
    conv.begin = conv_begin;
    return conv;
  }

  // The shapes the norms take, whether they write rows or a packed GEMM operand.
  static void CheckRmsNorm(const Mat& x, const TensorView& weight, const Mat& out) {
    CHECK(weight.dtype == DType::F32 && out.rows == x.rows && out.cols == x.cols && weight.numel() == x.cols);
  }
  static void CheckGatedRmsNorm(const Mat& y, const Mat& z, const TensorView& weight, const Mat& out) {
    CHECK(z.rows == y.rows && z.cols == y.cols && out.rows == y.rows && out.cols == y.cols);
    CHECK(weight.dtype == DType::F32 && weight.numel() == y.cols);
  }

  // The dense 16-bit operand [rows, K] of a 16-bit GEMM (scratch, valid until the next product).
  uint16_t* HalfOperand(int64_t rows, int64_t K) {
    return static_cast<uint16_t*>(act_half_.Ensure(size_t(rows * K) * sizeof(uint16_t), stream_));
  }
  // out[rows, N] = xh [rows, K] (dense, w's format) @ w^T, fp32 sums; out fp32, or bf16 (rounded
  // once from the fp32 sums) with bf16 weights.
  void HalfGemm(const uint16_t* xh, int64_t rows, const TensorView& w, Mat out, bool accumulate) {
    const int64_t N = w.shape[0], K = w.shape[1];
    CHECK(N <= INT_MAX && K <= INT_MAX && rows <= INT_MAX && out.ld <= INT_MAX);
    CHECK_MSG(out.dtype == DType::F32 || (out.dtype == DType::BF16 && w.dtype == DType::BF16),
              std::string("cuda: a product with ") + DTypeName(w.dtype) + " weights cannot write " +
                  DTypeName(out.dtype));
    CHECK(!accumulate || out.dtype == DType::F32);
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    const cudaDataType half = w.dtype == DType::BF16 ? CUDA_R_16BF : CUDA_R_16F;
    const cudaDataType out_type = out.dtype == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
    CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(rows), int(K), &one, w.data, half,
                              int(K), xh, half, int(K), &beta, out.data, out_type, int(out.ld), CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
  }
  bool PacksForHalfGemm(const Mat& x, const TensorView& w) const { return cuda_args::PacksForHalfGemm(gemv_, x, w); }
  bool UsesGemv(const Mat& x, const TensorView& w) const { return cuda_args::UsesGemv(gemv_, x, w); }
  bool FusesNorm(const Mat& normed, const TensorView& w) const {
    return cuda_args::FusesNorm(gemv_, gemv_norms_, normed, w);
  }
  // The GEMV with the norm in its blocks: out = norm(...) @ w^T (+ out), normed only named for the checks.
  void GemvWithNorm(const cuda_args::GemvNorm& nm, const Mat& normed, const TensorView& w, Mat out, bool accumulate,
                    const cuda_args::GemvConv* conv) {
    const int64_t N = w.shape[0], K = w.shape[1];
    CHECK(normed.cols == K && out.cols == N && out.rows == normed.rows);
    cuda::LaunchGemv(normed.f32(), normed.rows, normed.ld, w.as<uint16_t>(), KernelDType(w.dtype), N, K,
                     cuda_args::Act(out), accumulate, conv, &nm, stream_);
  }

  // The scan's inputs; any that y may overwrite while still being read go aside first.
  // exact_alias_ok: the kernel reads each x element before writing the same y element.
  cuda_args::ScanParams ScanArgs(const ScanInputs& in, const MixerDims& dims, const int32_t* slots,
                                 float* ssm_state, Mat y, bool exact_alias_ok) {
    const int64_t gn = dims.n_groups * dims.d_state;
    CHECK(in.x.cols == dims.d_inner && in.B.cols == gn && in.C.cols == gn && in.dt.cols == dims.n_heads);
    CHECK(in.B.rows == in.x.rows && in.C.rows == in.x.rows && in.dt.rows == in.x.rows);
    CHECK(dims.n_groups > 0 && dims.n_heads % dims.n_groups == 0 && dims.d_inner == dims.n_heads * dims.head_dim);
    CHECK(in.dt_bias.dtype == DType::F32 && in.A_log.dtype == DType::F32 && in.D.dtype == DType::F32);
    Mat x = in.x, B = in.B, C = in.C, dt = in.dt;
    const bool x_bad = MayOverlap(x, y) && !(exact_alias_ok && SameView(x, y));
    if (x_bad || MayOverlap(B, y) || MayOverlap(C, y) || MayOverlap(dt, y)) {
      std::vector<Mat> copies = Aside({x, B, C, dt});
      x = copies[0];
      B = copies[1];
      C = copies[2];
      dt = copies[3];
    }
    return cuda_args::MakeScanParams(x, B, C, dt, in, dims, slots, ssm_state, y);
  }

  // Dense copies of views in the aside scratch (valid until the next Aside).
  std::vector<Mat> Aside(std::initializer_list<Mat> views) {
    auto bytes = [](const Mat& m) { return cuda_args::AlignUp(size_t(m.rows * m.cols) * DTypeSize(m.dtype), 256); };
    size_t total = 0;
    for (const Mat& m : views) total += bytes(m);
    char* base = static_cast<char*>(aside_.Ensure(total, stream_));
    std::vector<Mat> out;
    for (const Mat& m : views) {
      const size_t es = DTypeSize(m.dtype);
      if (m.rows > 0 && m.cols > 0)
        CUDA_CHECK(cudaMemcpy2DAsync(base, size_t(m.cols) * es, m.data, size_t(m.ld) * es, size_t(m.cols) * es,
                                     size_t(m.rows), cudaMemcpyDeviceToDevice, stream_));
      out.push_back(Mat{base, m.rows, m.cols, m.cols, m.dtype});
      base += bytes(m);
    }
    return out;
  }

  int device_;
  CudaMatMul mode_;
  bool graphs_;
  bool gemv_;
  bool gemv_norms_;
  bool pdl_;
  DType intermediates_;
  int scan_products_;
  std::string device_name_ = "cuda device";
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* workspace_ = nullptr;
  void* bounce_ = nullptr;  // [kBounceBytes] pinned host memory for small reads
  unsigned char* read_ring_ = nullptr;  // [kQueuedReads, kMaxQueuedRead] pinned, for QueueRead
  cudaEvent_t read_events_[kQueuedReads] = {};
  uint64_t scratch_generation_ = 0;
  Scratch ssd_scratch_{&scratch_generation_}, act_half_{&scratch_generation_}, aside_{&scratch_generation_};
  std::mutex mu_;
  std::vector<void*> owned_;  // prepared weights
};

}  // namespace

const char* CudaMatMulName(CudaMatMul m) {
  switch (m) {
    case CudaMatMul::kFp32: return "fp32";
    case CudaMatMul::kTf32: return "tf32";
    case CudaMatMul::kBf16: return "bf16";
    case CudaMatMul::kFp16: return "fp16";
  }
  return "?";
}

Result<CudaMatMul> ParseCudaMatMul(const std::string& s) {
  if (s == "fp32") return CudaMatMul::kFp32;
  if (s == "tf32") return CudaMatMul::kTf32;
  if (s == "bf16") return CudaMatMul::kBf16;
  if (s == "fp16") return CudaMatMul::kFp16;
  return Status::Error("CUDA matmul mode '" + s + "' is not one of fp32, tf32, bf16, fp16");
}

Result<CudaBackendOptions> CudaOptionsFromEnv() {
  CudaBackendOptions o;
  if (const char* m = std::getenv("MAMBA2_CUDA_MATMUL"); m && *m) {
    Result<CudaMatMul> mode = ParseCudaMatMul(m);
    if (!mode.ok()) return mode.status().With("MAMBA2_CUDA_MATMUL");
    o.matmul = *mode;
  }
  if (const char* d = std::getenv("MAMBA2_CUDA_DEVICE"); d && *d) {
    char* end = nullptr;
    const long v = std::strtol(d, &end, 10);
    if (*end != '\0' || v < 0 || v > 1024)
      return Status::Error(std::string("MAMBA2_CUDA_DEVICE: '") + d + "' is not a device index");
    o.device = int(v);
  }
  for (auto [name, flag] : {std::pair{"MAMBA2_CUDA_GRAPHS", &o.graphs}, std::pair{"MAMBA2_CUDA_GEMV", &o.gemv},
                            std::pair{"MAMBA2_CUDA_GEMV_NORMS", &o.gemv_norms},
                            std::pair{"MAMBA2_CUDA_PDL", &o.programmatic_launch},
                            std::pair{"MAMBA2_CUDA_BF16_INTERMEDIATES", &o.bf16_intermediates},
                            std::pair{"MAMBA2_CUDA_BF16_SCAN", &o.bf16_scan}}) {
    const char* g = std::getenv(name);
    if (!g || !*g) continue;
    const std::string v = g;
    if (v != "0" && v != "1") return Status::Error(std::string(name) + ": '" + v + "' is not 0 or 1");
    *flag = v == "1";
  }
  return o;
}

std::unique_ptr<Backend> MakeCudaBackend(const CudaBackendOptions& options) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count <= 0) {
    cudaGetLastError();  // no driver or no GPU: not an error for the caller, just no backend
    return nullptr;
  }
  if (options.device < 0 || options.device >= count) {
    std::fprintf(stderr, "cuda: device %d requested, but %d device(s) present\n", options.device, count);
    return nullptr;
  }
  auto backend = std::make_unique<CudaBackend>(options);
  const Status st = backend->Init();
  if (!st.ok()) {
    std::fprintf(stderr, "cuda: device %d unusable: %s\n", options.device, st.message().c_str());
    return nullptr;
  }
  return backend;
}

std::unique_ptr<Backend> MakeCudaBackend() {
  Result<CudaBackendOptions> options = CudaOptionsFromEnv();
  if (!options.ok()) {
    std::fprintf(stderr, "%s; using fp32 on device 0\n", options.status().message().c_str());
    return MakeCudaBackend(CudaBackendOptions{});
  }
  return MakeCudaBackend(*options);
}

}  // namespace mamba2
