// mamba2 serve: placeholder until the command lands; says so and exits non-zero.
#include <cstdio>

#include "commands.h"

namespace mamba2::app {

Runner AddServe(CLI::App& app) {
  app.add_subcommand("serve", "OpenAI-compatible HTTP server (not implemented yet)")->allow_extras();
  return []() { return Fail(Status::Error("mamba2 serve is not implemented yet")); };
}

}  // namespace mamba2::app
