#include "io/stored_tensor.h"

#include <cstdlib>
#include <cstring>

namespace mamba2 {

Status CopyIntoOwned(TensorSet& set, TensorView& view) {
  const size_t n = view.nbytes();
  ASSIGN_OR_RETURN(AlignedBuffer buf, AlignedBuffer::Allocate(n));
  if (n) std::memcpy(buf.data(), view.data, n);
  view.data = buf.data();
  set.owned.push_back(std::move(buf));
  return Status::Ok();
}

}  // namespace mamba2
