// nvcc build of the element-wise kernels (the kernel text is in elementwise.cuh).
#include "backend/cuda/kernels.h"

#define M2_KERNEL_NS cuda
#include "backend/cuda/elementwise.cuh"

namespace mamba2::cuda {

namespace {
thread_local bool programmatic_launch = false;
}  // namespace

bool ProgrammaticLaunch() { return programmatic_launch; }
void SetProgrammaticLaunch(bool on) { programmatic_launch = on; }

}  // namespace mamba2::cuda
