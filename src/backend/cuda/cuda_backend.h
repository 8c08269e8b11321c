// Options of the CUDA backend beyond the plain MakeCudaBackend() of backend/backend.h.
// Only in builds with MAMBA2_HAVE_CUDA (the header itself needs no CUDA toolkit).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "core/status.h"

namespace mamba2 {

// How MatMul multiplies. Activations are fp32, except that bf16 mode keeps the mixer's
// intermediates in bf16 (see CudaBackendOptions::bf16_intermediates).
enum class CudaMatMul {
  kFp32,  // fp32 weights (converted once), fp32 GEMM without TF32: matches ref to ~1e-6
  kTf32,  // fp32 weights, TF32 tensor-core GEMM with fp32 accumulation
  kBf16,  // bf16 weights (converted once), activations rounded to bf16 per GEMM (not by the
          // decode GEMV of <= 8 rows, which multiplies them as they are), fp32 accumulation
  kFp16,  // the same with fp16 (10-bit mantissa, range to 65504)
};

struct CudaBackendOptions {
  int device = 0;
  CudaMatMul matmul = CudaMatMul::kFp32;
  bool graphs = true;  // false: Record re-issues the ops (to measure what the graphs save)
  bool gemv = true;    // 16-bit modes: decode-sized products (<= 8 rows) by gemv.cuh, not cuBLAS
  // With gemv: the norm ahead of such a product computed by the product's kernel itself (three
  // kernels per layer in a decode step instead of five). false: a norm kernel of its own.
  bool gemv_norms = true;
  // sm_90+: each kernel may start while the one ahead of it finishes (programmatic dependent
  // launch), hiding the gaps between a decode step's small kernels. Off until measured.
  bool programmatic_launch = false;
  // bf16 mode: in_proj's output, the conv output and the scan output stored in bf16 (rounded
  // once where written, fp32 arithmetic everywhere), as mamba_ssm's bf16 models keep them; they
  // are most of the bytes a prefill moves between kernels. false: fp32 (to measure the saving).
  bool bf16_intermediates = true;
  // bf16 mode: the chunked scan's tensor-core products take bf16 operands (as mamba_ssm's bf16
  // kernels do), twice the tensor rate of TF32 and half the shared-memory bytes. false: TF32.
  bool bf16_scan = true;
};

const char* CudaMatMulName(CudaMatMul m);
Result<CudaMatMul> ParseCudaMatMul(const std::string& s);  // "fp32" | "tf32" | "bf16" | "fp16"

// From the environment: MAMBA2_CUDA_MATMUL (fp32|tf32|bf16|fp16, default fp32),
// MAMBA2_CUDA_DEVICE (default 0), MAMBA2_CUDA_GRAPHS, MAMBA2_CUDA_GEMV, MAMBA2_CUDA_GEMV_NORMS,
// MAMBA2_CUDA_BF16_INTERMEDIATES and MAMBA2_CUDA_BF16_SCAN (1 default, 0 off), MAMBA2_CUDA_PDL (0
// default, 1 on).
// An unparsable value is an error naming the variable.
Result<CudaBackendOptions> CudaOptionsFromEnv();

// The read bandwidth decode is compared with: the best of `reps` timed passes of a kernel that
// reads and sums `bytes` of device memory, and the nominal figure from the memory clock and bus
// width (what the vendor quotes).
struct CudaMemoryBandwidth {
  std::string device;
  double read_bytes_per_s = 0;
  double nominal_bytes_per_s = 0;
  // Dense bf16 tensor-core peak at the maximum SM clock, from the architecture's FLOP per clock
  // per SM (Hopper sm_90: 4096); 0 for architectures not listed. What MFU is quoted against.
  double nominal_bf16_flops_per_s = 0;
};
Result<CudaMemoryBandwidth> MeasureCudaReadBandwidth(int device, size_t bytes, int reps);

// nullptr when no usable device exists (no driver, no GPU, device index out of range) or the
// CUDA runtime / cuBLAS cannot be initialised; prints nothing when there is simply no GPU.
std::unique_ptr<Backend> MakeCudaBackend(const CudaBackendOptions& options);

}  // namespace mamba2
