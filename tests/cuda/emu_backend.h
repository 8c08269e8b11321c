// A backend that runs the CUDA backend's kernels (src/backend/cuda/*.cuh) on the host through
// the emulator of cuda_emu.h: the same kernel text, launch configurations and launch sequences,
// in host memory. MatMul is a plain loop (cuBLAS is not emulated), except that bf16 mode packs
// activations and converts weights with the CUDA kernels and accumulates in fp32, as cuBLAS does.
// It lets the kernels be checked against ref on machines without a GPU.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace mamba2::testing {

std::unique_ptr<Backend> MakeEmuBackend(bool bf16_matmul = false);

}  // namespace mamba2::testing
