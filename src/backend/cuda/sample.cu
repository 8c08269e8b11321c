// nvcc build of the on-device token pick (the kernel text is in sample.cuh).
#include "backend/cuda/kernels.h"

#define M2_KERNEL_NS cuda
#include "backend/cuda/sample.cuh"
