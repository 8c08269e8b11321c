#include "serve/server.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>

#include <httplib.h>

#include "serve/api_response.h"

namespace mamba2::serve {

using nlohmann::json;

namespace {

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(DumpJson(body), "application/json");
}

void SendError(httplib::Response& res, const ApiError& e) { SendJson(res, e.status, ErrorBody(e)); }

ApiError MakeError(int status, std::string message, std::string type, std::string code = "") {
  ApiError e;
  e.status = status;
  e.message = std::move(message);
  e.type = std::move(type);
  e.code = std::move(code);
  return e;
}

// Compares without an early exit, so response timing says nothing about the key.
bool SameSecret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

// What the model folder says about chat formatting: tokenizer_config.json's chat_template.
struct ChatSupport {
  bool has_template = false;
  std::string config_path;
};

ChatSupport ReadChatSupport(const std::string& model_dir) {
  ChatSupport c;
  if (model_dir.empty()) return c;
  c.config_path = (std::filesystem::path(model_dir) / "tokenizer_config.json").string();
  std::ifstream f(c.config_path);
  if (!f) return c;
  try {
    const json cfg = json::parse(f);
    auto it = cfg.find("chat_template");
    c.has_template = it != cfg.end() && !it->is_null();
  } catch (const std::exception&) {
    // An unreadable config means no usable template; the chat route says so.
  }
  return c;
}

}  // namespace

struct HttpServer::Impl {
  ServerOptions options;
  Mamba2Model* model = nullptr;
  const Tokenizer* tokenizer = nullptr;
  Metrics metrics;
  std::unique_ptr<Scheduler> scheduler;
  httplib::Server http;
  ChatSupport chat;
  int port = -1;
  int64_t started = 0;
  std::atomic<uint64_t> next_id{0};
  uint64_t id_salt = 0;
  std::mutex seed_mu;
  std::mt19937_64 seed_rng;

  void Routes();
  bool Authorized(const httplib::Request& req) const;
  void Completions(const httplib::Request& req, httplib::Response& res);
  void StreamCompletion(std::shared_ptr<RequestHandle> handle, const CompletionMeta& meta, bool logprobs,
                        bool include_usage, httplib::Response& res);
  void ChatCompletions(const httplib::Request& req, httplib::Response& res);
  void Tokenize(const httplib::Request& req, httplib::Response& res);
  void Detokenize(const httplib::Request& req, httplib::Response& res);
  TokenText token_text() const {
    return [tok = tokenizer](int32_t id) { return tok->Decode({id}); };
  }
  uint64_t RandomSeed() {
    std::lock_guard<std::mutex> lock(seed_mu);
    return seed_rng();
  }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  if (impl_) {
    impl_->scheduler->Stop();
    impl_->http.stop();
  }
}

const Metrics& HttpServer::metrics() const { return impl_->metrics; }
int HttpServer::port() const { return impl_->port; }

Result<std::unique_ptr<HttpServer>> HttpServer::Create(const ServerOptions& options, Mamba2Model* model,
                                                       const Tokenizer* tokenizer) {
  if (!model || !tokenizer) return Status::Error("serve: a model and a tokenizer are required");
  if (options.limits.max_prompt_tokens < 1)
    return Status::Error("--max-prompt-tokens must be >= 1, got " + std::to_string(options.limits.max_prompt_tokens));
  if (options.limits.max_tokens_limit < 1)
    return Status::Error("--max-tokens-limit must be >= 1, got " + std::to_string(options.limits.max_tokens_limit));
  if (options.port < 0 || options.port > 65535)
    return Status::Error("--port must be in [0, 65535], got " + std::to_string(options.port));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->options.limits.vocab_rows = model->config().vocab_rows;
  impl->model = model;
  impl->tokenizer = tokenizer;
  ASSIGN_OR_RETURN(impl->scheduler, Scheduler::Create(model, tokenizer, options.scheduler, &impl->metrics));
  impl->chat = ReadChatSupport(options.model_dir);
  impl->started = int64_t(std::time(nullptr));
  std::random_device rd;
  impl->id_salt = (uint64_t(rd()) << 32) ^ rd();
  impl->seed_rng.seed((uint64_t(rd()) << 32) ^ rd());
  impl->Routes();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

Status HttpServer::Bind() {
  Impl& m = *impl_;
  if (m.options.port == 0) {
    m.port = m.http.bind_to_any_port(m.options.host);
    if (m.port < 0) return Status::Error("cannot bind " + m.options.host + " to any port");
  } else {
    if (!m.http.bind_to_port(m.options.host, m.options.port))
      return Status::Error("cannot bind " + m.options.host + ":" + std::to_string(m.options.port) +
                           " (in use, or not an address of this machine)");
    m.port = m.options.port;
  }
  m.scheduler->Start();
  return Status::Ok();
}

Status HttpServer::Serve() {
  if (impl_->port < 0) return Status::Error("serve: Bind() first");
  impl_->http.listen_after_bind();
  return Status::Ok();
}

void HttpServer::Stop() {
  // Requests still waiting end first, so the HTTP worker threads they hold can be joined.
  impl_->scheduler->Stop();
  impl_->http.stop();
}

bool HttpServer::Impl::Authorized(const httplib::Request& req) const {
  if (options.api_key.empty() || req.path == "/health") return true;
  const std::string auth = req.get_header_value("Authorization");
  // The scheme is case-insensitive (RFC 7235); the key is not.
  const std::string prefix = "bearer ";
  if (auth.size() <= prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(auth[i])) != prefix[i]) return false;
  return SameSecret(auth.substr(prefix.size()), options.api_key);
}

void HttpServer::Impl::Routes() {
  const int threads = options.http_threads > 0
                          ? options.http_threads
                          : options.scheduler.max_seqs + options.scheduler.max_queue + 8;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http.set_payload_max_length(size_t(options.max_body_bytes));
  http.set_keep_alive_timeout(2);
  http.set_read_timeout(30);
  http.set_write_timeout(30);

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (Authorized(req)) return httplib::Server::HandlerResponse::Unhandled;
    SendError(res, MakeError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                             "invalid_request_error", "invalid_api_key"));
    res.set_header("WWW-Authenticate", "Bearer");
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses httplib sets by itself (unknown route 404, body too large 413, ...) get a JSON body too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message = "HTTP " + std::to_string(res.status);
    if (res.status == 404) message = "no route " + req.method + " " + req.path;
    if (res.status == 413) message = "the request body is too large";
    if (res.status == 400) message = "malformed HTTP request";
    SendError(res, MakeError(res.status, message, "invalid_request_error"));
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, MakeError(500, "internal error: " + what, "server_error"));
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics.CountResponse(req.path, res.status);
  });

  // Every handler body runs under Guard: nothing thrown escapes into httplib.
  auto guard = [](auto fn) {
    return [fn](const httplib::Request& req, httplib::Response& res) {
      try {
        fn(req, res);
      } catch (const std::exception& e) {
        SendError(res, MakeError(500, std::string("internal error: ") + e.what(), "server_error"));
      } catch (...) {
        SendError(res, MakeError(500, "internal error", "server_error"));
      }
    };
  };
  http.Post("/v1/completions", guard([this](const auto& req, auto& res) { Completions(req, res); }));
  http.Post("/v1/chat/completions", guard([this](const auto& req, auto& res) { ChatCompletions(req, res); }));
  http.Post("/tokenize", guard([this](const auto& req, auto& res) { Tokenize(req, res); }));
  http.Post("/detokenize", guard([this](const auto& req, auto& res) { Detokenize(req, res); }));
  http.Get("/v1/models", guard([this](const auto&, auto& res) {
             json model = {{"id", options.model_name}, {"object", "model"}, {"created", started},
                           {"owned_by", "mamba2.cpp"}};
             SendJson(res, 200, json{{"object", "list"}, {"data", json::array({model})}});
           }));
  http.Get("/health", guard([](const auto&, auto& res) { SendJson(res, 200, json{{"status", "ok"}}); }));
  http.Get("/metrics", guard([this](const auto&, auto& res) {
             res.status = 200;
             res.set_content(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8");
           }));
}

void HttpServer::Impl::Completions(const httplib::Request& req, httplib::Response& res) {
  json body;
  if (auto e = ParseJsonObject(req.body, &body)) return SendError(res, *e);
  CompletionRequest cr;
  if (auto e = ParseCompletionRequest(body, options.limits, &cr)) return SendError(res, *e);

  GenRequest g;
  if (cr.prompt_is_text) {
    if (int64_t(cr.prompt_text.size()) > options.limits.max_prompt_tokens * 64)
      return SendError(res, BadRequest("the prompt text is too long", "prompt", "context_length_exceeded"));
    auto ids = tokenizer->Encode(cr.prompt_text);
    if (!ids.ok()) return SendError(res, BadRequest("prompt: " + ids.status().message(), "prompt", "invalid_value"));
    g.prompt = std::move(ids).value();
  } else {
    g.prompt = std::move(cr.prompt_ids);
  }
  if (auto e = CheckPromptIds(g.prompt, options.limits)) return SendError(res, *e);
  g.max_tokens = cr.max_tokens;
  g.sampling = cr.sampling;
  if (!cr.seed_given) g.sampling.seed = RandomSeed();
  g.stop = cr.stop;
  g.stop_at_eos = !cr.ignore_eos;
  g.logprobs = cr.logprobs;

  std::shared_ptr<RequestHandle> handle;
  std::string why;
  switch (scheduler->Submit(std::move(g), &handle, &why)) {
    case SubmitStatus::kOk: break;
    case SubmitStatus::kQueueFull:
      res.set_header("Retry-After", "1");
      return SendError(res, MakeError(429,
                                      "the server is busy: " + std::to_string(options.scheduler.max_queue) +
                                          " requests are already waiting (--max-queue); retry later",
                                      "server_busy", "queue_full"));
    case SubmitStatus::kStopped:
      return SendError(res, MakeError(503, "the server is shutting down", "server_error"));
    case SubmitStatus::kInvalid: return SendError(res, BadRequest(why));
  }

  CompletionMeta meta;
  char id[48];
  std::snprintf(id, sizeof id, "cmpl-%016llx%08llx", (unsigned long long)id_salt,
                (unsigned long long)next_id.fetch_add(1));
  meta.id = id;
  meta.created = int64_t(std::time(nullptr));
  meta.model = options.model_name;
  const bool logprobs = cr.logprobs >= 0;
  if (cr.stream) return StreamCompletion(std::move(handle), meta, logprobs, cr.include_usage, res);

  const Update u = handle->Wait();
  if (u.finish_reason == "error") return SendError(res, MakeError(500, u.error, "server_error"));
  SendJson(res, 200, CompletionJson(meta, u, logprobs, token_text()));
}

void HttpServer::Impl::StreamCompletion(std::shared_ptr<RequestHandle> handle, const CompletionMeta& meta,
                                        bool logprobs, bool include_usage, httplib::Response& res) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto text = token_text();
  res.set_chunked_content_provider(
      "text/event-stream",
      [handle, meta, logprobs, include_usage, text](size_t, httplib::DataSink& sink) {
        try {
          Update u;
          // Without news for a while, a comment line: writing is how a vanished client shows.
          const auto heartbeat = std::chrono::steady_clock::now() + std::chrono::seconds(1);
          while (!handle->Take(&u, std::chrono::milliseconds(50))) {
            if (!sink.is_writable()) {
              handle->Cancel();
              return false;
            }
            if (std::chrono::steady_clock::now() > heartbeat) {
              static const char kBeat[] = ": keep-alive\n\n";
              if (!sink.write(kBeat, sizeof kBeat - 1)) {
                handle->Cancel();
                return false;
              }
              return true;  // called again at once
            }
          }
          std::string out;
          if (!u.text.empty() || !u.tokens.empty())
            out += SseEvent(StreamChunkJson(meta, u.text, logprobs ? &u.tokens : nullptr, "", text));
          if (u.finished) {
            if (u.finish_reason == "error") {
              out += SseEvent(ErrorBody(MakeError(500, u.error, "server_error")));
            } else {
              out += SseEvent(StreamChunkJson(meta, "", nullptr, u.finish_reason, text));
            }
            if (include_usage) out += SseEvent(StreamUsageJson(meta, u));
            out += "data: [DONE]\n\n";
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) {
            handle->Cancel();
            return false;
          }
          if (u.finished) sink.done();
          return true;
        } catch (...) {
          handle->Cancel();
          return false;
        }
      },
      [handle](bool success) {
        if (!success) handle->Cancel();
      });
}

void HttpServer::Impl::ChatCompletions(const httplib::Request& req, httplib::Response& res) {
  json body;
  if (auto e = ParseJsonObject(req.body, &body)) return SendError(res, *e);
  if (!chat.has_template)
    return SendError(res, BadRequest("this model has no chat template (no chat_template in " +
                                         (chat.config_path.empty() ? std::string("tokenizer_config.json")
                                                                   : chat.config_path) +
                                         "); use /v1/completions with a plain prompt",
                                     "messages", "chat_template_missing"));
  SendError(res, BadRequest("the model's chat template is a Jinja program, which this server does not run; use "
                            "/v1/completions and format the conversation in the prompt",
                            "messages", "chat_template_unsupported"));
}

void HttpServer::Impl::Tokenize(const httplib::Request& req, httplib::Response& res) {
  json body;
  if (auto e = ParseJsonObject(req.body, &body)) return SendError(res, *e);
  std::string text;
  if (auto e = ParseTokenizeRequest(body, &text)) return SendError(res, *e);
  auto ids = tokenizer->Encode(text);
  if (!ids.ok()) return SendError(res, BadRequest("prompt: " + ids.status().message(), "prompt", "invalid_value"));
  SendJson(res, 200, json{{"tokens", *ids}, {"count", ids->size()}});
}

void HttpServer::Impl::Detokenize(const httplib::Request& req, httplib::Response& res) {
  json body;
  if (auto e = ParseJsonObject(req.body, &body)) return SendError(res, *e);
  std::vector<int32_t> ids;
  if (auto e = ParseDetokenizeRequest(body, options.limits, &ids)) return SendError(res, *e);
  SendJson(res, 200, json{{"prompt", tokenizer->Decode(ids)}});
}

namespace {

// SIGINT/SIGTERM -> a byte on a pipe; a watcher thread stops the server (a handler may do little).
int g_signal_pipe[2] = {-1, -1};

void OnSignal(int) {
  const char b = 1;
  [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &b, 1);
}

}  // namespace

Status RunServer(const ServerOptions& options, Mamba2Model* model, const Tokenizer* tokenizer) {
  ASSIGN_OR_RETURN(std::unique_ptr<HttpServer> server, HttpServer::Create(options, model, tokenizer));
  RETURN_IF_ERROR(server->Bind());
  std::signal(SIGPIPE, SIG_IGN);
  if (g_signal_pipe[0] < 0 && pipe(g_signal_pipe) != 0) return Status::Error("pipe() failed");
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::thread watcher([&server] {
    char b = 0;
    while (read(g_signal_pipe[0], &b, 1) < 0 && errno == EINTR) {
    }
    if (b == 1) {
      std::fprintf(stderr, "mamba2 serve: stopping\n");
      server->Stop();
    }
  });
  std::fprintf(stderr,
               "mamba2 serve: listening on http://%s:%d (model %s, max-seqs %d, max-queue %d, state cache %lld MB%s)\n",
               options.host.c_str(), server->port(), options.model_name.c_str(), options.scheduler.max_seqs,
               options.scheduler.max_queue, (long long)(options.scheduler.cache_bytes >> 20),
               options.api_key.empty() ? "" : ", API key required");
  std::fflush(stderr);
  const Status st = server->Serve();
  // Wake the watcher if the server ended by itself.
  const char done = 2;
  [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &done, 1);
  watcher.join();
  server->Stop();
  return st;
}

}  // namespace mamba2::serve
