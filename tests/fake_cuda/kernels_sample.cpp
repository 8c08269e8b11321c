// src/backend/cuda/sample.cu compiled for the fake device.
#include "fake_cuda/fake_launch.h"

#include "backend/cuda/sample.cu"
