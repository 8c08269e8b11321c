// PyTorch >= 1.6 checkpoints (pytorch_model.bin): a zip of <root>/data.pkl plus one
// <root>/data/<key> entry per storage.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "io/stored_tensor.h"

namespace mamba2 {

// Tensors of the torch zip checkpoint held in `data` (which must outlive the set).
// Contiguous tensors are views into `data`; strided ones (e.g. a saved transpose) are copied
// into owned contiguous buffers. Tensors sharing a storage (tied weights) both resolve.
// `file` is used in messages. Safe on arbitrary bytes (fuzzed).
Result<TensorSet> ResolveTorchZip(const uint8_t* data, size_t size, const std::string& file);

}  // namespace mamba2
