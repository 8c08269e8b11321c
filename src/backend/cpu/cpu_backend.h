// Options of the cpu backend beyond the plain MakeCpuBackend(n_threads) of backend/backend.h.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "core/status.h"

namespace mamba2 {

// How prefill matmuls multiply. Everything else (norms, conv, scan, recurrent state, the
// residual stream) is fp32 in every mode, and decode matmuls always multiply in fp32 (they
// are bound by reading the weights, not by arithmetic).
enum class CpuMatMul {
  // fp32 GEMM. Weights stay in their stored dtype (f16/bf16 widen exactly to fp32 as they
  // are read), so results do not depend on the storage dtype's width beyond its rounding.
  kFp32,
  // bf16 x bf16 -> fp32 GEMM (oneDNN: AVX512-BF16 or AMX where the CPU has them; elsewhere the
  // same bf16 values through the fp32 GEMM, same results, no speed-up). Weight
  // matrices are bf16 (used as stored, or rounded once when prepared); activations are
  // rounded to bf16 only as they enter a prefill matmul. Decode reads the same bf16 weights.
  kBf16,
};

struct CpuBackendOptions {
  int n_threads = 0;  // <= 0: all cores
  CpuMatMul matmul = CpuMatMul::kFp32;
};

const char* CpuMatMulName(CpuMatMul m);            // "f32" | "bf16"
Result<CpuMatMul> ParseCpuMatMul(const std::string& s);  // "f32" ("fp32") | "bf16"

std::unique_ptr<Backend> MakeCpuBackend(const CpuBackendOptions& options);

}  // namespace mamba2
