// src/backend/cuda/elementwise.cu compiled for the fake device.
#include "fake_cuda/fake_launch.h"

#include "backend/cuda/elementwise.cu"
