// Error checking for CUDA runtime and cuBLAS calls. A failing call inside an op is a bug or a
// lost device, not bad input, so it aborts with the call, the error name and the place.
#pragma once

#include <cstdio>
#include <cstdlib>

#include <cuda_runtime_api.h>

namespace mamba2::cuda {

inline void CheckCuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "CUDA error at %s:%d: %s: %s (%s)\n", file, line, what, cudaGetErrorName(e),
               cudaGetErrorString(e));
  std::abort();
}

}  // namespace mamba2::cuda

#define CUDA_CHECK(expr) ::mamba2::cuda::CheckCuda((expr), #expr, __FILE__, __LINE__)
