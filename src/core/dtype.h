// Element types of stored weights and activations, and the scalar conversions between them
// (the ones kernels share are in core/float_bits.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/float_bits.h"

namespace mamba2 {

enum class DType : uint8_t { F32, F16, BF16, F64, I32, I64 };

inline size_t DTypeSize(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
  }
  return 0;
}

inline const char* DTypeName(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::F64: return "f64";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
  }
  return "?";
}

// Reads element i of a float-typed buffer as f32.
inline float LoadAsF32(const void* data, DType t, size_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(data)[i];
    case DType::F16: return F16ToF32(static_cast<const uint16_t*>(data)[i]);
    case DType::BF16: return BF16ToF32(static_cast<const uint16_t*>(data)[i]);
    case DType::F64: return float(static_cast<const double*>(data)[i]);
    default: return 0.0f;
  }
}

}  // namespace mamba2
