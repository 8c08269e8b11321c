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

// A norm's two passes over this thread's columns j < cols (j = threadIdx.x + k * blockDim.x),
// kBatch columns loaded before any is used. In the second pass a store into global memory may
// alias the next load, so the compiler keeps them in order: one at a time, each column would be a
// round trip. The sums keep the order of j whatever kBatch, so the norm kernels and the GEMVs that
// compute norms themselves give the same bits. The GEMVs of a decode step take 8 (the norm's
// latency is on the step's critical path); the prefill's norm kernels 2, which keeps them at
// ~40 registers, many blocks per SM (8 took the gated norm with 16-bit output to 148).
constexpr int kKernelNormBatch = 2;
constexpr int kGemvNormBatch = 8;

// use(j, value(j)) for this thread's columns in the order of j, kBatch values computed first.
template <int kBatch, typename Value, typename Use>
M2_DEVICE void InBatches(int64_t cols, Value value, Use use) {
  const int64_t stride = blockDim.x;
  for (int64_t j0 = threadIdx.x; j0 < cols; j0 += kBatch * stride) {
    float v[kBatch];
    M2_UNROLL
    for (int u = 0; u < kBatch; ++u) {
      const int64_t j = j0 + u * stride;
      v[u] = j < cols ? value(j) : 0.0f;
    }
    M2_UNROLL
    for (int u = 0; u < kBatch; ++u)
      if (j0 + u * stride < cols) use(j0 + u * stride, v[u]);
  }
}

// The sum of value(j)^2.
template <int kBatch, typename Value>
M2_DEVICE float SumOfSquares(int64_t cols, Value value) {
  float ss = 0.0f;
  InBatches<kBatch>(cols, value, [&](int64_t, float v) { ss += v * v; });
  return ss;
}

// out[j] = value(j).
template <int kBatch, typename Rows, typename Value>
M2_DEVICE void PutNormed(Rows out, int64_t r, int64_t c0, int64_t cols, Value value) {
  InBatches<kBatch>(cols, value, [&](int64_t j, float v) { out.Put(r, c0 + j, v); });
}

// Row r of the RMS norm, x pointing at that row; every thread of the block calls it.
template <int kBatch, typename Rows>
M2_DEVICE void RmsNormRow(const float* x, int64_t r, const float* w, float eps, Rows out, int64_t cols) {
  const float ss = SumOfSquares<kBatch>(cols, [&](int64_t j) { return x[j]; });
  const float inv = 1.0f / sqrtf(BlockSum(ss) / float(cols) + eps);
  PutNormed<kBatch>(out, r, 0, cols, [&](int64_t j) { return x[j] * inv * w[j]; });
}

// One (row, group) of the gated norm: s = y * silu(z); out = s * rsqrt(mean_group(s^2) + eps) * w.
// The gate is recomputed in the second pass rather than stored: it is cheap and keeps the op
// free of scratch. Same columns per thread in both passes, so out may alias y. Every thread of
// the block calls it.
template <int kBatch, typename Rows>
M2_DEVICE void GatedRmsNormGroup(const cuda_args::ActView& y, const cuda_args::ActView& z, int64_t r, int64_t g0,
                                 const float* w, int64_t group_size, float eps, Rows out) {
  const float ss =
      SumOfSquares<kBatch>(group_size, [&](int64_t j) { return Get(y, r, g0 + j) * SiluF(Get(z, r, g0 + j)); });
  const float inv = 1.0f / sqrtf(BlockSum(ss) / float(group_size) + eps);
  const float* wg = w + g0;
  PutNormed<kBatch>(out, r, g0, group_size,
                    [&](int64_t j) { return Get(y, r, g0 + j) * SiluF(Get(z, r, g0 + j)) * inv * wg[j]; });
}

}  // namespace mamba2::M2_KERNEL_NS
