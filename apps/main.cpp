// mamba2: command-line front end of mamba2.cpp.
#include <cstdio>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"mamba2.cpp: inference for Mamba-2 state-space language models"};
  app.require_subcommand(1);
  std::vector<mamba2::app::Runner> runners;
  runners.push_back(mamba2::app::AddInfo(app));
  runners.push_back(mamba2::app::AddLogits(app));
  runners.push_back(mamba2::app::AddGenerate(app));
  runners.push_back(mamba2::app::AddTokenize(app));
  runners.push_back(mamba2::app::AddPerplexity(app));
  runners.push_back(mamba2::app::AddBench(app));
  runners.push_back(mamba2::app::AddServe(app));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // Exactly one subcommand was parsed; its runner is the one whose subcommand got used.
  std::vector<CLI::App*> subs = app.get_subcommands({});
  for (size_t i = 0; i < subs.size() && i < runners.size(); ++i)
    if (subs[i]->parsed()) return runners[i]();
  return 2;
}
