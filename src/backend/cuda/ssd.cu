// nvcc build of the scan kernels (the kernel text is in ssd.cuh).
#include "backend/cuda/kernels.h"

#define M2_KERNEL_NS cuda
#include "backend/cuda/ssd.cuh"
