// Decode-sized products of the 16-bit modes: out[r, n] = sum_k x[r, k] w[n, k] for up to
// kGemvMaxRows rows, the 16-bit weights times the fp32 activations as they are, fp32 sums.
// cuBLAS needs the activations packed to 16 bits first (a kernel of its own per product), and its
// small-N GEMMs are not built to stream the weights at the memory's rate; a decode step is almost
// nothing but these weight streams.
//
// A warp per output column: its lanes read the weight row in 16-byte pieces (8 halves), kGemvUnroll
// pieces in flight, and the matching activations of every row; the rows' sums are warp sums.
// Unlike the GEMM path the activations are not rounded to 16 bits: rounding them here would be
// redone by every column's warp (N times per element), several instructions per product, which
// would make the kernel issue-bound rather than bandwidth-bound from a few rows on; and it only
// loses precision. Included by gemv.cu (nvcc) and by the host emulator test.
#pragma once

#include "backend/cuda/norm_rows.cuh"

namespace mamba2::M2_KERNEL_NS {

constexpr int kGemvUnroll = 4;

// The rows the product multiplies, when a norm makes them (kNorm != kNoNorm): every block
// computes them into shared memory first, with the norm kernels' own code, so the product equals
// the norm kernel followed by the plain product bit for bit. Saves the norm's launch and its
// round trip through memory: in a decode step the norm kernels were two of a layer's five.
template <int R, int kNorm>
M2_DEVICE const float* GemvNormRows(const cuda_args::GemvNorm& nm, int64_t K) {
  __shared__ __align__(16) float rows[cuda_args::kGemvNormFloats];
  const F32Rows out{rows, K};
  M2_UNROLL
  for (int r = 0; r < R; ++r) {
    if constexpr (kNorm == cuda_args::kRms) {
      RmsNormRow<kGemvNormBatch>(nm.x + r * nm.x_ld, r, nm.w, nm.eps, out, K);
    } else {
      for (int64_t g0 = 0; g0 < K; g0 += nm.group_size)
        GatedRmsNormGroup<kGemvNormBatch>(nm.y, nm.z, r, g0, nm.w, nm.group_size, nm.eps, out);
    }
  }
  __syncthreads();
  return rows;
}

// The kGemvUnroll 16-byte weight pieces of one lane starting at piece v0.
M2_DEVICE void LoadPieces(Halves8 (&wv)[kGemvUnroll], const Halves8* wr, int64_t v0, int64_t n_vec) {
  M2_UNROLL
  for (int u = 0; u < kGemvUnroll; ++u)
    if (v0 + 32 * u < n_vec) wv[u] = wr[v0 + 32 * u];
}

// This warp's first column: warp w of block b takes column 8b + w, then (with a norm) every
// gridDim.x * 8 columns on.
M2_DEVICE int64_t FirstColumn() { return int64_t(blockIdx.x) * (kBlock / 32) + (int64_t(threadIdx.x) >> 5); }

// The weight row of this warp's first column, or null past the last: what the kernel asks L2 for
// before it waits for the kernel ahead (weights are no kernel's output), so that the stream is
// under way at once, and under a programmatic launch already during that kernel's tail.
M2_DEVICE const uint16_t* FirstColumnRow(const uint16_t* w, int64_t N, int64_t K) {
  const int64_t n = FirstColumn();
  return (threadIdx.x & 31) == 0 && n < N ? w + n * K : nullptr;
}

// kConv: the warp of column n in [conv.begin, conv.begin + conv_dim) also advances conv channel
// n - conv.begin of every row: it is the only thread that produces that channel's input, so it
// owns the channel's state.
// kHalf: the weights' format (cuda_args::kBF16 or kF16), fixed at compile time so that the
// conversion in the inner loop is a shift (bf16) or a single conversion, with no branch.
// kNorm: x is ignored and the rows come from GemvNormRows (see there). The block then walks
// column groups gridDim.x apart, so each block computes the norm once for several groups; its
// warps' first weight pieces are requested before the norm, to stream while it is computed.
template <int R, bool kConv, int kHalf, int kNorm>
__global__ void GemvKernel(const float* x, int64_t x_ld, const uint16_t* w, int64_t N, int64_t K,
                           cuda_args::ActView out, int accumulate, cuda_args::GemvConv conv, cuda_args::GemvNorm nm) {
  M2_GRID_DEPENDENCY_AFTER_PREFETCH(FirstColumnRow(w, N, K), K * int64_t(sizeof(uint16_t)));
  const int lane = int(threadIdx.x) & 31;
  const int64_t n_vec = K / 8;
  int64_t n = FirstColumn();
  Halves8 wv[kGemvUnroll];
  if constexpr (kNorm != cuda_args::kNoNorm) {  // constexpr: the plain product holds no shared memory
    if (n < N) LoadPieces(wv, reinterpret_cast<const Halves8*>(w + n * K), lane, n_vec);
    x = GemvNormRows<R, kNorm>(nm, K);  // every thread: block barriers
    x_ld = K;
  }
  for (bool first = true; n < N; n += int64_t(gridDim.x) * (kBlock / 32), first = false) {  // whole warps
    // The conv channel this warp feeds, loaded now so that its latency hides behind the stream.
    const int64_t channel = n - conv.begin;
    const bool conv_lane = kConv && lane < R && channel >= 0 && channel < conv.conv.conv_dim;
    ConvChannel ch = {};
    if (conv_lane) ch = LoadConvChannel(conv.conv, lane, channel);
    const Halves8* wr = reinterpret_cast<const Halves8*>(w + n * K);
    float acc[R];
    M2_UNROLL
    for (int r = 0; r < R; ++r) acc[r] = 0.0f;
    for (int64_t v0 = lane; v0 < n_vec; v0 += 32 * kGemvUnroll) {
      if (!(first && kNorm != cuda_args::kNoNorm && v0 == lane)) LoadPieces(wv, wr, v0, n_vec);
      M2_UNROLL
      for (int u = 0; u < kGemvUnroll; ++u) {
        const int64_t v = v0 + 32 * u;
        if (v >= n_vec) break;
        float wf[8];
        M2_UNROLL
        for (int i = 0; i < 8; ++i) wf[i] = HalfToF32(wv[u].h[i], kHalf);
        M2_UNROLL
        for (int r = 0; r < R; ++r) {
          const Floats4* xr = reinterpret_cast<const Floats4*>(x + r * x_ld) + 2 * v;
          const Floats4 a = xr[0], b = xr[1];
          M2_UNROLL
          for (int i = 0; i < 4; ++i) {
            acc[r] += a.v[i] * wf[i];
            acc[r] += b.v[i] * wf[4 + i];
          }
        }
      }
    }
    M2_UNROLL
    for (int r = 0; r < R; ++r) {
      float s = WarpSum(acc[r]);
      if (lane == r) {
        if (accumulate) s = Get(out, r, n) + s;
        Put(out, r, n, s);
        // The conv reads its input as stored, as ConvStepKernel would read it back.
        if (conv_lane) StepConvChannel(conv.conv, r, channel, ch, Stored(out, s));
      }
    }
  }
}

// A block per group of columns; with a norm, at most `resident` blocks (what the device holds at
// once), each taking as many groups as the others give or take one.
inline unsigned GemvBlocks(int64_t N, int kNorm, int64_t resident) {
  const int64_t groups = CeilDiv(N, kBlock / 32);
  if (kNorm == cuda_args::kNoNorm || groups <= resident) return unsigned(groups);
  const int64_t per_block = (groups + resident - 1) / resident;
  return CeilDiv(groups, per_block);
}

template <int R, bool kConv, int kHalf, int kNorm>
void LaunchGemvKernel(const float* x, int64_t x_ld, const uint16_t* w, int64_t N, int64_t K,
                      const cuda_args::ActView& out, int accumulate, const cuda_args::GemvConv& conv,
                      const cuda_args::GemvNorm& nm, cudaStream_t stream) {
  const auto kernel = GemvKernel<R, kConv, kHalf, kNorm>;
  const int64_t resident = kNorm == cuda_args::kNoNorm ? 0 : ResidentBlocks(kernel, kBlock);
  M2_LAUNCH(kernel, dim3(GemvBlocks(N, kNorm, resident)), dim3(kBlock), stream, x, x_ld, w, N, K, out, accumulate,
            conv, nm);
}

template <int R, int kHalf, int kNorm>
void LaunchGemvNorm(const float* x, int64_t x_ld, const uint16_t* w, int64_t N, int64_t K,
                    const cuda_args::ActView& out, int accumulate, const cuda_args::GemvConv* conv,
                    const cuda_args::GemvNorm& nm, cudaStream_t stream) {
  if (conv)
    LaunchGemvKernel<R, true, kHalf, kNorm>(x, x_ld, w, N, K, out, accumulate, *conv, nm, stream);
  else
    LaunchGemvKernel<R, false, kHalf, kNorm>(x, x_ld, w, N, K, out, accumulate, cuda_args::GemvConv{}, nm, stream);
}

template <int R, int kHalf>
void LaunchGemvRows(const float* x, int64_t x_ld, const uint16_t* w, int64_t N, int64_t K,
                    const cuda_args::ActView& out, int accumulate, const cuda_args::GemvConv* conv,
                    const cuda_args::GemvNorm& nm, cudaStream_t stream) {
  switch (nm.kind) {
    case cuda_args::kRms:
      LaunchGemvNorm<R, kHalf, cuda_args::kRms>(x, x_ld, w, N, K, out, accumulate, conv, nm, stream);
      break;
    case cuda_args::kGated:
      LaunchGemvNorm<R, kHalf, cuda_args::kGated>(x, x_ld, w, N, K, out, accumulate, conv, nm, stream);
      break;
    default: LaunchGemvNorm<R, kHalf, cuda_args::kNoNorm>(x, x_ld, w, N, K, out, accumulate, conv, nm, stream);
  }
}

template <int kHalf>
void LaunchGemvFormat(const float* x, int64_t rows, int64_t x_ld, const uint16_t* w, int64_t N, int64_t K,
                      const cuda_args::ActView& out, int accumulate, const cuda_args::GemvConv* conv,
                      const cuda_args::GemvNorm& nm, cudaStream_t stream) {
  switch (rows) {
    case 1: LaunchGemvRows<1, kHalf>(x, x_ld, w, N, K, out, accumulate, conv, nm, stream); break;
    case 2: LaunchGemvRows<2, kHalf>(x, x_ld, w, N, K, out, accumulate, conv, nm, stream); break;
    case 3: LaunchGemvRows<3, kHalf>(x, x_ld, w, N, K, out, accumulate, conv, nm, stream); break;
    case 4: LaunchGemvRows<4, kHalf>(x, x_ld, w, N, K, out, accumulate, conv, nm, stream); break;
    case 5: LaunchGemvRows<5, kHalf>(x, x_ld, w, N, K, out, accumulate, conv, nm, stream); break;
    case 6: LaunchGemvRows<6, kHalf>(x, x_ld, w, N, K, out, accumulate, conv, nm, stream); break;
    case 7: LaunchGemvRows<7, kHalf>(x, x_ld, w, N, K, out, accumulate, conv, nm, stream); break;
    default: LaunchGemvRows<8, kHalf>(x, x_ld, w, N, K, out, accumulate, conv, nm, stream); break;
  }
}

// Preconditions: cuda_args::GemvApplies(rows, K, x, x_ld, w) (x: the rows the norm would write,
// when there is one); with conv, its columns within out; with a norm, GemvNormFits(rows, K).
void LaunchGemv(const float* x, int64_t rows, int64_t x_ld, const uint16_t* w, int half, int64_t N, int64_t K,
                const cuda_args::ActView& out, bool accumulate, const cuda_args::GemvConv* conv,
                const cuda_args::GemvNorm* norm, cudaStream_t stream) {
  if (N <= 0) return;
  M2_KCHECK(cuda_args::GemvApplies(rows, K, x, x_ld, w));
  M2_KCHECK(half == cuda_args::kBF16 || half == cuda_args::kF16);
  M2_KCHECK(!accumulate || out.type == cuda_args::kF32);
  M2_KCHECK(!conv || (conv->begin >= 0 && conv->begin + conv->conv.conv_dim <= N && conv->conv.n_seqs == rows &&
                      conv->conv.d_conv >= 1 && conv->conv.d_conv <= kMaxConv));
  const cuda_args::GemvNorm nm = norm ? *norm : cuda_args::GemvNorm{};
  M2_KCHECK(nm.kind == cuda_args::kNoNorm || cuda_args::GemvNormFits(rows, K));
  M2_KCHECK(nm.kind != cuda_args::kGated || (nm.group_size > 0 && K % nm.group_size == 0));
  if (half == cuda_args::kBF16)
    LaunchGemvFormat<cuda_args::kBF16>(x, rows, x_ld, w, N, K, out, accumulate ? 1 : 0, conv, nm, stream);
  else
    LaunchGemvFormat<cuda_args::kF16>(x, rows, x_ld, w, N, K, out, accumulate ? 1 : 0, conv, nm, stream);
}

}  // namespace mamba2::M2_KERNEL_NS
