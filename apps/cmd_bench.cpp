// mamba2 bench: placeholder until the command lands; says so and exits non-zero.
#include <cstdio>

#include "commands.h"

namespace mamba2::app {

Runner AddBench(CLI::App& app) {
  app.add_subcommand("bench", "Measure prefill and decode speed against the machine limits (not implemented yet)")->allow_extras();
  return []() { return Fail(Status::Error("mamba2 bench is not implemented yet")); };
}

}  // namespace mamba2::app
