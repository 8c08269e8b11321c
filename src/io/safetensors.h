// The safetensors format: u64 LE header length, a JSON header, then the raw tensor bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "io/stored_tensor.h"

namespace mamba2 {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0;  // absolute byte offsets in the file, end exclusive
  uint64_t end = 0;
};

// Parses and fully validates the header of a whole safetensors file held in `data`
// (the data section is needed to bounds-check offsets). `file` is only used in messages.
// Entries come back in data order. Safe on arbitrary bytes (fuzzed).
Result<std::vector<SafetensorsEntry>> ParseSafetensorsHeader(const uint8_t* data, size_t size,
                                                             const std::string& file);

// Views for every tensor of a safetensors file held in `data` (which must outlive the set).
// Tensors whose bytes are not aligned to their element size are copied into owned buffers.
Result<TensorSet> ResolveSafetensors(const uint8_t* data, size_t size, const std::string& file);

}  // namespace mamba2
