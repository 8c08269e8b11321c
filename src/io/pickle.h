// A small pickle VM for the data.pkl of torch.save'd state dicts (protocol 2, plus the
// common protocol 4/5 opcodes). It builds only the objects torch emits and refuses any
// other global, so loading a checkpoint never runs code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"

namespace mamba2 {

// One entry of the state dict: where its elements live, as torch describes them.
struct PickledTensor {
  std::string name;
  std::string storage_key;     // the zip entry is <root>/data/<storage_key>
  std::string storage_type;    // e.g. "torch.HalfStorage", for messages
  uint64_t storage_nbytes = 0; // numel * element size, as the persistent id claims
  DType dtype = DType::F32;    // the tensor's element type
  int64_t storage_offset = 0;  // in elements of dtype
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;  // in elements; same length as sizes
};

// Runs the pickle in data[0, size) and returns the root dict's tensors in pickle order
// (a key set twice keeps its first position and its last value, as a Python dict does).
// Errors: "unsupported pickle opcode 0x.. at offset N in FILE", "unsupported global X.Y ...",
// or a message naming the tensor. Safe on arbitrary bytes (fuzzed).
Result<std::vector<PickledTensor>> ParseTorchPickle(const uint8_t* data, size_t size, const std::string& file);

}  // namespace mamba2
