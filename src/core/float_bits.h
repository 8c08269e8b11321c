// Float bit casts and the conversions between f32 and bf16 / f16, written once for the
// host and for CUDA kernels: C++17, and `__host__ __device__` when nvcc compiles them. core/dtype.h
// re-exports them for host code; the kernel sources of backend/cuda and sample/pick_rule.h use them
// directly, so a stored weight reads the same on every backend.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define M2_HOST_DEVICE __host__ __device__ inline
#else
#define M2_HOST_DEVICE inline
#endif

namespace mamba2 {

M2_HOST_DEVICE float BitsToF32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

M2_HOST_DEVICE uint32_t F32ToBits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

M2_HOST_DEVICE float BF16ToF32(uint16_t h) { return BitsToF32(uint32_t(h) << 16); }

// Round to nearest even, NaN kept quiet.
M2_HOST_DEVICE uint16_t F32ToBF16(float f) {
  uint32_t u = F32ToBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

M2_HOST_DEVICE float F16ToF32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    if (man == 0) return BitsToF32(sign);
    const float v = float(man) * (1.0f / 16777216.0f);  // subnormal: man * 2^-24
    return sign ? -v : v;
  }
  if (exp == 31) return BitsToF32(sign | 0x7f800000u | (man << 13));
  return BitsToF32(sign | ((exp + 112u) << 23) | (man << 13));
}

// Round to nearest even.
M2_HOST_DEVICE uint16_t F32ToF16(float f) {
  uint32_t u = F32ToBits(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return uint16_t(sign | 0x7e00u);           // NaN
  if (u >= 0x477ff000u) return uint16_t(sign | 0x7c00u);          // overflow -> inf
  if (u < 0x38800000u) {                                          // subnormal or zero
    const float a = BitsToF32(u);
    // Scale so that the subnormal quantum (2^-24) is 1, then round half to even.
    const float scaled = a * 16777216.0f;
    uint32_t m = uint32_t(scaled);
    const float rem = scaled - float(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return uint16_t(sign | m);
  }
  uint32_t mant_odd = (u >> 13) & 1u;
  u += 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round
  return uint16_t(sign | (u >> 13));
}

}  // namespace mamba2
