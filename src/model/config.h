// The model's hyperparameters, read from either published config layout:
// state-spaces (mamba_ssm MambaConfig) or transformers (Mamba2Config).
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "backend/backend.h"
#include "core/status.h"

namespace mamba2 {

struct ModelConfig {
  std::string layout;  // "state-spaces" or "transformers"
  int64_t d_model = 0;
  int64_t n_layer = 0;
  int64_t vocab_size = 0;  // as the config states it (the tokenizer's vocabulary for state-spaces)
  int64_t vocab_rows = 0;  // embedding / lm_head rows: vocab_size padded to pad_vocab_size_multiple
  int64_t d_state = 128;
  int64_t d_conv = 4;
  int64_t expand = 2;
  int64_t head_dim = 64;
  int64_t n_groups = 1;
  int64_t d_inner = 0;  // expand * d_model
  int64_t n_heads = 0;  // d_inner / head_dim
  int64_t chunk_size = 256;
  float norm_eps = 1e-5f;
  float dt_limit_min = 0.0f;
  float dt_limit_max = std::numeric_limits<float>::infinity();
  bool tie_embeddings = true;
  bool conv_bias = true;
  int32_t bos_id = 0, eos_id = 0, pad_id = 0;

  MixerDims dims() const {
    return MixerDims{d_model, d_inner, d_state, n_heads, head_dim, n_groups, d_conv};
  }
  // in_proj rows: [z (d_inner), xBC (conv_dim), dt (n_heads)]
  int64_t in_proj_rows() const { return 2 * d_inner + 2 * n_groups * d_state + n_heads; }
  std::string Describe() const;
};

// Reads DIR/config.json. `file` names the source in error messages.
Result<ModelConfig> LoadConfig(const std::string& dir);
Result<ModelConfig> ParseConfig(const std::string& json_text, const std::string& file);

// JSON as Python's json module writes it may hold bare Infinity / -Infinity / NaN.
// Rewrites them (outside strings) into the strings "Infinity" etc. so a strict parser accepts them.
std::string QuoteNonFiniteJsonNumbers(const std::string& text);

}  // namespace mamba2
