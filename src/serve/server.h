// The HTTP front end of `mamba2 serve`: OpenAI-compatible routes over a Scheduler.
//
//   POST /v1/completions       text completion, whole or streamed (server-sent events)
//   POST /v1/chat/completions  400 unless a chat template could be applied (none can, yet)
//   POST /tokenize, /detokenize, GET /v1/models, /health, /metrics (Prometheus text)
//
// Every handler catches everything: a request can get an error status, never stop the server.
// With an API key, every route but /health wants `Authorization: Bearer KEY`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "model/mamba2_model.h"
#include "serve/api_request.h"
#include "serve/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace mamba2::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (the bound one is printed and returned by port())
  std::string api_key;
  std::string model_name = "mamba2";  // reported by /v1/models and in responses
  std::string model_dir;              // where tokenizer_config.json (chat template) would be
  RequestLimits limits;               // vocab_rows is taken from the model
  SchedulerOptions scheduler;
  int http_threads = 0;                    // 0: max_seqs + max_queue + 8 (a waiting request holds one)
  int64_t max_body_bytes = 16ll << 20;
};

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> Create(const ServerOptions& options, Mamba2Model* model,
                                                    const Tokenizer* tokenizer);
  ~HttpServer();

  // Binds the socket (port 0: any free one) and starts the scheduler.
  Status Bind();
  int port() const;
  // Serves until Stop(); returns after in-flight requests were ended.
  Status Serve();
  // Thread-safe; callable from a signal-watching thread.
  void Stop();

  const Metrics& metrics() const;

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Create + Bind + Serve, printing "listening on http://HOST:PORT" to stderr, until SIGINT/SIGTERM.
Status RunServer(const ServerOptions& options, Mamba2Model* model, const Tokenizer* tokenizer);

}  // namespace mamba2::serve
