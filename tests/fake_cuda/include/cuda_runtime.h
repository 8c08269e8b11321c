// The fake CUDA device (see cuda_runtime_api.h), with cuda_runtime.h's typed overloads. Kernel
// sources get the kernel language from fake_launch.h, not from here.
#pragma once

#include <cuda_runtime_api.h>

template <class T>
cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  return ::cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
template <class T>
cudaError_t cudaMallocHost(T** ptr, size_t bytes) {
  return ::cudaMallocHost(reinterpret_cast<void**>(ptr), bytes);
}
