// What one forward pass costs, counted from the model's shapes: the FLOPs a prefill performs
// and the bytes a decode step must read. BENCHMARKS.md states the same formulas.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "model/config.h"

namespace mamba2::bench {

// FLOPs (2 per multiply-add) of a prefill of one sequence of `tokens` tokens that returns the
// last position's logits, as the cpu backend computes it:
//   projections = 2 * tokens * n_layer * (in_proj_rows * d_model + d_model * d_inner)
//   ssd         = 2 * n_layer * sum over chunks of length q (chunk_size, the last one shorter) of
//                 [ n_groups * d_state * T(q)              C.B^T
//                 + n_heads * head_dim * T(q)              intra-chunk (decay-masked CB) x
//                 + n_heads * head_dim * d_state * q       incoming state into y
//                 + n_heads * head_dim * d_state * q ]     chunk's contribution to the state
//                 where T(q) = sum over row blocks [i0, i1) of 64 rows of (i1 - i0) * i1: the
//                 block-triangular products compute each block of rows up to its last row's
//                 diagonal (T(256) = 40960, against q(q+1)/2 = 32896 for the exact triangle)
//   lm_head     = 2 * vocab_rows * d_model                 (one row of logits)
// Element-wise work (norms, conv, gates, exp) is not counted.
struct PrefillFlops {
  double projections = 0, ssd = 0, lm_head = 0;
  double total() const { return projections + ssd + lm_head; }
};
PrefillFlops CountPrefillFlops(const ModelConfig& c, int64_t tokens, int64_t chunk_size);

// Rows per block of the block-triangular SSD products (backend/cpu/cpu_ssd.cpp kTriBlock).
constexpr int64_t kSsdTriBlock = 64;

// Bytes a decode step (batch 1) reads:
//   weights = (n_layer * (in_proj_rows * d_model + d_model * d_inner) + vocab_rows * d_model) * matrix bytes
//             + d_model * matrix bytes (the embedding row)
//             + 4 * (n_layer * (d_model + conv_dim * (d_conv + 1) + 3 * n_heads + d_inner) + d_model)
//               (norm, conv, dt_bias, A_log, D vectors, kept as fp32)
//   state   = 4 * n_layer * (conv_dim * d_conv + n_heads * head_dim * d_state)   (fp32; also written back)
struct DecodeBytes {
  double weights = 0, state = 0;
  double total() const { return weights + state; }
};
DecodeBytes CountDecodeBytes(const ModelConfig& c, DType matrix_dtype);

}  // namespace mamba2::bench
