// Decode-sized products of the 16-bit modes: out[r, n] = sum_k half(x[r, k]) w[n, k] for up to
// kGemvMaxRows rows, reading the fp32 activations directly. cuBLAS needs them packed to 16 bits
// first (a kernel of its own per product), and its small-N GEMMs are not built to stream the
// weights at the memory's rate; a decode step is almost nothing but these weight streams.
//
// A warp per output column: its lanes read the weight row in 16-byte pieces (8 halves), kGemvUnroll
// pieces in flight, and the matching activations of every row; the rows' sums are warp sums. The
// activations are rounded to the weights' format first, so each product is the one cuBLAS forms
// (exact in fp32) and only the order of the fp32 sums differs. Included by gemv.cu (nvcc) and by
// the host emulator test.
#pragma once

#include "backend/cuda/device_common.cuh"

namespace mamba2::M2_KERNEL_NS {

constexpr int kGemvUnroll = 4;

struct alignas(16) Halves8 {
  uint16_t h[8];
};
struct alignas(16) Floats4 {
  float v[4];
};

M2_DEVICE float RoundToHalf(float v, int half) { return HalfToF32(ToHalf(v, half), half); }

// kConv: the warp of column n in [conv.begin, conv.begin + conv_dim) also advances conv channel
// n - conv.begin of every row: it is the only thread that produces that channel's input, so it
// owns the channel's state.
template <int R, bool kConv>
__global__ void GemvKernel(const float* x, int64_t x_ld, const uint16_t* w, int half, int64_t N, int64_t K,
                           float* out, int64_t out_ld, cuda_args::GemvConv conv) {
  M2_GRID_DEPENDENCY();
  const int lane = int(threadIdx.x) & 31;
  const int64_t n = int64_t(blockIdx.x) * (kBlock / 32) + (int64_t(threadIdx.x) >> 5);
  if (n >= N) return;  // a whole warp; no block barriers follow
  // The conv channel this warp feeds, loaded now so that its latency hides behind the stream.
  const int64_t channel = n - conv.begin;
  const bool conv_lane = kConv && lane < R && channel >= 0 && channel < conv.conv.conv_dim;
  ConvChannel ch = {};
  if (conv_lane) ch = LoadConvChannel(conv.conv, lane, channel);
  const Halves8* wr = reinterpret_cast<const Halves8*>(w + n * K);
  const int64_t n_vec = K / 8;
  float acc[R];
  M2_UNROLL
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  for (int64_t v0 = lane; v0 < n_vec; v0 += 32 * kGemvUnroll) {
    Halves8 wv[kGemvUnroll];
    M2_UNROLL
    for (int u = 0; u < kGemvUnroll; ++u)
      if (v0 + 32 * u < n_vec) wv[u] = wr[v0 + 32 * u];
    M2_UNROLL
    for (int u = 0; u < kGemvUnroll; ++u) {
      const int64_t v = v0 + 32 * u;
      if (v >= n_vec) break;
      float wf[8];
      M2_UNROLL
      for (int i = 0; i < 8; ++i) wf[i] = HalfToF32(wv[u].h[i], half);
      M2_UNROLL
      for (int r = 0; r < R; ++r) {
        const Floats4* xr = reinterpret_cast<const Floats4*>(x + r * x_ld) + 2 * v;
        const Floats4 a = xr[0], b = xr[1];
        M2_UNROLL
        for (int i = 0; i < 4; ++i) {
          acc[r] += RoundToHalf(a.v[i], half) * wf[i];
          acc[r] += RoundToHalf(b.v[i], half) * wf[4 + i];
        }
      }
    }
  }
  M2_UNROLL
  for (int r = 0; r < R; ++r) {
    const float s = WarpSum(acc[r]);
    if (lane == r) {
      out[r * out_ld + n] = s;
      if (conv_lane) StepConvChannel(conv.conv, r, channel, ch, s);
    }
  }
}

template <int R>
void LaunchGemvRows(const float* x, int64_t x_ld, const uint16_t* w, int half, int64_t N, int64_t K, float* out,
                    int64_t out_ld, const cuda_args::GemvConv* conv, cudaStream_t stream) {
  const dim3 grid(CeilDiv(N, kBlock / 32)), block(kBlock);
  if (conv)
    M2_LAUNCH((GemvKernel<R, true>), grid, block, stream, x, x_ld, w, half, N, K, out, out_ld, *conv);
  else
    M2_LAUNCH((GemvKernel<R, false>), grid, block, stream, x, x_ld, w, half, N, K, out, out_ld,
              cuda_args::GemvConv{});
}

// Preconditions: cuda_args::GemvApplies(rows, K, x, x_ld, w); with conv, its columns within out.
void LaunchGemv(const float* x, int64_t rows, int64_t x_ld, const uint16_t* w, int half, int64_t N, int64_t K,
                float* out, int64_t out_ld, const cuda_args::GemvConv* conv, cudaStream_t stream) {
  if (N <= 0) return;
  M2_KCHECK(cuda_args::GemvApplies(rows, K, x, x_ld, w));
  M2_KCHECK(half == cuda_args::kBF16 || half == cuda_args::kF16);
  M2_KCHECK(!conv || (conv->begin >= 0 && conv->begin + conv->conv.conv_dim <= N && conv->conv.n_seqs == rows &&
                      conv->conv.d_conv >= 1 && conv->conv.d_conv <= kMaxConv));
  switch (rows) {
    case 1: LaunchGemvRows<1>(x, x_ld, w, half, N, K, out, out_ld, conv, stream); break;
    case 2: LaunchGemvRows<2>(x, x_ld, w, half, N, K, out, out_ld, conv, stream); break;
    case 3: LaunchGemvRows<3>(x, x_ld, w, half, N, K, out, out_ld, conv, stream); break;
    case 4: LaunchGemvRows<4>(x, x_ld, w, half, N, K, out, out_ld, conv, stream); break;
    case 5: LaunchGemvRows<5>(x, x_ld, w, half, N, K, out, out_ld, conv, stream); break;
    case 6: LaunchGemvRows<6>(x, x_ld, w, half, N, K, out, out_ld, conv, stream); break;
    case 7: LaunchGemvRows<7>(x, x_ld, w, half, N, K, out, out_ld, conv, stream); break;
    default: LaunchGemvRows<8>(x, x_ld, w, half, N, K, out, out_ld, conv, stream); break;
  }
}

}  // namespace mamba2::M2_KERNEL_NS
