// The two norms of a row as block-wide device functions, and where they put their results:
// the norm kernels (elementwise.cuh) run them one block per row, the decode product (gemv.cuh)
// in every block ahead of its columns; both give the same bits.
#pragma once

#include "backend/cuda/device_common.cuh"

namespace mamba2::M2_KERNEL_NS {

// Where a norm kernel puts its rows: fp32 into a view, or rounded to bf16 / f16 (as PackHalfKernel
// rounds) into the dense operand of the next 16-bit GEMM, which then needs no packing pass.
struct F32Rows {
  float* p;
  int64_t ld;
  M2_DEVICE void Put(int64_t r, int64_t j, float v) const { p[r * ld + j] = v; }
};
struct HalfRows {
  uint16_t* p;
  int64_t ld;
  int half;
  M2_DEVICE void Put(int64_t r, int64_t j, float v) const { p[r * ld + j] = ToHalf(v, half); }
};

// The second pass of a norm: out[j] = value(j) for this thread's columns j < cols, kNormBatch
// columns computed before any is stored. A store into global memory may alias the next load,
// so the compiler keeps them in order: one at a time, each column would be a round trip.
constexpr int kNormBatch = 4;

template <typename Rows, typename Value>
M2_DEVICE void PutNormed(Rows out, int64_t r, int64_t c0, int64_t cols, Value value) {
  const int64_t stride = blockDim.x;
  for (int64_t j0 = threadIdx.x; j0 < cols; j0 += kNormBatch * stride) {
    float v[kNormBatch];
    M2_UNROLL
    for (int u = 0; u < kNormBatch; ++u) {
      const int64_t j = j0 + u * stride;
      v[u] = j < cols ? value(j) : 0.0f;
    }
    M2_UNROLL
    for (int u = 0; u < kNormBatch; ++u)
      if (j0 + u * stride < cols) out.Put(r, c0 + j0 + u * stride, v[u]);
  }
}

// Row r of the RMS norm, x pointing at that row; every thread of the block calls it.
template <typename Rows>
M2_DEVICE void RmsNormRow(const float* x, int64_t r, const float* w, float eps, Rows out, int64_t cols) {
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) ss += x[j] * x[j];
  const float inv = 1.0f / sqrtf(BlockSum(ss) / float(cols) + eps);
  PutNormed(out, r, 0, cols, [&](int64_t j) { return x[j] * inv * w[j]; });
}

// One (row, group) of the gated norm: s = y * silu(z); out = s * rsqrt(mean_group(s^2) + eps) * w.
// The gate is recomputed in the second pass rather than stored: it is cheap and keeps the op
// free of scratch. Same columns per thread in both passes, so out may alias y. Every thread of
// the block calls it.
template <typename Rows>
M2_DEVICE void GatedRmsNormGroup(const cuda_args::ActView& y, const cuda_args::ActView& z, int64_t r, int64_t g0,
                                 const float* w, int64_t group_size, float eps, Rows out) {
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < group_size; j += blockDim.x) {
    const float s = Get(y, r, g0 + j) * SiluF(Get(z, r, g0 + j));
    ss += s * s;
  }
  const float inv = 1.0f / sqrtf(BlockSum(ss) / float(group_size) + eps);
  const float* wg = w + g0;
  PutNormed(out, r, g0, group_size,
            [&](int64_t j) { return Get(y, r, g0 + j) * SiluF(Get(z, r, g0 + j)) * inv * wg[j]; });
}

}  // namespace mamba2::M2_KERNEL_NS
