// A host emulator for the small part of CUDA that the kernels of src/backend/cuda use, so that
// the very kernel text (elementwise.cuh, ssd.cuh) runs and is checked on machines without a GPU.
//
// Blocks run one after another, in a shuffled order; the threads of a block are cooperative
// fibers (ucontext) that switch only at __syncthreads and warp shuffles, with the same meaning
// as on the device: a block barrier waits for every live thread of the block, a warp collective
// for every live lane of the warp. Between barriers the fibers run in a freshly shuffled order,
// so a shared-memory read that lacks its barrier tends to see stale data and fail a test. A
// barrier no thread can pass (divergent __syncthreads) aborts with a message. Shared memory
// starts every block filled with 0xFF bytes (a NaN in every float and double, -1 in every
// integer): a block that reads what it has not written, which on the device would be whatever
// the SM held, here sees NaN rather than the last block's values. Not emulated: timing, memory
// spaces (everything is host memory) and atomics.
//
// Include this, then define M2_KERNEL_NS as cuda_emu and include the kernel sources, then
// cuda_emu_end.h to drop the CUDA keyword macros again.
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#if defined(M2_FAKE_CUDA_RUNTIME)
// The fake device of tests/fake_cuda declares CUDA's runtime types, as CUDA does, globally.
#include <cuda_runtime_api.h>
#endif

namespace mamba2::cuda_emu {

#if defined(M2_FAKE_CUDA_RUNTIME)
using ::cudaStream_t;
using ::dim3;
#else
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using cudaStream_t = void*;
#endif

// Indices of the fiber running now.
inline dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace detail {

enum class FiberState { kRunnable, kBlockBarrier, kWarpBarrier, kDone };

struct Fiber {
  ucontext_t ctx;
  std::unique_ptr<char[]> stack;
  FiberState state = FiberState::kDone;
  dim3 tid;
};

constexpr size_t kStackBytes = size_t(256) << 10;
constexpr int kMaxThreads = 1024;

struct Scheduler {
  ucontext_t main;
  std::vector<Fiber> fibers;
  int current = -1;
  const std::function<void()>* body = nullptr;
  uint64_t exchange[kMaxThreads / 32][32] = {};
  std::mt19937 rng{20240601};
  uint64_t launches = 0;
};

inline Scheduler& Sched() {
  static Scheduler s;
  return s;
}

[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "cuda_emu: %s (block %u,%u,%u)\n", what, blockIdx.x, blockIdx.y, blockIdx.z);
  std::abort();
}

inline void Yield(FiberState st) {
  Scheduler& s = Sched();
  Fiber& f = s.fibers[size_t(s.current)];
  f.state = st;
  swapcontext(&f.ctx, &s.main);
}

inline void Entry() {
  Scheduler& s = Sched();
  (*s.body)();
  s.fibers[size_t(s.current)].state = FiberState::kDone;
  // Returning resumes uc_link, the scheduler.
}

}  // namespace detail
}  // namespace mamba2::cuda_emu

// Every __shared__ variable of the kernel sources lies in the section m2_emu_shared (see the
// macro below); the linker names its bounds. Weak: a binary with no kernels has no such section.
extern "C" __attribute__((weak)) char __start_m2_emu_shared[];
extern "C" __attribute__((weak)) char __stop_m2_emu_shared[];

namespace mamba2::cuda_emu {
namespace detail {

inline void PoisonSharedMemory() {
  char* const begin = __start_m2_emu_shared;
  char* const end = __stop_m2_emu_shared;
  if (begin && end > begin) std::memset(begin, 0xFF, size_t(end - begin));
}

inline void RunBlock(const std::function<void()>& body, dim3 block) {
  Scheduler& s = Sched();
  PoisonSharedMemory();
  const int n = int(block.x * block.y * block.z);
  if (int(s.fibers.size()) < n) s.fibers.resize(size_t(n));
  s.body = &body;
  for (int i = 0; i < n; ++i) {
    Fiber& f = s.fibers[size_t(i)];
    if (!f.stack) f.stack.reset(new char[kStackBytes]);
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.get();
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = &s.main;
    makecontext(&f.ctx, &Entry, 0);
    f.state = FiberState::kRunnable;
    f.tid = dim3(unsigned(i) % block.x, (unsigned(i) / block.x) % block.y, unsigned(i) / (block.x * block.y));
  }
  std::vector<int> order;
  for (;;) {
    order.clear();
    for (int i = 0; i < n; ++i)
      if (s.fibers[size_t(i)].state == FiberState::kRunnable) order.push_back(i);
    std::shuffle(order.begin(), order.end(), s.rng);
    for (int i : order) {
      s.current = i;
      threadIdx = s.fibers[size_t(i)].tid;
      swapcontext(&s.main, &s.fibers[size_t(i)].ctx);
    }
    s.current = -1;
    bool all_done = true, released = false;
    for (int i = 0; i < n; ++i) all_done = all_done && s.fibers[size_t(i)].state == FiberState::kDone;
    if (all_done) break;
    // Warps whose live lanes all wait at a warp collective go on.
    for (int w0 = 0; w0 < n; w0 += 32) {
      bool any = false, all = true;
      for (int i = w0; i < std::min(n, w0 + 32); ++i) {
        const FiberState st = s.fibers[size_t(i)].state;
        if (st == FiberState::kDone) continue;
        any = true;
        all = all && st == FiberState::kWarpBarrier;
      }
      if (any && all) {
        for (int i = w0; i < std::min(n, w0 + 32); ++i)
          if (s.fibers[size_t(i)].state == FiberState::kWarpBarrier) s.fibers[size_t(i)].state = FiberState::kRunnable;
        released = true;
      }
    }
    if (released) continue;
    bool all_block = true;
    for (int i = 0; i < n; ++i) {
      const FiberState st = s.fibers[size_t(i)].state;
      all_block = all_block && (st == FiberState::kDone || st == FiberState::kBlockBarrier);
    }
    if (!all_block) Fail("deadlock: threads wait at different barriers");
    for (int i = 0; i < n; ++i)
      if (s.fibers[size_t(i)].state == FiberState::kBlockBarrier) s.fibers[size_t(i)].state = FiberState::kRunnable;
  }
}

}  // namespace detail

inline void __syncthreads() { detail::Yield(detail::FiberState::kBlockBarrier); }

// Full-warp exchange; the mask is taken as all lanes, the only form the kernels use.
template <typename T>
T __shfl_xor_sync(unsigned /*mask*/, T v, int lane_mask) {
  static_assert(sizeof(T) <= sizeof(uint64_t));
  detail::Scheduler& s = detail::Sched();
  const int me = s.current, warp = me / 32, lane = me % 32;
  std::memcpy(&s.exchange[warp][lane], &v, sizeof(T));
  detail::Yield(detail::FiberState::kWarpBarrier);
  const int other = lane ^ lane_mask;
  if (warp * 32 + other >= int(blockDim.x * blockDim.y * blockDim.z))
    detail::Fail("shuffle from a lane outside the block");
  T out;
  std::memcpy(&out, &s.exchange[warp][other], sizeof(T));
  detail::Yield(detail::FiberState::kWarpBarrier);  // nobody overwrites a slot before all have read
  return out;
}

// Runs kernel(args...) over the grid. The launch limits of the device are checked too.
template <typename... KArgs, typename... Args>
void EmuLaunch(void (*kernel)(KArgs...), dim3 grid, dim3 block, Args&&... args) {
  if (uint64_t(block.x) * block.y * block.z > uint64_t(detail::kMaxThreads)) detail::Fail("block too large");
  if (grid.y > 65535 || grid.z > 65535 || grid.x == 0 || grid.y == 0 || grid.z == 0) detail::Fail("bad grid");
  const std::function<void()> body = [&] { kernel(args...); };
  gridDim = grid;
  blockDim = block;
  // Blocks in a shuffled order: the device promises none, so a kernel whose blocks read what
  // other blocks of the same launch write gives different results from launch to launch here.
  std::vector<dim3> blocks;
  blocks.reserve(size_t(grid.x) * grid.y * grid.z);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) blocks.push_back(dim3(x, y, z));
  std::shuffle(blocks.begin(), blocks.end(), detail::Sched().rng);
  for (const dim3& b : blocks) {
    blockIdx = b;
    detail::RunBlock(body, block);
  }
  ++detail::Sched().launches;
}

inline uint64_t LaunchCount() { return detail::Sched().launches; }

// The emulated device holds three blocks at once, so that a kernel looping over its work (a grid
// of ResidentBlocks) runs several rounds even on the tests' small shapes.
template <typename Kernel>
int ResidentBlocks(Kernel, int /*block_threads*/) {
  return 3;
}

}  // namespace mamba2::cuda_emu

#include "cuda/cuda_emu_wmma.h"

// The spellings the kernel sources use. Kernels are inline functions here so that their
// __shared__ variables, like those of the (inline) device functions, are COMDAT: GCC will not put
// COMDAT and plain variables in one section.
#define __global__ inline
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static __attribute__((section("m2_emu_shared")))
#define __align__(n) __attribute__((aligned(n)))
#define M2_HD inline
#define M2_DEVICE inline
#define M2_UNROLL
#define M2_LAUNCH_BOUNDS(threads, blocks)
#define M2_GRID_DEPENDENCY() \
  do {                       \
  } while (0)
#define M2_GRID_DEPENDENCY_AFTER_PREFETCH(p, bytes) \
  do {                                              \
    (void)(p);                                      \
    (void)(bytes);                                  \
  } while (0)
#define M2_LAUNCH(kernel, grid, block, stream, ...) ::mamba2::cuda_emu::EmuLaunch(kernel, grid, block, __VA_ARGS__)
