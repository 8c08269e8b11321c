// Writes float32 arrays as NumPy .npy files (version 1.0, little endian, C order).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace mamba2 {

// Writes to PATH.tmp and renames, so a failed write never leaves a half-written PATH.
Status WriteNpyF32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<double> data;  // converted from f4 or f8
};
// Reads a little-endian C-order .npy of float32 or float64.
Result<NpyArray> ReadNpy(const std::string& path);

}  // namespace mamba2
