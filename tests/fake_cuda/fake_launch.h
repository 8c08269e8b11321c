// Included first by the translation units that compile the CUDA backend's kernel sources
// (src/backend/cuda/*.cu) for the fake device: the kernel language from the host emulator
// (tests/cuda/cuda_emu.h), with launches going through the fake device's streams, so that they
// are queued, captured into graphs and replayed as on a GPU instead of running at once.
#pragma once

#include <cuda_runtime_api.h>

#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda/cuda_emu.h"
#include "fake_cuda/fake_device.h"

// The kernel sources name the emulator's threadIdx, __syncthreads, wmma, ... unqualified.
namespace mamba2::cuda {
using namespace ::mamba2::cuda_emu;
}  // namespace mamba2::cuda

namespace mamba2::fake_cuda {

// Kernel arguments are copied when the launch is queued (a graph keeps the values it was
// captured with), and pointer arguments are checked then.
template <typename... KArgs, typename... Args>
void Launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, cudaStream_t stream, Args&&... args) {
  static_assert(sizeof...(KArgs) == sizeof...(Args), "kernel argument count");
  std::tuple<std::decay_t<KArgs>...> values(static_cast<KArgs>(std::forward<Args>(args))...);
  std::apply(
      [](const auto&... a) {
        int i = 0;
        auto check = [&i](const auto& v) {
          if constexpr (std::is_pointer_v<std::decay_t<decltype(v)>>) CheckKernelPointer(v, i);
          ++i;
        };
        (check(a), ...);
      },
      values);
  Enqueue(
      stream,
      [kernel, grid, block, values] {
        std::apply([&](const auto&... a) { ::mamba2::cuda_emu::EmuLaunch(kernel, grid, block, a...); }, values);
      },
      "kernel");
}

}  // namespace mamba2::fake_cuda

#undef M2_LAUNCH
#define M2_LAUNCH(kernel, grid, block, stream, ...) \
  ::mamba2::fake_cuda::Launch(kernel, (grid), (block), (stream), __VA_ARGS__)
