#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "backend/cpu/cpu_backend.h"

namespace mamba2::app {

int Fail(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.message().c_str());
  return 1;
}

Result<std::unique_ptr<Backend>> MakeBackendByName(const std::string& name, int n_threads,
                                                   const std::string& compute) {
  if (name == "cpu") {
    CpuBackendOptions o;
    o.n_threads = n_threads;
    if (!compute.empty()) {
      ASSIGN_OR_RETURN(o.matmul, ParseCpuMatMul(compute));
    }
    return MakeCpuBackend(o);
  }
  if (!compute.empty() && compute != "f32")
    return Status::Error("--compute " + compute + " applies to the cpu backend only (cuda: set MAMBA2_CUDA_MATMUL)");
  if (name == "ref") return MakeRefBackend();
  if (name == "cuda") {
    std::unique_ptr<Backend> b = MakeCudaBackend();
    if (!b) return Status::Error("backend cuda: this build has no CUDA support or no GPU is present");
    return b;
  }
  return Status::Error("unknown backend \"" + name + "\" (expected ref, cpu or cuda)");
}

std::string DefaultModelDir() {
  // Beside the executable first (an installed tree), then the source tree it was built from.
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const char* rel : {"../models/tiny-shakespeare", "../share/mamba2/models/tiny-shakespeare"}) {
      const std::filesystem::path p = exe.parent_path() / rel;
      if (std::filesystem::exists(p / "config.json")) return std::filesystem::weakly_canonical(p).string();
    }
  }
  return std::string(MAMBA2_SOURCE_DIR) + "/models/tiny-shakespeare";
}

Result<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const std::string& model_dir, const std::string& tokenizer_path) {
  std::string path = tokenizer_path;
  if (path.empty()) {
    path = model_dir + "/tokenizer.json";
    if (!std::filesystem::exists(path))
      return Status::Error(
          "no tokenizer: " + path + " does not exist. The state-spaces checkpoints ship none; they use the "
          "GPT-NeoX-20B tokenizer: download tokenizer.json from the Hugging Face repo EleutherAI/gpt-neox-20b "
          "and put it in " + model_dir + "/ (or pass --tokenizer FILE)");
  }
  auto tok = Tokenizer::Load(path);
  if (!tok.ok()) return tok.status();
  return std::make_unique<Tokenizer>(std::move(tok).value());
}

Result<LoadedModel> LoadModelAndTokenizer(const std::string& dir, const std::string& tokenizer_path,
                                          const std::string& backend, int n_threads, int32_t max_slots) {
  LoadedModel out;
  ASSIGN_OR_RETURN(out.tokenizer, LoadTokenizerFor(dir, tokenizer_path));
  ASSIGN_OR_RETURN(out.backend, MakeBackendByName(backend, n_threads));
  ModelOptions opt;
  opt.max_slots = max_slots;
  ASSIGN_OR_RETURN(out.model, Mamba2Model::Load(dir, out.backend.get(), opt));
  return out;
}

}  // namespace mamba2::app
