// Fuzzes the safetensors header parser and view resolution with whole-file inputs.
#include <cstddef>
#include <cstdint>

#include "fuzz_touch.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto set = mamba2::ResolveSafetensors(data, size, "fuzz.safetensors");
  if (set.ok()) mamba2::TouchAll(set.value());
  return 0;
}
