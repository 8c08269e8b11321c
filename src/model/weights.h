// The model's tensors, found by name in a WeightStore, checked against the shapes the config
// implies, and handed to the backend (which may keep, convert or upload them).
#pragma once

#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"
#include "io/weight_store.h"
#include "model/config.h"

namespace mamba2 {

struct LayerWeights {
  TensorView norm;       // [d_model]              block pre-norm (RMSNorm)
  TensorView in_proj;    // [in_proj_rows, d_model] rows: z, xBC, dt
  TensorView conv_w;     // [conv_dim, d_conv]     stored [conv_dim, 1, d_conv]
  TensorView conv_b;     // [conv_dim]             data == nullptr when the model has no conv bias
  TensorView dt_bias;    // [n_heads]
  TensorView A_log;      // [n_heads]
  TensorView D;          // [n_heads]
  TensorView gated_norm; // [d_inner]
  TensorView out_proj;   // [d_model, d_inner]
};

struct ModelWeights {
  TensorView embedding;  // [vocab_rows, d_model]
  TensorView lm_head;    // [vocab_rows, d_model]  (the embedding when tied)
  TensorView norm_f;     // [d_model]
  std::vector<LayerWeights> layers;
};

// Checks every tensor's presence, shape and dtype, then prepares it on `backend`.
Result<ModelWeights> BindWeights(const WeightStore& store, const ModelConfig& config, Backend& backend);

}  // namespace mamba2
