// mamba2 perplexity: placeholder until the command lands; says so and exits non-zero.
#include <cstdio>

#include "commands.h"

namespace mamba2::app {

Runner AddPerplexity(CLI::App& app) {
  app.add_subcommand("perplexity", "Perplexity of a text file (not implemented yet)")->allow_extras();
  return []() { return Fail(Status::Error("mamba2 perplexity is not implemented yet")); };
}

}  // namespace mamba2::app
