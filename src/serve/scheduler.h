// Continuous batching over one Mamba2Model.
//
// One scheduler thread owns the model. Requests wait in a bounded queue; each loop iteration
//   1. admits queued requests into free state slots (up to max_seqs), resuming each from the
//      deepest usable prompt-state snapshot (PromptStateCache) when there is one,
//   2. feeds prompt tokens in pieces of at most `snapshot_interval` tokens, ending at multiples
//      of it and at the prompt end, until `prefill_budget` tokens were fed this iteration (so a
//      long prompt never stalls the running streams for long), snapshotting at those boundaries,
//   3. runs ONE batched Step for every sequence that has a sampled token to feed,
// and each sequence samples with its own Sampler (own seed), history, UTF-8 and stop-string state.
// Finished, failed and cancelled sequences leave the batch and free their slot at once.
//
// HTTP threads talk to a sequence through its RequestHandle: they Take() text and token updates
// as they come and Cancel() when the client goes away.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "model/mamba2_model.h"
#include "sample/sampler.h"
#include "serve/metrics.h"
#include "serve/state_cache.h"
#include "tokenizer/tokenizer.h"

namespace mamba2::serve {

struct GenRequest {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 16;
  SamplingParams sampling;  // n_valid -1: the tokenizer's vocabulary
  std::vector<std::string> stop;
  bool stop_at_eos = true;
  int logprobs = -1;  // >= 0: report each token's log-probability and this many alternatives
};

struct TokenInfo {
  int32_t id = 0;
  float logprob = 0.0f;
  std::vector<TokenLogProb> top;  // best first
  int64_t text_offset = 0;        // bytes of completion text (before any stop cut) ahead of this token
};

// What happened to a request since the previous Take (text and tokens accumulate).
struct Update {
  std::string text;
  std::vector<TokenInfo> tokens;  // only when logprobs were asked for
  bool finished = false;
  std::string finish_reason;  // "stop" | "length" | "cancelled" | "error"
  std::string error;          // when finish_reason == "error"
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens resumed from the prompt-state cache
};

class RequestHandle {
 public:
  explicit RequestHandle(GenRequest request) : request_(std::move(request)) {}

  // Moves the news since the last call into *out (appending text and tokens); waits up to
  // `timeout` for some. Returns true if there was news or the request has finished.
  bool Take(Update* out, std::chrono::milliseconds timeout);
  // Waits for the end and returns everything (non-streaming responses).
  Update Wait();
  // The client is gone: the scheduler drops the sequence at its next iteration.
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  const GenRequest& request() const { return request_; }

 private:
  friend class Scheduler;
  void Publish(const std::string& text, const TokenInfo* token);
  void Finish(const std::string& reason, const std::string& error, int64_t prompt_tokens,
              int64_t completion_tokens, int64_t cached_tokens);

  const GenRequest request_;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  Update pending_;
  bool news_ = false;
};

struct SchedulerOptions {
  int32_t max_seqs = 8;      // sequences decoded together (state slots)
  int32_t max_queue = 64;    // requests waiting for a slot; more are refused
  int64_t snapshot_interval = 256;  // prompt piece / snapshot boundary (tokens)
  int64_t prefill_budget = 0;       // prompt tokens fed per iteration; 0: snapshot_interval
  int64_t cache_bytes = 512ll << 20;  // prompt-state cache budget; 0 disables it
};

enum class SubmitStatus { kOk, kQueueFull, kStopped, kInvalid };

class Scheduler {
 public:
  // The model must have at least options.max_seqs state slots; model, tokenizer and metrics
  // must outlive the scheduler.
  static Result<std::unique_ptr<Scheduler>> Create(Mamba2Model* model, const Tokenizer* tokenizer,
                                                   const SchedulerOptions& options, Metrics* metrics);
  ~Scheduler();

  void Start();  // runs the loop on its own thread
  void Stop();   // ends the loop; unfinished requests finish with an error

  // Queues a request. kQueueFull when max_queue requests are already waiting; kInvalid (with
  // *error set) for a request that breaks the scheduler's preconditions.
  SubmitStatus Submit(GenRequest request, std::shared_ptr<RequestHandle>* handle, std::string* error = nullptr);

  // One loop iteration on the caller's thread (tests drive the scheduler this way, without
  // Start). Returns false if there was nothing to do.
  bool RunOnce();

  int64_t snapshot_interval() const { return options_.snapshot_interval; }
  const PromptStateCache& cache() const { return cache_; }  // only while the loop is not running

 private:
  struct Sequence;
  Scheduler(Mamba2Model* model, const Tokenizer* tokenizer, const SchedulerOptions& options, Metrics* metrics);
  void Loop();
  void Admit();
  void StartSequence(std::shared_ptr<RequestHandle> handle);
  void PrefillSome();
  void DecodeStep();
  // Samples the next token of `seq` from its logits row and publishes it; may finish the sequence.
  void OnLogits(Sequence& seq, const float* logits);
  void FinishSequence(Sequence& seq, const std::string& reason, const std::string& error = "");
  void Retire();  // frees the slots of finished sequences
  void FailAll(const std::string& error);
  void PublishGauges();

  Mamba2Model* model_;
  const Tokenizer* tokenizer_;
  SchedulerOptions options_;
  Metrics* metrics_;
  int64_t vocab_rows_;
  int32_t n_valid_;
  int32_t eos_;

  std::mutex mu_;  // guards queue_ and stop_
  std::condition_variable cv_;
  std::deque<std::shared_ptr<RequestHandle>> queue_;
  bool stop_ = false;
  std::thread thread_;

  // Owned by the loop thread.
  std::vector<std::unique_ptr<Sequence>> active_;  // admission order
  std::vector<int32_t> free_slots_;
  PromptStateCache cache_;
  std::vector<float> prefill_logits_;  // [vocab_rows]
  std::vector<float> step_logits_;     // [max_seqs, vocab_rows]
};

}  // namespace mamba2::serve
