// Linked when the build has no CUDA toolkit: the factory reports that no device exists.
#include "backend/backend.h"

namespace mamba2 {
std::unique_ptr<Backend> MakeCudaBackend() { return nullptr; }
}  // namespace mamba2
