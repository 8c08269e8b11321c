// The mamba2 CLI's subcommands. Each registers its options on a CLI11 subcommand and returns
// the function that runs it (exit code). The apps stay thin: the work lives in src/.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "backend/backend.h"
#include "core/status.h"

namespace mamba2::app {

using Runner = std::function<int()>;

Runner AddInfo(CLI::App& app);
Runner AddLogits(CLI::App& app);

// "ref", "cpu" or "cuda"; n_threads <= 0 means all cores.
Result<std::unique_ptr<Backend>> MakeBackendByName(const std::string& name, int n_threads);

// Prints "error: <message>" to stderr and returns exit code 1.
int Fail(const Status& status);

}  // namespace mamba2::app
