// What the kernel sources (*.cuh) expect from the compiler that builds them, for nvcc: the
// launch, unroll and inlining macros. The host emulator in tests/cuda/cuda_emu.h defines the
// same names, so the very same kernel text can also run (slowly) on a machine without a GPU.
#pragma once

#include <cuda_runtime.h>

#include "backend/cuda/cuda_check.h"

#define M2_HD __host__ __device__ __forceinline__
#define M2_DEVICE __device__ __forceinline__
#define M2_UNROLL _Pragma("unroll")
// Every launch is checked at once: a bad configuration names its kernel and line.
#define M2_LAUNCH(kernel, grid, block, stream, ...)         \
  do {                                                      \
    kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__);  \
    CUDA_CHECK(cudaGetLastError());                         \
  } while (0)
