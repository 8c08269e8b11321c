// The CUDA backend options the device tests start from: the environment's (MAMBA2_CUDA_PDL,
// MAMBA2_CUDA_GEMV, MAMBA2_CUDA_GRAPHS, MAMBA2_CUDA_DEVICE), so that scripts/gpu_check.sh can run
// the same tests again with a feature switched; each test then sets the matmul mode it checks.
#pragma once

namespace mamba2 {

// Whether the device the tests get is the fake one of tests/fake_cuda (test_fake_cuda), where the
// kernels run in the host emulator: tests then skip the largest of their device-only shapes.
#if defined(M2_FAKE_CUDA_RUNTIME)
inline constexpr bool kFakeDevice = true;
#else
inline constexpr bool kFakeDevice = false;
#endif

}  // namespace mamba2

#if defined(MAMBA2_HAVE_CUDA)
#include <cstdio>

#include "backend/cuda/cuda_backend.h"

namespace mamba2 {

inline CudaBackendOptions TestCudaOptions() {
  Result<CudaBackendOptions> o = CudaOptionsFromEnv();
  if (!o.ok()) {
    std::fprintf(stderr, "%s; testing with the default options\n", o.status().message().c_str());
    return CudaBackendOptions{};
  }
  CudaBackendOptions r = *o;
  r.matmul = CudaMatMul::kFp32;
  return r;
}

}  // namespace mamba2
#endif
