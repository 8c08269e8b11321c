// Fuzzes the whole torch checkpoint path: zip directory, pickle, storage bounds, strided copies.
#include <cstddef>
#include <cstdint>

#include "fuzz_touch.h"
#include "io/torch_zip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto set = mamba2::ResolveTorchZip(data, size, "fuzz.bin");
  if (set.ok()) mamba2::TouchAll(set.value());
  return 0;
}
