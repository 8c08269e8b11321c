// src/backend/cuda/probe.cu compiled for the fake device. Its kernels live in namespace mamba2,
// not in the kernel namespace, and name the emulator's threadIdx and __syncthreads from there.
#include "fake_cuda/fake_launch.h"

namespace mamba2 {
using namespace ::mamba2::cuda_emu;
}  // namespace mamba2

#include "backend/cuda/probe.cu"
