// Writes small random Mamba-2 model folders for tests (transformers layout: config.json +
// model.safetensors, optionally sharded), initialised the way mamba_ssm initialises.
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace mamba2::testing {

struct RandomModelSpec {
  int64_t d_model = 64;
  int64_t n_layer = 2;
  int64_t d_state = 16;
  int64_t head_dim = 16;
  int64_t n_groups = 1;
  int64_t expand = 2;
  int64_t d_conv = 4;
  int64_t chunk_size = 16;
  int64_t vocab_rows = 96;
  bool tied = true;
  DType dtype = DType::F32;
  int shards = 1;         // > 1 writes model-0000K-of-0000N.safetensors + index
  bool ss_names = false;  // "backbone.embedding." (state-spaces) instead of "backbone.embeddings."
  uint64_t seed = 1;
};

// Creates DIR (a fresh temporary folder) and returns its path.
std::string WriteRandomModel(const RandomModelSpec& spec);

// A fresh empty temporary directory.
std::string MakeTempDir();

}  // namespace mamba2::testing
