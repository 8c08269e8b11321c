// Random Mamba-2 weights with the exact shapes of the published state-spaces checkpoints,
// initialised as mamba_ssm initialises (spec section 4) and built in memory: benchmarks and
// tests get a realistic model of any size without a download.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "io/stored_tensor.h"
#include "model/config.h"

namespace mamba2 {

// "130m", "370m", "780m", "1.3b", "2.7b" (spec 1.1).
const std::vector<std::string>& CheckpointShapeNames();

// The config.json of mamba2-<shape> (state-spaces layout), and its parsed form.
Result<std::string> CheckpointShapeConfigJson(const std::string& shape);
Result<ModelConfig> CheckpointShapeConfig(const std::string& shape);

struct RandomWeightsOptions {
  DType dtype = DType::F32;  // every tensor is stored in this dtype (f32, f16 or bf16)
  uint64_t seed = 1;
  int n_threads = 1;  // generation is parallel; the values do not depend on the thread count
};

// Every tensor of the model under its state-spaces name. The tied lm_head.weight is a second
// view of the embedding's bytes, as in the published pickles. Values depend only on
// (config, dtype, seed): each tensor has its own counter-based random stream.
Result<TensorSet> MakeRandomWeights(const ModelConfig& config, const RandomWeightsOptions& options);

// Bytes of distinct storage in a set (a tied tensor counted once).
size_t UniqueTensorBytes(const TensorSet& set);

}  // namespace mamba2
