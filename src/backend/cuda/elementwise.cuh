// Row-wise and element-wise kernels of the CUDA backend and their launchers: fill, dtype
// conversions, embedding lookup, the two RMSNorms and the causal depthwise conv.
// Included by elementwise.cu (nvcc) and by the host emulator test; see device_common.cuh.
#pragma once

#include "backend/cuda/norm_rows.cuh"

namespace mamba2::M2_KERNEL_NS {

// ---- fill and conversions ---------------------------------------------------------------------

__global__ void FillKernel(float* dst, float value, int64_t n) {
  M2_GRID_DEPENDENCY();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = value;
}

__global__ void ToF32Kernel(const void* src, int dtype, float* dst, int64_t n) {
  M2_GRID_DEPENDENCY();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = LoadElem(src, dtype, i);
}

__global__ void ToHalfKernel(const void* src, int dtype, int half, uint16_t* dst, int64_t n) {
  M2_GRID_DEPENDENCY();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = ToHalf(LoadElem(src, dtype, i), half);
}

// Packs the view x [rows, cols] (row stride ld) into a dense bf16 / f16 [rows, cols] for the GEMM.
__global__ void PackHalfKernel(const float* x, int64_t rows, int64_t cols, int64_t ld, int half, uint16_t* out) {
  M2_GRID_DEPENDENCY();
  const int64_t n = rows * cols;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i - r * cols;
    out[i] = ToHalf(x[r * ld + c], half);
  }
}

void LaunchFill(float* dst, float value, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  M2_LAUNCH(FillKernel, dim3(GridFor(n)), dim3(kBlock), stream, dst, value, n);
}

void LaunchToF32(const void* src, int dtype, float* dst, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  M2_LAUNCH(ToF32Kernel, dim3(GridFor(n)), dim3(kBlock), stream, src, dtype, dst, n);
}

void LaunchToHalf(const void* src, int dtype, int half, uint16_t* dst, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  M2_LAUNCH(ToHalfKernel, dim3(GridFor(n)), dim3(kBlock), stream, src, dtype, half, dst, n);
}

void LaunchPackHalf(const float* x, int64_t rows, int64_t cols, int64_t ld, int half, uint16_t* out,
                    cudaStream_t stream) {
  if (rows * cols <= 0) return;
  M2_LAUNCH(PackHalfKernel, dim3(GridFor(rows * cols)), dim3(kBlock), stream, x, rows, cols, ld, half, out);
}

// ---- embedding and norms: one block per row -----------------------------------------------------

__global__ void EmbedKernel(const int32_t* ids, const void* table, int dtype, int64_t d, float* out,
                            int64_t out_ld) {
  M2_GRID_DEPENDENCY();
  const int64_t i = blockIdx.x;
  const int64_t base = int64_t(ids[i]) * d;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) out[i * out_ld + j] = LoadElem(table, dtype, base + j);
}

void LaunchEmbed(const int32_t* ids, int64_t n, const void* table, int dtype, int64_t d, float* out,
                 int64_t out_ld, cudaStream_t stream) {
  if (n <= 0) return;
  M2_KCHECK(n <= 0x7fffffff);
  M2_LAUNCH(EmbedKernel, dim3(unsigned(n)), dim3(kBlock), stream, ids, table, dtype, d, out, out_ld);
}

// out = x * rsqrt(mean(x^2) + eps) * w. Each thread touches the same columns in both passes, so
// out may alias x.
template <typename Rows>
__global__ void RmsNormKernel(const float* x, int64_t x_ld, const float* w, float eps, Rows out, int64_t cols) {
  M2_GRID_DEPENDENCY();
  const int64_t r = blockIdx.x;
  RmsNormRow<kKernelNormBatch>(x + r * x_ld, r, w, eps, out, cols);
}

template <typename Rows>
void LaunchRmsNormTo(const float* x, int64_t x_ld, const float* w, float eps, Rows out, int64_t rows, int64_t cols,
                     cudaStream_t stream) {
  if (rows <= 0) return;
  M2_KCHECK(rows <= 0x7fffffff);
  M2_LAUNCH(RmsNormKernel<Rows>, dim3(unsigned(rows)), dim3(kBlock), stream, x, x_ld, w, eps, out, cols);
}

void LaunchRmsNorm(const float* x, int64_t x_ld, const float* w, float eps, float* out, int64_t o_ld, int64_t rows,
                   int64_t cols, cudaStream_t stream) {
  LaunchRmsNormTo(x, x_ld, w, eps, F32Rows{out, o_ld}, rows, cols, stream);
}

void LaunchRmsNormHalf(const float* x, int64_t x_ld, const float* w, float eps, uint16_t* out, int half,
                       int64_t rows, int64_t cols, cudaStream_t stream) {
  LaunchRmsNormTo(x, x_ld, w, eps, HalfRows{out, cols, half}, rows, cols, stream);
}

// One block per (row, group).
template <typename Rows>
__global__ void GatedRmsNormKernel(cuda_args::ActView y, cuda_args::ActView z, const float* w, int64_t group_size,
                                   float eps, Rows out) {
  M2_GRID_DEPENDENCY();
  GatedRmsNormGroup<kKernelNormBatch>(y, z, blockIdx.x, int64_t(blockIdx.y) * group_size, w, group_size, eps, out);
}

template <typename Rows>
void LaunchGatedRmsNormTo(const cuda_args::ActView& y, const cuda_args::ActView& z, const float* w,
                          int64_t group_size, float eps, Rows out, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows <= 0) return;
  M2_KCHECK(group_size > 0 && cols % group_size == 0 && cols / group_size <= 65535 && rows <= 0x7fffffff);
  M2_LAUNCH(GatedRmsNormKernel<Rows>, dim3(unsigned(rows), unsigned(cols / group_size)), dim3(kBlock), stream, y,
            z, w, group_size, eps, out);
}

void LaunchGatedRmsNorm(const cuda_args::ActView& y, const cuda_args::ActView& z, const float* w, int64_t group_size,
                        float eps, float* out, int64_t o_ld, int64_t rows, int64_t cols, cudaStream_t stream) {
  LaunchGatedRmsNormTo(y, z, w, group_size, eps, F32Rows{out, o_ld}, rows, cols, stream);
}

void LaunchGatedRmsNormHalf(const cuda_args::ActView& y, const cuda_args::ActView& z, const float* w,
                            int64_t group_size, float eps, uint16_t* out, int half, int64_t rows, int64_t cols,
                            cudaStream_t stream) {
  LaunchGatedRmsNormTo(y, z, w, group_size, eps, HalfRows{out, cols, half}, rows, cols, stream);
}

// ---- causal depthwise conv ---------------------------------------------------------------------

constexpr int kConvTime = 32;  // time steps per thread in the prefill kernel

// Input of channel c at time u of sequence s: xbc for u >= 0, else the conv state, whose last
// entry (index W-1) is the input just before this call (u = -1).
M2_DEVICE float ConvInput(const cuda_args::ConvParams& p, int64_t s, int64_t c, int64_t u, const float* state) {
  return u >= 0 ? Get(p.xbc, s * p.seq_len + u, c) : state[p.d_conv + u];
}

// Thread = (sequence, channel, tile of kConvTime steps); the window lives in registers with
// compile-time indices: hist[j] is the input j steps back, wrev[j] its weight. The tile's inputs
// are all loaded before the first output is stored: a store may alias a later load (the compiler
// keeps them in order), so loading step by step would cost a memory round trip per step.
__global__ void ConvPrefillKernel(cuda_args::ConvParams p) {
  M2_GRID_DEPENDENCY();
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t t0 = int64_t(blockIdx.y) * kConvTime;
  const int64_t s = blockIdx.z;
  if (c >= p.conv_dim) return;  // no barriers in this kernel
  const int W = int(p.d_conv);
  const float* state = p.conv_state + (int64_t(p.slots[s]) * p.conv_dim + c) * W;
  const float* w = p.weight + c * W;
  float wrev[kMaxConv], hist[kMaxConv];
  M2_UNROLL
  for (int j = 0; j < kMaxConv; ++j) {
    wrev[j] = j < W ? w[W - 1 - j] : 0.0f;
    // Before the first step, hist[j] holds the input at t0-1-j; it is shifted to j+1 first.
    hist[j] = j < W - 1 ? ConvInput(p, s, c, t0 - 1 - j, state) : 0.0f;
  }
  const float b = p.bias ? p.bias[c] : 0.0f;
  float in[kConvTime];
  M2_UNROLL
  for (int k = 0; k < kConvTime; ++k) in[k] = t0 + k < p.seq_len ? Get(p.xbc, s * p.seq_len + t0 + k, c) : 0.0f;
  M2_UNROLL
  for (int k = 0; k < kConvTime; ++k) {
    const int64_t t = t0 + k;
    if (t >= p.seq_len) break;
    M2_UNROLL
    for (int j = kMaxConv - 1; j > 0; --j) hist[j] = hist[j - 1];
    hist[0] = in[k];
    float acc = b;
    M2_UNROLL
    for (int j = 0; j < kMaxConv; ++j)
      if (j < W) acc += wrev[j] * hist[j];
    Put(p.out, s * p.seq_len + t, c, SiluF(acc));
  }
}

// After the outputs: the state becomes the last d_conv inputs (of a short sequence, partly the
// old state), all read before the first is written.
__global__ void ConvStateKernel(cuda_args::ConvParams p) {
  M2_GRID_DEPENDENCY();
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t s = blockIdx.y;
  if (c >= p.conv_dim) return;
  const int W = int(p.d_conv);
  float* state = p.conv_state + (int64_t(p.slots[s]) * p.conv_dim + c) * W;
  float v[kMaxConv];
  M2_UNROLL
  for (int k = 0; k < kMaxConv; ++k) v[k] = k < W ? ConvInput(p, s, c, p.seq_len - W + k, state) : 0.0f;
  M2_UNROLL
  for (int k = 0; k < kMaxConv; ++k)
    if (k < W) state[k] = v[k];
}

// One token per sequence: shift the window, append, convolve. Reads its input before writing
// the same element of out, so out may alias xbc.
__global__ void ConvStepKernel(cuda_args::ConvParams p) {
  M2_GRID_DEPENDENCY();
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t i = blockIdx.y;
  if (c >= p.conv_dim) return;
  StepConvChannel(p, i, c, LoadConvChannel(p, i, c), Get(p.xbc, i, c));
}

// The prefill reads inputs of neighbouring steps from other threads: out must not overlap xbc
// (the backend copies xbc aside first when it does).
void LaunchConvPrefill(const cuda_args::ConvParams& p, cudaStream_t stream) {
  if (p.n_seqs <= 0 || p.seq_len <= 0) return;
  M2_KCHECK(p.d_conv >= 1 && p.d_conv <= kMaxConv);
  M2_KCHECK(p.n_seqs <= 65535 && (p.seq_len + kConvTime - 1) / kConvTime <= 65535);
  const dim3 block(128);
  M2_LAUNCH(ConvPrefillKernel, dim3(CeilDiv(p.conv_dim, 128), CeilDiv(p.seq_len, kConvTime), unsigned(p.n_seqs)),
            block, stream, p);
  M2_LAUNCH(ConvStateKernel, dim3(CeilDiv(p.conv_dim, 128), unsigned(p.n_seqs)), block, stream, p);
}

void LaunchConvStep(const cuda_args::ConvParams& p, cudaStream_t stream) {
  if (p.n_seqs <= 0) return;
  M2_KCHECK(p.d_conv >= 1 && p.d_conv <= kMaxConv && p.n_seqs <= 65535);
  M2_LAUNCH(ConvStepKernel, dim3(CeilDiv(p.conv_dim, 128), unsigned(p.n_seqs)), dim3(128), stream, p);
}

}  // namespace mamba2::M2_KERNEL_NS
