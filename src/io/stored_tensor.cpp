#include "io/stored_tensor.h"

#include <cstdlib>
#include <cstring>

namespace mamba2 {

Result<AlignedBuffer> AlignedBuffer::Allocate(size_t nbytes) {
  // aligned_alloc wants a non-zero multiple of the alignment.
  if (nbytes > SIZE_MAX - kAlignment) return Status::Error("cannot allocate " + std::to_string(nbytes) + " bytes");
  size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (!p) return Status::Error("out of memory allocating " + std::to_string(nbytes) + " bytes");
  AlignedBuffer b;
  b.data_.reset(static_cast<uint8_t*>(p));
  b.size_ = nbytes;
  return b;
}

void AlignedBuffer::Free::operator()(uint8_t* p) const { std::free(p); }

Status CopyIntoOwned(TensorSet& set, TensorView& view) {
  const size_t n = view.nbytes();
  ASSIGN_OR_RETURN(AlignedBuffer buf, AlignedBuffer::Allocate(n));
  if (n) std::memcpy(buf.data(), view.data, n);
  view.data = buf.data();
  set.owned.push_back(std::move(buf));
  return Status::Ok();
}

}  // namespace mamba2
