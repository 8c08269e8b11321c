// nvcc build of the element-wise kernels (the kernel text is in elementwise.cuh).
#include "backend/cuda/kernels.h"

#define M2_KERNEL_NS cuda
#include "backend/cuda/elementwise.cuh"
