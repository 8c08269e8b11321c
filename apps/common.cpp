#include <cstdio>

#include "commands.h"

namespace mamba2::app {

int Fail(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return 1;
}

Result<std::unique_ptr<Backend>> MakeBackendByName(const std::string& name, int n_threads) {
  if (name == "ref") return MakeRefBackend();
  if (name == "cpu") return MakeCpuBackend(n_threads);
  if (name == "cuda") {
    std::unique_ptr<Backend> b = MakeCudaBackend();
    if (!b) return Status::Error("backend cuda: this build has no CUDA support or no GPU is present");
    return b;
  }
  return Status::Error("unknown backend \"" + name + "\" (expected ref, cpu or cuda)");
}

}  // namespace mamba2::app
