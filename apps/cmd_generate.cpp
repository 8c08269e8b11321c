// mamba2 generate: stream text from a prompt. With no -m it uses the bundled model.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "io/read_file.h"
#include "engine/generator.h"

namespace mamba2::app {
namespace {

struct GenerateArgs {
  std::string dir, prompt, prompt_file, tokenizer, backend = "cpu";
  std::vector<std::string> stop;
  int64_t n = 256;
  float temp = 0.8f, top_p = 0.95f, min_p = 0.0f, repeat_penalty = 1.0f;
  int top_k = 40, threads = 0;
  uint64_t seed = 0;
  bool seed_given = false, prompt_given = false;
};

int RunGenerate(GenerateArgs a) {
  if (a.dir.empty()) a.dir = DefaultModelDir();
  auto bundle = LoadModelAndTokenizer(a.dir, a.tokenizer, a.backend, a.threads, /*max_slots=*/1);
  if (!bundle.ok()) return Fail(bundle.status());
  std::string text = a.prompt;
  if (!a.prompt_file.empty()) {
    auto file = ReadFile(a.prompt_file);
    if (!file.ok()) return Fail(file.status().With("prompt file"));
    text = std::move(file).value();
  }
  // With no prompt at all, the bundled model starts a scene; anywhere else a prompt is required.
  if (!a.prompt_given && a.prompt_file.empty()) {
    if (a.dir != DefaultModelDir()) return Fail(Status::Error("no prompt: give text with -p or -f"));
    text = "ROMEO:\n";
  }
  auto ids = bundle->tokenizer->Encode(text);
  if (!ids.ok()) return Fail(ids.status().With("prompt"));
  if (ids->empty()) return Fail(Status::Error("the prompt is empty: give text with -p or -f"));
  GenerateOptions o;
  o.max_tokens = a.n;
  o.stop = a.stop;
  o.sampling.temperature = a.temp;
  o.sampling.top_k = a.top_k;
  o.sampling.top_p = a.top_p;
  o.sampling.min_p = a.min_p;
  o.sampling.repetition_penalty = a.repeat_penalty;
  o.sampling.seed = a.seed_given ? a.seed : uint64_t(std::random_device{}());
  if (Status st = ValidateSamplingParams(o.sampling); !st.ok()) return Fail(st);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  Generator gen(bundle->model.get(), bundle->tokenizer.get());
  auto r = gen.Generate(*ids, o, [](const std::string& piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputc('\n', stdout);
  if (!r.ok()) return Fail(r.status());
  std::fprintf(stderr, "\nprompt: %lld tokens in %.3f s (%.1f tok/s); generation: %zu tokens in %.3f s (%.1f tok/s); stop: %s; "
               "tokens picked %s\n",
               (long long)r->prompt_tokens, r->prefill_seconds, r->prompt_tokens / std::max(r->prefill_seconds, 1e-9),
               r->tokens.size(), r->decode_seconds, double(r->tokens.size()) / std::max(r->decode_seconds, 1e-9),
               r->finish_reason.c_str(), r->picked_on_backend ? "on the backend" : "by the host sampler");
  return 0;
}

}  // namespace

Runner AddGenerate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt, streamed to stdout");
  auto a = std::make_shared<GenerateArgs>();
  cmd->add_option("-m,--model", a->dir, "model folder (default: the bundled tiny-shakespeare model)");
  cmd->add_option("-p,--prompt", a->prompt, "prompt text")->each([a](const std::string&) { a->prompt_given = true; });
  cmd->add_option("-f,--file", a->prompt_file, "read the prompt from a file");
  cmd->add_option("-n,--n-predict", a->n, "tokens to generate")->capture_default_str()->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  cmd->add_option("--temp", a->temp, "temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "top-k (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "top-p in (0, 1]")->capture_default_str();
  cmd->add_option("--min-p", a->min_p, "min-p in [0, 1]")->capture_default_str();
  cmd->add_option("--repeat-penalty", a->repeat_penalty, "repetition penalty (1 = off)")->capture_default_str();
  cmd->add_option("--seed", a->seed, "random seed")->each([a](const std::string&) { a->seed_given = true; });
  cmd->add_option("--stop", a->stop, "stop string (repeatable)");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (default: the one in the model folder)");
  cmd->add_option("--backend", a->backend, "ref | cpu | cuda")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (default: all cores)");
  return [a]() { return RunGenerate(*a); };
}

}  // namespace mamba2::app
