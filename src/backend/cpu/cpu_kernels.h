// The cpu backend's kernels, each parallel over the given pool. Vector weights are fp32 here;
// matrices keep the dtype the backend prepared them in. Shapes are as in backend.h.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace mamba2::cpu {

// out = x @ w^T (accumulate: out += x @ w^T); w [n, k] row-major in f32, f16 or bf16. Few rows:
// a threaded GEMV that streams w once in its stored dtype, fp32 arithmetic. Many rows: one
// library GEMM tile per thread, fp32 sgemm, or (bf16_gemm, w bf16) x rounded to bf16 into
// xb_scratch and a bf16 GEMM with fp32 accumulation.
void MatMul(ThreadPool& pool, Mat x, const TensorView& w, Mat out, bool accumulate, bool bf16_gemm,
            std::vector<uint16_t>& xb_scratch);

// Rows up to this count take the GEMV path, whose row results do not depend on the row count
// (a decode step of up to 8 sequences gives each the bits it gets alone). More rows go to the
// GEMM: a 16-row GEMV measured ~35% slower than sgemm's register tiles.
constexpr int64_t kGemvMaxRows = 8;

// Causal depthwise conv + bias + SiLU of n_seqs sequences of seq_len rows; sequence s uses and
// updates the conv state of slots[s]. out may alias xbc. w [conv_dim, d_conv]; bias may be null.
void CausalConv(ThreadPool& pool, Mat xbc, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                const MixerDims& dims, float* conv_state, const float* w, const float* bias, Mat out);

// Buffers of SsdChunked shared by its threads, reused between calls.
struct SsdScratch {
  std::vector<float> cb;            // C.B^T blocks of a chunk
  std::vector<uint16_t> operands;   // x, B, C of a chunk rounded to bf16 (bf16 products)
};

// Chunked SSD (spec 2.3) of n_seqs sequences of seq_len rows, starting from and updating the
// states of `slots`. y may alias in.x. bf16_products (only where HaveBf16Gemm()): the chunk
// products take bf16 operands with fp32 accumulation; the state and y stay fp32.
void SsdChunked(ThreadPool& pool, const ScanInputs& in, int64_t n_seqs, int64_t seq_len,
                const int32_t* slots, const MixerDims& dims, int64_t chunk_size, bool bf16_products,
                float* ssm_state, Mat y, SsdScratch& scratch);

// One recurrence step per row (row i belongs to slots[i]).
void SsmStep(ThreadPool& pool, const ScanInputs& in, const int32_t* slots, const MixerDims& dims,
             float* ssm_state, Mat y);

// The two norms; with `rounded` ([rows, cols] bf16) the rows go there rounded instead of to out
// (whose contents are then unspecified), for GemmBf16Rounded.
void RmsNorm(ThreadPool& pool, Mat x, const float* w, float eps, Mat out, uint16_t* rounded = nullptr);
void GatedRmsNorm(ThreadPool& pool, Mat y, Mat z, const float* w, int64_t group_size, float eps, Mat out,
                  uint16_t* rounded = nullptr);

// out = x @ w^T (+ out where accumulate) for x already rounded to bf16 (xb [rows, k] contiguous)
// and w bf16 [n, k]: the bf16 mode's prefill GEMM after its rounding. Only where HaveBf16Gemm().
void GemmBf16Rounded(ThreadPool& pool, const uint16_t* xb, int64_t rows, const TensorView& w, Mat out,
                     bool accumulate);

// dt of spec 2.2.6: softplus(raw + bias) (linear above 20), clamped to [dt_min, dt_max].
inline float DtValue(float raw, float bias, float dt_min, float dt_max) {
  const float v = raw + bias;
  float dt = v > 20.0f ? v : std::log1p(std::exp(v));
  if (dt < dt_min) dt = dt_min;
  if (dt > dt_max) dt = dt_max;
  return dt;
}
}  // namespace mamba2::cpu
