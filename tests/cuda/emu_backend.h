// A backend that runs the CUDA backend's kernels (src/backend/cuda/*.cuh) on the host through
// the emulator of cuda_emu.h: the same kernel text, launch configurations and launch sequences,
// in host memory. MatMul is a plain loop (cuBLAS is not emulated), except that bf16 mode packs
// activations and converts weights with the CUDA kernels and accumulates in fp32, as cuBLAS does.
// It lets the kernels be checked against ref on machines without a GPU.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "core/dtype.h"

namespace mamba2::testing {

// PickTokens runs the pick kernel of sample.cuh through EmuLaunchPick; Record re-issues the ops
// (CUDA graphs are not emulated).
// matmul: DType::F32 (fp32 mode), BF16 or F16 (the 16-bit modes of CudaMatMul);
// bf16_intermediates and bf16_scan as the CudaBackendOptions of those names.
std::unique_ptr<Backend> MakeEmuBackend(DType matmul = DType::F32, bool bf16_intermediates = true,
                                        bool bf16_scan = true);

// cuda::LaunchPick under the emulator, at the device's block size. The kernel text is compiled
// into the emulator once, in pick_emu_test.cpp (a second copy would clash at link time).
void EmuLaunchPick(const float* logits, int64_t ld, int64_t n_rows, const PickParams& p, uint64_t* draw,
                   int32_t* out_ids);

}  // namespace mamba2::testing
