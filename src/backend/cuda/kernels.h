// The kernel launchers the CUDA backend calls (defined in elementwise.cuh and ssd.cuh, compiled
// by elementwise.cu and ssd.cu). Each enqueues work on `stream` and returns at once; none
// allocates or synchronises, so a whole decode step can be captured into a CUDA graph.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "backend/cuda/kernel_args.h"
#include "sample/pick_rule.h"

namespace mamba2::cuda {

// Launches from this host thread from now on: with Hopper's programmatic dependent launch (each
// kernel may start while the one ahead of it ends; see M2_GRID_DEPENDENCY) or plain stream order.
void SetProgrammaticLaunch(bool on);

void LaunchFill(float* dst, float value, int64_t n, cudaStream_t stream);
// dtype: cuda_args::WDType of src.
void LaunchToF32(const void* src, int dtype, float* dst, int64_t n, cudaStream_t stream);
// half: cuda_args::kBF16 or kF16, the 16-bit format to convert to.
void LaunchToHalf(const void* src, int dtype, int half, uint16_t* dst, int64_t n, cudaStream_t stream);
// x [rows, cols] with row stride ld -> dense bf16 / f16 [rows, cols].
void LaunchPackHalf(const float* x, int64_t rows, int64_t cols, int64_t ld, int half, uint16_t* out,
                    cudaStream_t stream);

// out[rows, N] (fp32 or bf16) = x[rows, K] (fp32, as it is) times w[N, K]^T (w in `half`),
// fp32 sums; with `accumulate` (fp32 out) the product is added to out. Only where
// cuda_args::GemvApplies(rows, K, x, x_ld, w). With `conv`, also the conv step of LaunchConvStep
// over the columns conv->begin.. of out (one row per slot). With `norm` (kind other than
// kNoNorm), x is not read: the rows are that norm's output, computed in each block (only where
// cuda_args::GemvNormFits(rows, K); x then names the rows the norm kernel would have written,
// for the alignment checks).
void LaunchGemv(const float* x, int64_t rows, int64_t x_ld, const uint16_t* w, int half, int64_t N, int64_t K,
                const cuda_args::ActView& out, bool accumulate, const cuda_args::GemvConv* conv,
                const cuda_args::GemvNorm* norm, cudaStream_t stream);

void LaunchEmbed(const int32_t* ids, int64_t n, const void* table, int dtype, int64_t d, float* out,
                 int64_t out_ld, cudaStream_t stream);
void LaunchRmsNorm(const float* x, int64_t x_ld, const float* w, float eps, float* out, int64_t o_ld, int64_t rows,
                   int64_t cols, cudaStream_t stream);
// y, z: fp32 or bf16 views.
void LaunchGatedRmsNorm(const cuda_args::ActView& y, const cuda_args::ActView& z, const float* w, int64_t group_size,
                        float eps, float* out, int64_t o_ld, int64_t rows, int64_t cols, cudaStream_t stream);
// The two norms with their output rounded to `half` (cuda_args::kBF16 / kF16) into a dense
// [rows, cols] matrix: the packed operand of the 16-bit GEMM that follows.
void LaunchRmsNormHalf(const float* x, int64_t x_ld, const float* w, float eps, uint16_t* out, int half,
                       int64_t rows, int64_t cols, cudaStream_t stream);
void LaunchGatedRmsNormHalf(const cuda_args::ActView& y, const cuda_args::ActView& z, const float* w,
                            int64_t group_size, float eps, uint16_t* out, int half, int64_t rows, int64_t cols,
                            cudaStream_t stream);

void LaunchConvPrefill(const cuda_args::ConvParams& p, cudaStream_t stream);
void LaunchConvStep(const cuda_args::ConvParams& p, cudaStream_t stream);

// sc must hold PlanSsdScratch(...).bytes for these sizes, carved by CarveSsdScratch.
void LaunchSsdPrefill(const cuda_args::ScanParams& p, const cuda_args::SsdLayout& l,
                      const cuda_args::SsdScratch& sc, cudaStream_t stream);
void LaunchSsmStep(const cuda_args::ScanParams& p, cudaStream_t stream);

// The token pick of sample/pick_rule.h (sample.cuh): out_ids[r] = the id picked from row r
// (logits + r*ld, candidates [0, p.n_valid)) with u = PickUniform(p.seed, *draw, r); then
// *draw += 1 (on the stream, after every row has read it).
void LaunchPick(const float* logits, int64_t ld, int64_t n_rows, const PickParams& p, uint64_t* draw,
                int32_t* out_ids, cudaStream_t stream);

}  // namespace mamba2::cuda
