// mamba2 serve: OpenAI-compatible HTTP server (src/serve). With no -m it serves the bundled model.
#include <filesystem>

#include "commands.h"
#include "serve/server.h"

namespace mamba2::app {
namespace {

struct ServeArgs {
  std::string dir, tokenizer, backend = "cpu", host = "127.0.0.1", api_key, name;
  int port = 8080, max_seqs = 8, max_queue = 64, threads = 0;
  int64_t state_cache_mb = 512, max_prompt_tokens = 8192, max_tokens_limit = 4096, snapshot_interval = 256;
};

int RunServe(ServeArgs a) {
  if (a.dir.empty()) a.dir = DefaultModelDir();
  auto bundle = LoadModelAndTokenizer(a.dir, a.tokenizer, a.backend, a.threads, /*max_slots=*/a.max_seqs);
  if (!bundle.ok()) return Fail(bundle.status());
  serve::ServerOptions o;
  o.host = a.host;
  o.port = a.port;
  o.api_key = a.api_key;
  o.model_dir = a.dir;
  o.model_name = !a.name.empty() ? a.name : std::filesystem::path(a.dir).lexically_normal().filename().string();
  if (o.model_name.empty()) o.model_name = std::filesystem::path(a.dir).parent_path().filename().string();
  o.limits.max_prompt_tokens = a.max_prompt_tokens;
  o.limits.max_tokens_limit = a.max_tokens_limit;
  o.scheduler.max_seqs = a.max_seqs;
  o.scheduler.max_queue = a.max_queue;
  o.scheduler.cache_bytes = a.state_cache_mb << 20;
  o.scheduler.snapshot_interval = a.snapshot_interval;
  const Status st = serve::RunServer(o, bundle->model.get(), bundle->tokenizer.get());
  if (!st.ok()) return Fail(st);
  return 0;
}

}  // namespace

Runner AddServe(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching");
  auto a = std::make_shared<ServeArgs>();
  cmd->add_option("-m,--model", a->dir, "model folder (default: the bundled tiny-shakespeare model)");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (default: the one in the model folder)");
  cmd->add_option("--host", a->host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", a->port, "TCP port (0: any free port, printed at start)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--max-seqs", a->max_seqs, "sequences decoded together (state slots)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--max-queue", a->max_queue, "requests waiting for a slot; more get HTTP 429")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--api-key", a->api_key,
                  "require 'Authorization: Bearer KEY' on every route but /health (or set MAMBA2_API_KEY, "
                  "which other users cannot see in the process list)")
      ->envname("MAMBA2_API_KEY");
  cmd->add_option("--threads", a->threads, "CPU threads (default: all cores)");
  cmd->add_option("--state-cache-mb", a->state_cache_mb, "prompt-state cache budget in MiB (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  cmd->add_option("--snapshot-interval", a->snapshot_interval,
                  "prompts are fed, and their states cached, in pieces ending at multiples of this many tokens")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--backend", a->backend, "ref | cpu | cuda")->capture_default_str();
  cmd->add_option("--max-prompt-tokens", a->max_prompt_tokens, "longest prompt accepted (tokens)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option("--max-tokens-limit", a->max_tokens_limit, "largest max_tokens a request may ask for")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_option("--name", a->name, "model name reported by /v1/models (default: the folder's name)");
  return [a]() { return RunServe(*a); };
}

}  // namespace mamba2::app
