// src/backend/cuda/gemv.cu compiled for the fake device.
#include "fake_cuda/fake_launch.h"

#include "backend/cuda/gemv.cu"
