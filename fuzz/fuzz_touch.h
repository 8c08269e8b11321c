// Reads every byte of every resolved tensor so that ASan sees any view that escapes its buffer.
#pragma once

#include <cstdint>

#include "io/stored_tensor.h"

namespace mamba2 {

inline uint64_t TouchAll(const TensorSet& set) {
  uint64_t sum = 0;
  for (const StoredTensor& t : set.tensors) {
    const auto* p = static_cast<const volatile uint8_t*>(t.view.data);
    const size_t n = t.view.nbytes();
    for (size_t i = 0; i < n; ++i) sum += p[i];
  }
  return sum;
}

}  // namespace mamba2
