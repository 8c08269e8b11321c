// What every weight-file reader hands back: named host views plus the buffers that back the copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

// Heap bytes aligned for any SIMD load; used where a tensor cannot be a view into the file
// (non-contiguous torch tensors, misaligned safetensors data).
class AlignedBuffer {
 public:
  static constexpr size_t kAlignment = 64;
  AlignedBuffer() = default;
  // Fails (rather than throwing) when the allocation does.
  static Result<AlignedBuffer> Allocate(size_t nbytes);
  uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t size_ = 0;
};

// Tensors resolved from one file's bytes. Views point either into those bytes or into `owned`.
struct TensorSet {
  std::vector<StoredTensor> tensors;
  std::vector<AlignedBuffer> owned;
};

// Copies `view`'s bytes into a fresh aligned buffer owned by `set` and repoints the view.
Status CopyIntoOwned(TensorSet& set, TensorView& view);

}  // namespace mamba2
