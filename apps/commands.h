// The mamba2 CLI's subcommands. Each registers its options on a CLI11 subcommand and returns
// the function that runs it (exit code). The apps stay thin: the work lives in src/.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "backend/backend.h"
#include "core/status.h"
#include "model/mamba2_model.h"
#include "tokenizer/tokenizer.h"

namespace mamba2::app {

using Runner = std::function<int()>;

Runner AddInfo(CLI::App& app);
Runner AddLogits(CLI::App& app);
Runner AddGenerate(CLI::App& app);
Runner AddTokenize(CLI::App& app);
Runner AddPerplexity(CLI::App& app);  // cmd_perplexity.cpp
Runner AddBench(CLI::App& app);       // cmd_bench.cpp
Runner AddServe(CLI::App& app);       // cmd_serve.cpp

// The bundled model folder (models/tiny-shakespeare), found next to the build or the source tree.
std::string DefaultModelDir();

// --tokenizer FILE if given, else DIR/tokenizer.json; a clear error says what to download.
Result<std::unique_ptr<Tokenizer>> LoadTokenizerFor(const std::string& model_dir, const std::string& tokenizer_path);

struct LoadedModel {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Mamba2Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
};
Result<LoadedModel> LoadModelAndTokenizer(const std::string& dir, const std::string& tokenizer_path,
                                          const std::string& backend, int n_threads, int32_t max_slots);

// "ref", "cpu" or "cuda"; n_threads <= 0 means all cores.
// compute: "" (the backend's default), "f32" or "bf16" (cpu: the prefill matmul precision; cuda
// takes MAMBA2_CUDA_MATMUL instead).
Result<std::unique_ptr<Backend>> MakeBackendByName(const std::string& name, int n_threads,
                                                   const std::string& compute = "");

// Prints "error: <message>" to stderr and returns exit code 1.
int Fail(const Status& status);

}  // namespace mamba2::app
