// Writes an in-memory model (config text + tensors) as a model folder: config.json and one
// model.safetensors. Lets other engines (tools/llama_cpp_compare.sh) run the very same random
// weights that `mamba2 bench --shape` builds.
#pragma once

#include <string>

#include "core/status.h"
#include "io/stored_tensor.h"

namespace mamba2::bench {

// A tensor whose bytes another tensor already holds (a tied lm_head) is written once, under
// the first name; the engine's tied-embedding rule supplies the other.
Status WriteModelDir(const std::string& dir, const std::string& config_json, const TensorSet& set);

}  // namespace mamba2::bench
