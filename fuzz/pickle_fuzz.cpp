// Fuzzes the pickle VM and state-dict extraction with raw data.pkl bytes.
#include <cstddef>
#include <cstdint>

#include "io/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = mamba2::ParseTorchPickle(data, size, "fuzz.pkl");
  (void)r;
  return 0;
}
