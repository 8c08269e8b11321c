// The fake CUDA device: what the kernel launches of fake_launch.h and the tests of the fake
// itself reach beyond CUDA's own API (include/*.h). See fake_runtime.cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace mamba2::fake_cuda {

// Queues `run` on `stream` (into its graph while it is being captured), as a kernel launch or
// an async copy is queued: it runs when the host waits for it, not before.
void Enqueue(cudaStream_t stream, std::function<void()> run, const char* what);

// A kernel's pointer argument must be null or point into device or pinned host memory, as
// on a GPU; anything else aborts naming the kernel argument.
void CheckKernelPointer(const void* p, int arg_index);

// Whether [p, p + bytes) lies in device memory (one cudaMalloc allocation); an access that starts
// in an allocation and runs past its end aborts.
bool IsDeviceMemory(const void* p, size_t bytes);

// What the device has done so far (this process).
struct Counters {
  uint64_t kernels = 0;          // kernel launches run
  uint64_t gemms = 0;            // cublasGemmEx calls run
  uint64_t graph_launches = 0;   // cudaGraphLaunch calls
  uint64_t captures = 0;         // captures ended with a usable graph
  uint64_t host_waits = 0;       // times the host waited for queued work
};
Counters GetCounters();

}  // namespace mamba2::fake_cuda
