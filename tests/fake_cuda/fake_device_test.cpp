// The fake CUDA device itself: that it keeps the rules a GPU keeps (and that the CUDA backend's
// tests on it therefore mean something): queued work runs only when waited for, device memory is
// out of the host's reach, captures replay with their captured arguments and refuse what a
// capture refuses, and cublasGemmEx is the column-major product cuBLAS documents.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/float_bits.h"
#include "fake_cuda/fake_device.h"

namespace mamba2 {
namespace {

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { EXPECT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess); }
  ~Stream() { cudaStreamDestroy(s); }
};

template <typename T>
T* DeviceAlloc(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}
template <typename T>
T* PinnedAlloc(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMallocHost(&p, n * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

TEST(FakeCuda, QueuedCopiesRunWhenTheHostWaits) {
  Stream st;
  const std::vector<float> src = {1, 2, 3, 4};
  float* d = DeviceAlloc<float>(4);
  float* h = PinnedAlloc<float>(4);
  std::memset(h, 0, 4 * sizeof(float));
  ASSERT_EQ(cudaMemcpyAsync(d, src.data(), 16, cudaMemcpyHostToDevice, st.s), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(h, d, 16, cudaMemcpyDeviceToHost, st.s), cudaSuccess);
  EXPECT_EQ(h[3], 0.0f) << "a pinned read must not land before the host waits";
  ASSERT_EQ(cudaStreamSynchronize(st.s), cudaSuccess);
  EXPECT_EQ(h[3], 4.0f);
  // A copy into pageable memory is complete on return, as the driver makes it.
  std::vector<float> back(4, 0.0f);
  ASSERT_EQ(cudaMemcpyAsync(back.data(), d, 16, cudaMemcpyDeviceToHost, st.s), cudaSuccess);
  EXPECT_EQ(back, src);
  cudaFreeHost(h);
  cudaFree(d);
}

TEST(FakeCuda, PageableSourcesAreStagedPinnedOnesReadWhenTheCopyRuns) {
  Stream st;
  std::vector<float> pageable = {5, 6};
  float* pinned = PinnedAlloc<float>(2);
  pinned[0] = 7;
  pinned[1] = 8;
  float* d = DeviceAlloc<float>(4);
  ASSERT_EQ(cudaMemcpyAsync(d, pageable.data(), 8, cudaMemcpyHostToDevice, st.s), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(d + 2, pinned, 8, cudaMemcpyHostToDevice, st.s), cudaSuccess);
  pageable[0] = -1;  // the caller may reuse a pageable buffer at once
  pinned[0] = -2;    // a pinned one is read by the copy, later
  std::vector<float> back(4);
  ASSERT_EQ(cudaMemcpyAsync(back.data(), d, 16, cudaMemcpyDeviceToHost, st.s), cudaSuccess);
  EXPECT_EQ(back, (std::vector<float>{5, 6, -2, 8}));
  cudaFreeHost(pinned);
  cudaFree(d);
}

TEST(FakeCuda, CopyDirectionsAreChecked) {
  Stream st;
  float* d = DeviceAlloc<float>(4);
  std::vector<float> h(4);
  EXPECT_EQ(cudaMemcpyAsync(d, h.data(), 16, cudaMemcpyDeviceToHost, st.s), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpyAsync(h.data(), d, 16, cudaMemcpyDeviceToDevice, st.s), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  cudaFree(d);
}

TEST(FakeCudaDeathTest, HostTouchingDeviceMemoryDies) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        float* d = DeviceAlloc<float>(16);
        volatile float v = d[3];
        (void)v;
      },
      "host touched device memory at .* \\(offset 12 of a 64-byte cudaMalloc allocation\\)");
}

TEST(FakeCuda, CaptureRefusesAllocationAndPageableCopies) {
  Stream st;
  cudaGraph_t g = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 64), cudaErrorStreamCaptureUnsupported);
  cudaStreamCaptureStatus status{};
  ASSERT_EQ(cudaStreamIsCapturing(st.s, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusInvalidated);
  EXPECT_EQ(cudaStreamEndCapture(st.s, &g), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(g, nullptr);

  float* d = DeviceAlloc<float>(2);
  const std::vector<float> h = {1, 2};
  ASSERT_EQ(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  EXPECT_EQ(cudaMemcpyAsync(d, h.data(), 8, cudaMemcpyHostToDevice, st.s), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamSynchronize(st.s), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamEndCapture(st.s, &g), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeThreadLocal), cudaErrorStreamCaptureUnsupported);
  cudaGetLastError();
  cudaFree(d);
}

// A graph replays its work with the arguments of the capture; pinned memory it reads is read at
// each replay; nothing captured runs before a launch.
TEST(FakeCuda, GraphsReplayCapturedWork) {
  Stream st;
  float* d = DeviceAlloc<float>(2);
  float* pinned = PinnedAlloc<float>(1);
  float* out = PinnedAlloc<float>(2);
  pinned[0] = 1;
  ASSERT_EQ(cudaMemsetAsync(d, 0, 8, st.s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(st.s), cudaSuccess);
  float value = 10;
  cudaGraph_t g = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(st.s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  fake_cuda::Enqueue(st.s, [d, v = value] { d[1] += v; }, "kernel");
  ASSERT_EQ(cudaMemcpyAsync(d, pinned, 4, cudaMemcpyHostToDevice, st.s), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(out, d, 8, cudaMemcpyDeviceToHost, st.s), cudaSuccess);
  ASSERT_EQ(cudaStreamEndCapture(st.s, &g), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, g, 0), cudaSuccess);
  cudaGraphDestroy(g);
  ASSERT_EQ(cudaStreamSynchronize(st.s), cudaSuccess);
  value = 1000;  // not what the graph captured
  const uint64_t launches = fake_cuda::GetCounters().graph_launches;
  for (int i = 1; i <= 3; ++i) {
    pinned[0] = float(i);
    ASSERT_EQ(cudaGraphLaunch(exec, st.s), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(st.s), cudaSuccess);
    EXPECT_EQ(out[0], float(i));
    EXPECT_EQ(out[1], 10.0f * float(i));
  }
  EXPECT_EQ(fake_cuda::GetCounters().graph_launches, launches + 3);
  cudaGraphExecDestroy(exec);
  cudaFreeHost(out);
  cudaFreeHost(pinned);
  cudaFree(d);
}

TEST(FakeCuda, EventsCompleteWithTheWorkAheadOfThem) {
  Stream st;
  cudaEvent_t a = nullptr, b = nullptr, untimed = nullptr;
  ASSERT_EQ(cudaEventCreate(&a), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&b), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&untimed, cudaEventDisableTiming), cudaSuccess);
  float* d = DeviceAlloc<float>(1);
  float* h = PinnedAlloc<float>(1);
  h[0] = 3;
  float* back = PinnedAlloc<float>(1);
  back[0] = 0;
  ASSERT_EQ(cudaEventRecord(a, st.s), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(d, h, 4, cudaMemcpyHostToDevice, st.s), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(back, d, 4, cudaMemcpyDeviceToHost, st.s), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(b, st.s), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(untimed, st.s), cudaSuccess);
  float ms = 0;
  EXPECT_EQ(cudaEventElapsedTime(&ms, a, b), cudaErrorNotReady);
  ASSERT_EQ(cudaEventSynchronize(b), cudaSuccess);
  EXPECT_EQ(back[0], 3.0f);
  EXPECT_EQ(cudaEventElapsedTime(&ms, a, b), cudaSuccess);
  EXPECT_GE(ms, 0.0f);
  EXPECT_EQ(cudaEventElapsedTime(&ms, a, untimed), cudaErrorInvalidResourceHandle);
  cudaGetLastError();
  for (cudaEvent_t e : {a, b, untimed}) cudaEventDestroy(e);
  cudaFreeHost(back);
  cudaFreeHost(h);
  cudaFree(d);
}

// ---- cuBLAS ------------------------------------------------------------------------------

// Column-major element (r, c) of op(M) for M stored with leading dimension ld.
double OpAt(const std::vector<float>& m, bool trans, int ld, int r, int c) {
  return trans ? m[size_t(c) + size_t(r) * ld] : m[size_t(r) + size_t(c) * ld];
}

TEST(FakeCublas, GemmExIsTheColumnMajorProductForEveryTransposition) {
  Stream st;
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasSetStream(h, st.s), CUBLAS_STATUS_SUCCESS);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  const int m = 5, n = 3, k = 7;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
      const int lda = a_rows + 2, ldb = b_rows + 1, ldc = m + 3;  // padded leading dimensions
      std::vector<float> A(size_t(lda) * a_cols), B(size_t(ldb) * b_cols), C(size_t(ldc) * n);
      for (auto* v : {&A, &B, &C})
        for (float& e : *v) e = nd(rng);
      float *dA = DeviceAlloc<float>(A.size()), *dB = DeviceAlloc<float>(B.size()), *dC = DeviceAlloc<float>(C.size());
      cudaMemcpyAsync(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice, st.s);
      cudaMemcpyAsync(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice, st.s);
      cudaMemcpyAsync(dC, C.data(), C.size() * 4, cudaMemcpyHostToDevice, st.s);
      const float alpha = 0.5f, beta = 2.0f;
      ASSERT_EQ(cublasGemmEx(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, dA,
                             CUDA_R_32F, lda, dB, CUDA_R_32F, ldb, &beta, dC, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT),
                CUBLAS_STATUS_SUCCESS);
      std::vector<float> got(C.size());
      cudaMemcpyAsync(got.data(), dC, C.size() * 4, cudaMemcpyDeviceToHost, st.s);
      for (int j = 0; j < n; ++j)
        for (int i = 0; i < ldc; ++i) {
          const size_t ci = size_t(i) + size_t(j) * ldc;
          if (i >= m) {
            EXPECT_EQ(got[ci], C[ci]) << "padding written";
            continue;
          }
          double want = 0;
          for (int l = 0; l < k; ++l) want += OpAt(A, ta, lda, i, l) * OpAt(B, tb, ldb, l, j);
          want = alpha * want + beta * C[ci];
          EXPECT_NEAR(got[ci], want, 1e-5 * (1 + std::fabs(want))) << ta << tb << " " << i << "," << j;
        }
      cudaFree(dA);
      cudaFree(dB);
      cudaFree(dC);
    }
  cublasDestroy(h);
}

TEST(FakeCublas, HalfOperandsAndRoundedOutput) {
  Stream st;
  cublasHandle_t h = nullptr;
  ASSERT_EQ(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasSetStream(h, st.s), CUBLAS_STATUS_SUCCESS);
  const int m = 4, n = 2, k = 3;
  std::vector<uint16_t> A(m * k), B(k * n);
  std::vector<float> Af(m * k), Bf(k * n);
  for (int i = 0; i < m * k; ++i) A[size_t(i)] = F32ToBF16(0.3f * float(i) - 1.1f), Af[size_t(i)] = BF16ToF32(A[size_t(i)]);
  for (int i = 0; i < k * n; ++i) B[size_t(i)] = F32ToBF16(0.7f * float(i) + 0.13f), Bf[size_t(i)] = BF16ToF32(B[size_t(i)]);
  auto* dA = DeviceAlloc<uint16_t>(A.size());
  auto* dB = DeviceAlloc<uint16_t>(B.size());
  auto* dC = DeviceAlloc<uint16_t>(size_t(m * n));
  cudaMemcpyAsync(dA, A.data(), A.size() * 2, cudaMemcpyHostToDevice, st.s);
  cudaMemcpyAsync(dB, B.data(), B.size() * 2, cudaMemcpyHostToDevice, st.s);
  const float one = 1, zero = 0;
  ASSERT_EQ(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_16BF, m, dB, CUDA_R_16BF, k, &zero,
                         dC, CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
  std::vector<uint16_t> got(size_t(m * n));
  cudaMemcpyAsync(got.data(), dC, got.size() * 2, cudaMemcpyDeviceToHost, st.s);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      double want = 0;
      for (int l = 0; l < k; ++l) want += double(Af[size_t(i + l * m)]) * Bf[size_t(l + j * k)];
      EXPECT_EQ(got[size_t(i + j * m)], F32ToBF16(float(want))) << i << "," << j;
    }
  // What cuBLAS refuses: a leading dimension below the rows, TF32 compute on bf16, host operands.
  EXPECT_EQ(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_16BF, m - 1, dB, CUDA_R_16BF, k,
                         &zero, dC, CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_16BF, k - 1, dB, CUDA_R_16BF, k,
                         &zero, dC, CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_INVALID_VALUE);  // op T: A is stored k x m, so lda >= k
  EXPECT_EQ(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, dA, CUDA_R_16BF, m, dB, CUDA_R_16BF, k, &zero,
                         dC, CUDA_R_16BF, m, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, A.data(), CUDA_R_16BF, m, dB, CUDA_R_16BF, k,
                         &zero, dC, CUDA_R_16BF, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_INVALID_VALUE);
  cudaFree(dA);
  cudaFree(dB);
  cudaFree(dC);
  cublasDestroy(h);
}

}  // namespace
}  // namespace mamba2
