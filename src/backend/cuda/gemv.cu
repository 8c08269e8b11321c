// nvcc build of the decode products of the 16-bit modes (the kernel text is in gemv.cuh).
#include "backend/cuda/kernels.h"

#define M2_KERNEL_NS cuda
#include "backend/cuda/gemv.cuh"
