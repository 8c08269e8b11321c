// The fake CUDA device's cuBLAS (see fake_runtime.cpp): the handle calls and cublasGemmEx, which
// checks its arguments as cuBLAS documents (leading dimensions, the type and compute-type
// combinations it supports, operands in device memory) and queues the column-major product
// C = alpha op(A) op(B) + beta C with fp32 sums on the handle's stream; operands are read as
// TF32 where the compute type (or the handle's math mode) asks for it, and beta = 0 does not
// read C, as in cuBLAS.
#include <cublas_v2.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "core/float_bits.h"
#include "fake_cuda/fake_device.h"

using mamba2::fake_cuda::Enqueue;
using mamba2::fake_cuda::IsDeviceMemory;

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  void* workspace = nullptr;
};

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, size_t bytes) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (bytes > 0 && !IsDeviceMemory(workspace, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
  handle->workspace = workspace;
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}
const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
  }
  return "unknown";
}

namespace {

float ReadElem(const void* p, cudaDataType t, size_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_16BF: return mamba2::BF16ToF32(static_cast<const uint16_t*>(p)[i]);
    case CUDA_R_16F: return mamba2::F16ToF32(static_cast<const uint16_t*>(p)[i]);
  }
  return 0.0f;
}
void WriteElem(void* p, cudaDataType t, size_t i, float v) {
  switch (t) {
    case CUDA_R_32F: static_cast<float*>(p)[i] = v; return;
    case CUDA_R_16BF: static_cast<uint16_t*>(p)[i] = mamba2::F32ToBF16(v); return;
    case CUDA_R_16F: static_cast<uint16_t*>(p)[i] = mamba2::F32ToF16(v); return;
  }
}
size_t ElemBytes(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

// fp32 rounded to TF32 (10 mantissa bits), to nearest even, as the tensor cores read it.
float ToTf32(float v) {
  uint32_t u = mamba2::F32ToBits(v);
  if ((u & 0x7f800000u) == 0x7f800000u) return v;
  u += 0xfffu + ((u >> 13) & 1u);
  return mamba2::BitsToF32(u & ~0x1fffu);
}

}  // namespace

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t /*algo*/) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if ((transa != CUBLAS_OP_N && transa != CUBLAS_OP_T) || (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T))
    return CUBLAS_STATUS_INVALID_VALUE;
  const int a_rows = transa == CUBLAS_OP_N ? m : k, a_cols = transa == CUBLAS_OP_N ? k : m;
  const int b_rows = transb == CUBLAS_OP_N ? k : n, b_cols = transb == CUBLAS_OP_N ? n : k;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m)) {
    std::fprintf(stderr, "fake cublas: GemmEx m=%d n=%d k=%d lda=%d ldb=%d ldc=%d: a leading dimension is too small\n",
                 m, n, k, lda, ldb, ldc);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  // The type combinations cublasGemmEx supports for these compute types.
  bool supported = false;
  bool tf32 = false;
  if (computeType == CUBLAS_COMPUTE_32F) {
    supported = (Atype == CUDA_R_32F && Btype == CUDA_R_32F && Ctype == CUDA_R_32F) ||
                (Atype == CUDA_R_16BF && Btype == CUDA_R_16BF && (Ctype == CUDA_R_16BF || Ctype == CUDA_R_32F)) ||
                (Atype == CUDA_R_16F && Btype == CUDA_R_16F && (Ctype == CUDA_R_16F || Ctype == CUDA_R_32F));
    tf32 = Atype == CUDA_R_32F && handle->math == CUBLAS_TF32_TENSOR_OP_MATH;
  } else if (computeType == CUBLAS_COMPUTE_32F_FAST_TF32) {
    supported = Atype == CUDA_R_32F && Btype == CUDA_R_32F && Ctype == CUDA_R_32F;
    tf32 = true;
  }
  if (!supported) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  auto span = [](int ld, int cols, int rows, cudaDataType t) {
    return (size_t(ld) * size_t(cols - 1) + size_t(rows)) * ElemBytes(t);
  };
  const bool a_ok = k == 0 || IsDeviceMemory(A, span(lda, a_cols, a_rows, Atype));
  const bool b_ok = k == 0 || IsDeviceMemory(B, span(ldb, b_cols, b_rows, Btype));
  if (!a_ok || !b_ok || !IsDeviceMemory(C, span(ldc, n, m, Ctype))) {
    std::fprintf(stderr, "fake cublas: GemmEx operand not in device memory\n");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  // Host pointer mode: the scalars are read now.
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  Enqueue(handle->stream,
          [=] {
            std::vector<float> a(size_t(m) * size_t(k)), b(size_t(k) * size_t(n));  // op(A) row-major, op(B) col-major
            for (int i = 0; i < m; ++i)
              for (int l = 0; l < k; ++l) {
                const float v = ReadElem(A, Atype, transa == CUBLAS_OP_N ? size_t(i) + size_t(l) * lda
                                                                         : size_t(l) + size_t(i) * lda);
                a[size_t(i) * k + l] = tf32 ? ToTf32(v) : v;
              }
            for (int j = 0; j < n; ++j)
              for (int l = 0; l < k; ++l) {
                const float v = ReadElem(B, Btype, transb == CUBLAS_OP_N ? size_t(l) + size_t(j) * ldb
                                                                         : size_t(j) + size_t(l) * ldb);
                b[size_t(j) * k + l] = tf32 ? ToTf32(v) : v;
              }
            for (int j = 0; j < n; ++j)
              for (int i = 0; i < m; ++i) {
                float acc = 0.0f;
                const float* ar = a.data() + size_t(i) * k;
                const float* bc = b.data() + size_t(j) * k;
                for (int l = 0; l < k; ++l) acc += ar[l] * bc[l];
                const size_t ci = size_t(i) + size_t(j) * ldc;
                const float prior = be != 0.0f ? be * ReadElem(C, Ctype, ci) : 0.0f;  // beta 0: C not read
                WriteElem(C, Ctype, ci, al * acc + prior);
              }
          },
          "gemm");
  return CUBLAS_STATUS_SUCCESS;
}
