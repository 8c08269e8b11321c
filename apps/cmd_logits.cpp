// mamba2 logits: float32 logits of every position, written as .npy [n_tokens, vocab_rows].
#include <cstdio>
#include <sstream>
#include <vector>

#include "commands.h"
#include "io/npy.h"
#include "model/mamba2_model.h"

namespace mamba2::app {
namespace {

Result<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != tok.size() || v < INT32_MIN || v > INT32_MAX)
      return Status::Error("--ids: \"" + tok + "\" is not an integer token id");
    ids.push_back(int32_t(v));
  }
  if (ids.empty()) return Status::Error("--ids: no token ids given");
  return ids;
}

struct LogitsArgs {
  std::string dir, ids, out, backend = "cpu", compute;
  int64_t prefill = -1, chunk_size = 0;
  int threads = 0;
};

int RunLogits(const LogitsArgs& a) {
  auto ids = ParseIds(a.ids);
  if (!ids.ok()) return Fail(ids.status());
  const int64_t n = int64_t(ids->size());
  const int64_t k = a.prefill < 0 ? n : a.prefill;
  if (k < 1 || k > n)
    return Fail(Status::Error("--prefill " + std::to_string(a.prefill) + " must be in [1, " + std::to_string(n) + "]"));
  auto backend = MakeBackendByName(a.backend, a.threads, a.compute);
  if (!backend.ok()) return Fail(backend.status());
  ModelOptions opt;
  opt.chunk_size = a.chunk_size;
  auto model = Mamba2Model::Load(a.dir, backend->get(), opt);
  if (!model.ok()) return Fail(model.status());
  const int64_t V = (*model)->config().vocab_rows;
  std::vector<float> logits(static_cast<size_t>(n * V));  // [n_tokens, vocab_rows]
  const int32_t slot = 0;
  Status st = (*model)->Prefill(std::span<const int32_t>(ids->data(), size_t(k)), {&slot, 1}, LogitsMode::kAll,
                                logits.data());
  for (int64_t i = k; i < n && st.ok(); ++i)
    st = (*model)->Step({ids->data() + i, 1}, {&slot, 1}, logits.data() + i * V);
  if (!st.ok()) return Fail(st);
  st = WriteNpyF32(a.out, logits.data(), {n, V});
  if (!st.ok()) return Fail(st);
  std::fprintf(stderr, "wrote %s [%lld, %lld] (%lld prefill + %lld step, backend %s)\n", a.out.c_str(),
               (long long)n, (long long)V, (long long)k, (long long)(n - k), a.backend.c_str());
  return 0;
}

}  // namespace

Runner AddLogits(CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "Write the float32 logits of every position as .npy");
  auto a = std::make_shared<LogitsArgs>();
  cmd->add_option("-m,--model", a->dir, "model folder")->required();
  cmd->add_option("--ids", a->ids, "comma-separated token ids, e.g. 1,2,3")->required();
  cmd->add_option("-o,--out", a->out, "output .npy path")->required();
  cmd->add_option("--prefill", a->prefill, "first K tokens through prefill, the rest one by one through step");
  cmd->add_option("--chunk-size", a->chunk_size, "SSD chunk size (default: the config's)");
  cmd->add_option("--backend", a->backend, "ref | cpu | cuda")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (default: all cores)");
  cmd->add_option("--compute", a->compute, "cpu prefill matmul precision: f32 (default) | bf16");
  return [a]() { return RunLogits(*a); };
}

}  // namespace mamba2::app
