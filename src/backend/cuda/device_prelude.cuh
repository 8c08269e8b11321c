// What the kernel sources (*.cuh) expect from the compiler that builds them, for nvcc: the
// launch, unroll and inlining macros. The host emulator in tests/cuda/cuda_emu.h defines the
// same names, so the very same kernel text can also run (slowly) on a machine without a GPU.
#pragma once

#include <cuda_runtime.h>

#include <atomic>

#include "backend/cuda/cuda_check.h"

#define M2_HD __host__ __device__ __forceinline__
#define M2_DEVICE __device__ __forceinline__
#define M2_UNROLL _Pragma("unroll")
// A kernel that must fit `blocks` blocks of `threads` per SM: the register cap that follows.
#define M2_LAUNCH_BOUNDS(threads, blocks) __launch_bounds__(threads, blocks)
namespace mamba2::cuda {

// Whether launches from this host thread may start before the kernel ahead of them on the stream
// has finished (Hopper's programmatic dependent launch): set by the backend on entry to each op.
bool ProgrammaticLaunch();

// Every launch is checked at once: a bad configuration names its kernel and line.
template <typename... KArgs, typename... Args>
void LaunchKernel(void (*kernel)(KArgs...), dim3 grid, dim3 block, cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.stream = stream;
  cudaLaunchAttribute attr = {};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  if (ProgrammaticLaunch()) {
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
  }
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...));
}

// How many blocks of `kernel` (block_threads each, static shared memory only) the current device
// runs at once: the grid of a kernel that loops over its work. Asked once per kernel and device.
template <typename... KArgs>
int ResidentBlocks(void (*kernel)(KArgs...), int block_threads) {
  static std::atomic<int> cached[64] = {};
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  std::atomic<int>& c = cached[dev & 63];
  if (c.load() == 0) {
    int sms = 0, per_sm = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, block_threads, 0));
    c.store(sms * per_sm > 0 ? sms * per_sm : 1);
  }
  return c.load();
}

}  // namespace mamba2::cuda

#define M2_LAUNCH(kernel, grid, block, stream, ...) \
  ::mamba2::cuda::LaunchKernel(kernel, (grid), (block), (stream), __VA_ARGS__)

// The first statement of every kernel. Under a programmatic launch a kernel may start while the
// one before it still runs: it lets the next one start too (its blocks are placed once all of
// this kernel's have been), then waits until everything before it has finished and its writes
// are visible. Without such a launch (or before sm_90) the wait returns at once.
//
// M2_GRID_DEPENDENCY_AFTER_PREFETCH(p, bytes) first asks L2 to fetch `bytes` from p (16-byte
// aligned, a multiple of 16 bytes; null for none), data no kernel writes such as weights: under
// a programmatic launch the fetch overlaps the end of the kernel ahead.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define M2_GRID_DEPENDENCY() asm volatile("griddepcontrol.launch_dependents;\n\tgriddepcontrol.wait;" ::: "memory")
#define M2_GRID_DEPENDENCY_AFTER_PREFETCH(p, bytes)                                                       \
  do {                                                                                                    \
    const void* m2_prefetch_ = (p);                                                                       \
    if (m2_prefetch_)                                                                                     \
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(__cvta_generic_to_global(m2_prefetch_)), \
                   "r"(unsigned(bytes))                                                                   \
                   : "memory");                                                                           \
    M2_GRID_DEPENDENCY();                                                                                 \
  } while (0)
#else
#define M2_GRID_DEPENDENCY() \
  do {                       \
  } while (0)
#define M2_GRID_DEPENDENCY_AFTER_PREFETCH(p, bytes) \
  do {                                              \
    (void)(p);                                      \
    (void)(bytes);                                  \
  } while (0)
#endif
