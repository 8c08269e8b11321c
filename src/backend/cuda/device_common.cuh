// Scalar helpers shared by the CUDA kernels: element loads and stores (conversions in
// core/float_bits.h), SiLU, softplus and dt, warp and block sums. The including file defines
// M2_KERNEL_NS (cuda for the real build, cuda_emu for the host emulator of tests/cuda); with nvcc
// the launch macros come from device_prelude.cuh.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cuda/kernel_args.h"
#include "core/float_bits.h"

#ifndef M2_KERNEL_NS
#error "define M2_KERNEL_NS (cuda or cuda_emu) before including the kernel sources"
#endif
#if defined(__CUDACC__)
#include "backend/cuda/device_prelude.cuh"
#endif

namespace mamba2::M2_KERNEL_NS {

// Threads per block of every kernel here (a multiple of the warp size).
constexpr int kBlock = 256;

// Element i of a table stored as f32, f16 or bf16 (cuda_args::WDType), and its store.
M2_HD float LoadElem(const void* p, int dtype, int64_t i) {
  if (dtype == cuda_args::kF32) return static_cast<const float*>(p)[i];
  const uint16_t h = static_cast<const uint16_t*>(p)[i];
  return dtype == cuda_args::kBF16 ? BF16ToF32(h) : F16ToF32(h);
}

// f32 -> bf16 or f16 (half: cuda_args::kBF16 or kF16), round to nearest even, and back.
M2_HD uint16_t ToHalf(float v, int half) { return half == cuda_args::kBF16 ? F32ToBF16(v) : F32ToF16(v); }
M2_HD float HalfToF32(uint16_t h, int half) { return half == cuda_args::kBF16 ? BF16ToF32(h) : F16ToF32(h); }

M2_HD void StoreElem(void* p, int dtype, int64_t i, float v) {
  if (dtype == cuda_args::kF32)
    static_cast<float*>(p)[i] = v;
  else
    static_cast<uint16_t*>(p)[i] = ToHalf(v, dtype);
}

// 16-byte pieces: a vector load or store where the address is aligned to 16 bytes.
struct alignas(16) Halves8 {
  uint16_t h[8];
};
struct alignas(16) Floats4 {
  float v[4];
};

M2_DEVICE bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Elements i .. i+7 of a table of `dtype`, widened to fp32: those from `count` on are 0 and not
// read (count <= 0: none read). Whole and 16-byte aligned, they are one or two vector loads: the
// staging loops of the tensor-core scan would otherwise spend more instructions on loads than
// the tensor cores spend on the product.
M2_DEVICE void LoadRow8(const void* p, int dtype, int64_t i, int64_t count, float (&v)[8]) {
  if (count >= 8) {
    if (dtype == cuda_args::kF32) {
      const float* f = static_cast<const float*>(p) + i;
      if (Aligned16(f)) {
        const Floats4 lo = reinterpret_cast<const Floats4*>(f)[0], hi = reinterpret_cast<const Floats4*>(f)[1];
        M2_UNROLL
        for (int k = 0; k < 4; ++k) {
          v[k] = lo.v[k];
          v[4 + k] = hi.v[k];
        }
        return;
      }
    } else {
      const uint16_t* h = static_cast<const uint16_t*>(p) + i;
      if (Aligned16(h)) {
        const Halves8 w = *reinterpret_cast<const Halves8*>(h);
        M2_UNROLL
        for (int k = 0; k < 8; ++k) v[k] = HalfToF32(w.h[k], dtype);
        return;
      }
    }
  }
  M2_UNROLL
  for (int k = 0; k < 8; ++k) v[k] = k < count ? LoadElem(p, dtype, i + k) : 0.0f;
}

// The store of elements i .. i+7 of which only the first `count` exist (count <= 0: none).
M2_DEVICE void StoreRow8(void* p, int dtype, int64_t i, int64_t count, const float (&v)[8]) {
  if (count >= 8) {
    if (dtype == cuda_args::kF32) {
      float* f = static_cast<float*>(p) + i;
      if (Aligned16(f)) {
        Floats4 lo, hi;
        M2_UNROLL
        for (int k = 0; k < 4; ++k) {
          lo.v[k] = v[k];
          hi.v[k] = v[4 + k];
        }
        reinterpret_cast<Floats4*>(f)[0] = lo;
        reinterpret_cast<Floats4*>(f)[1] = hi;
        return;
      }
    } else {
      uint16_t* h = static_cast<uint16_t*>(p) + i;
      if (Aligned16(h)) {
        Halves8 w;
        M2_UNROLL
        for (int k = 0; k < 8; ++k) w.h[k] = ToHalf(v[k], dtype);
        *reinterpret_cast<Halves8*>(h) = w;
        return;
      }
    }
  }
  M2_UNROLL
  for (int k = 0; k < 8; ++k)
    if (k < count) StoreElem(p, dtype, i + k, v[k]);
}

// Element (r, c) of an activation view, widened to fp32; its store; and v as such a store keeps it.
M2_HD float Get(const cuda_args::ActView& a, int64_t r, int64_t c) { return LoadElem(a.data, a.type, r * a.ld + c); }
M2_HD void Put(const cuda_args::ActView& a, int64_t r, int64_t c, float v) {
  StoreElem(a.data, a.type, r * a.ld + c, v);
}
// Elements (r, c .. c+7) of an activation view, of which the first `count` exist; their store.
M2_DEVICE void GetRow8(const cuda_args::ActView& a, int64_t r, int64_t c, int64_t count, float (&v)[8]) {
  LoadRow8(a.data, a.type, r * a.ld + c, count, v);
}
M2_DEVICE void PutRow8(const cuda_args::ActView& a, int64_t r, int64_t c, int64_t count, const float (&v)[8]) {
  StoreRow8(a.data, a.type, r * a.ld + c, count, v);
}
M2_HD float Stored(const cuda_args::ActView& a, float v) {
  return a.type == cuda_args::kF32 ? v : HalfToF32(ToHalf(v, a.type), a.type);
}

M2_DEVICE float SiluF(float v) { return v / (1.0f + expf(-v)); }

// dt of one (row, head): softplus(raw + bias), linear above 20, clamped to [dt_min, dt_max].
// In double, as the reference computes it; it costs nothing next to the scan.
M2_DEVICE double DtValue(float raw, float bias, float dt_min, float dt_max) {
  const double v = double(raw) + double(bias);
  double dt = v > 20.0 ? v : log1p(exp(v));
  if (dt < double(dt_min)) dt = double(dt_min);
  if (dt > double(dt_max)) dt = double(dt_max);
  return dt;
}

constexpr int kMaxConv = 8;  // largest d_conv supported (Mamba-2 uses 4)

// One decode token of conv channel c for row i (the state of slot slots[i]), in two halves so
// that a caller can load the channel long before its input exists: ConvStepKernel, and the
// in_proj product's epilogue (gemv.cuh), which loads while it streams the weights. Both run this
// code, so the fused step gives the same bits.
struct ConvChannel {
  float next[kMaxConv];  // the window's inputs that stay: old state[1 .. d_conv-1]
  float w[kMaxConv];
  float bias;
};

M2_DEVICE ConvChannel LoadConvChannel(const cuda_args::ConvParams& p, int64_t i, int64_t c) {
  const int W = int(p.d_conv);
  const float* state = p.conv_state + (int64_t(p.slots[i]) * p.conv_dim + c) * W;
  ConvChannel ch;
  M2_UNROLL
  for (int k = 0; k < kMaxConv; ++k) {
    ch.next[k] = k + 1 < W ? state[k + 1] : 0.0f;
    ch.w[k] = k < W ? p.weight[c * W + k] : 0.0f;
  }
  ch.bias = p.bias ? p.bias[c] : 0.0f;
  return ch;
}

// Shift the window, append `input`, convolve, SiLU into out.
M2_DEVICE void StepConvChannel(const cuda_args::ConvParams& p, int64_t i, int64_t c, const ConvChannel& ch,
                               float input) {
  const int W = int(p.d_conv);
  float* state = p.conv_state + (int64_t(p.slots[i]) * p.conv_dim + c) * W;
  float acc = ch.bias;
  M2_UNROLL
  for (int k = 0; k < kMaxConv; ++k) {
    if (k >= W) break;
    const float v = k + 1 < W ? ch.next[k] : input;
    state[k] = v;
    acc += v * ch.w[k];
  }
  Put(p.out, i, c, SiluF(acc));
}

struct SumOp {
  template <typename T>
  M2_HD T operator()(T a, T b) const { return a + b; }
};
struct MinOp {
  template <typename T>
  M2_HD T operator()(T a, T b) const { return b < a ? b : a; }
};
struct MaxOp {
  template <typename T>
  M2_HD T operator()(T a, T b) const { return a < b ? b : a; }
};

// Butterfly: every lane ends with the same value (the pairs combine the same operands).
template <typename T, typename Op>
M2_DEVICE T WarpAllReduce(T v, Op op) {
  M2_UNROLL
  for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

M2_DEVICE float WarpSum(float v) { return WarpAllReduce(v, SumOp{}); }

// Sum over the block; every thread gets the total. Every thread of the block must call it.
M2_DEVICE float BlockSum(float v) {
  __shared__ float partial[32];
  __shared__ float total;
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  v = WarpSum(v);
  __syncthreads();  // a previous call may still be reading partial / total
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int n_warps = int(blockDim.x + 31) >> 5;
    float s = lane < n_warps ? partial[lane] : 0.0f;
    s = WarpSum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// Blocks for a grid-stride loop over n elements.
inline unsigned GridFor(int64_t n, int64_t cap = 65536) {
  int64_t blocks = (n + kBlock - 1) / kBlock;
  if (blocks < 1) blocks = 1;
  return unsigned(blocks < cap ? blocks : cap);
}

M2_HD unsigned CeilDiv(int64_t a, int64_t b) { return unsigned((a + b - 1) / b); }

M2_HD int64_t Min64(int64_t a, int64_t b) { return a < b ? a : b; }

}  // namespace mamba2::M2_KERNEL_NS
