// What every weight-file reader hands back: named host views plus the buffers that back the copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/host_buffer.h"
#include "core/status.h"
#include "core/tensor.h"

namespace mamba2 {

struct StoredTensor {
  std::string name;
  // Host memory, contiguous row-major, dtype as stored. Usually points into a read-only
  // mmap: never write through it.
  TensorView view;
  std::string file;  // the file the bytes come from, for error messages
};

// Bytes that back a tensor which cannot be a view into its file (non-contiguous torch tensors,
// misaligned safetensors data) or that has no file (random weights): huge-page memory when large.
using AlignedBuffer = HostBuffer;

// Tensors resolved from one file's bytes. Views point either into those bytes or into `owned`.
struct TensorSet {
  std::vector<StoredTensor> tensors;
  std::vector<AlignedBuffer> owned;
};

// Copies `view`'s bytes into a fresh aligned buffer owned by `set` and repoints the view.
Status CopyIntoOwned(TensorSet& set, TensorView& view);

}  // namespace mamba2
