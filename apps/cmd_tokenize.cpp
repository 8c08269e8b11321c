// mamba2 tokenize: text -> ids on one line, or with --decode ids -> text.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "io/read_file.h"

namespace mamba2::app {
namespace {

struct TokenizeArgs {
  std::string dir, tokenizer, prompt, file;
  bool decode = false, prompt_given = false;
};

int RunTokenize(const TokenizeArgs& a) {
  auto tok = LoadTokenizerFor(a.dir.empty() && a.tokenizer.empty() ? DefaultModelDir() : a.dir, a.tokenizer);
  if (!tok.ok()) return Fail(tok.status());
  std::string text = a.prompt;
  if (!a.file.empty()) {
    auto file = ReadFile(a.file);
    if (!file.ok()) return Fail(file.status());
    text = std::move(file).value();
  } else if (!a.prompt_given) {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  }
  if (a.decode) {
    std::vector<int32_t> ids;
    std::stringstream ss(text);
    std::string t;
    while (ss >> t) {
      for (char& c : t)
        if (c == ',') c = ' ';
      std::stringstream inner(t);
      std::string part;
      while (inner >> part) {
        char* end = nullptr;
        const long v = std::strtol(part.c_str(), &end, 10);
        if (*end != '\0' || v < 0 || v >= (*tok)->vocab_size())
          return Fail(Status::Error("--decode: \"" + part + "\" is not a token id in [0, " +
                                    std::to_string((*tok)->vocab_size()) + ")"));
        ids.push_back(int32_t(v));
      }
    }
    const std::string out = (*tok)->Decode(ids);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  }
  auto ids = (*tok)->Encode(text);
  if (!ids.ok()) return Fail(ids.status());
  std::string line;
  for (size_t i = 0; i < ids->size(); ++i) line += (i ? " " : "") + std::to_string((*ids)[i]);
  std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace

Runner AddTokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Print token ids of a text (or with --decode, the text of ids)");
  auto a = std::make_shared<TokenizeArgs>();
  cmd->add_option("-m,--model", a->dir, "model folder holding tokenizer.json");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json path");
  cmd->add_option("-p,--prompt", a->prompt, "text (or ids with --decode)")->each([a](const std::string&) {
    a->prompt_given = true;
  });
  cmd->add_option("-f,--file", a->file, "read the text from a file (default: stdin)");
  cmd->add_flag("--decode", a->decode, "read ids, print text");
  return [a]() { return RunTokenize(*a); };
}

}  // namespace mamba2::app
