#include "serve/scheduler.h"

#include <algorithm>
#include <exception>

#include "engine/generator.h"

namespace mamba2::serve {

// ---------------------------------------------------------------------------------------------
// RequestHandle

bool RequestHandle::Take(Update* out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!news_) cv_.wait_for(lock, timeout, [&] { return news_; });
  if (!news_) return false;
  out->text += pending_.text;
  for (TokenInfo& t : pending_.tokens) out->tokens.push_back(std::move(t));
  if (pending_.finished) {
    out->finished = true;
    out->finish_reason = pending_.finish_reason;
    out->error = pending_.error;
    out->prompt_tokens = pending_.prompt_tokens;
    out->completion_tokens = pending_.completion_tokens;
    out->cached_tokens = pending_.cached_tokens;
  }
  pending_.text.clear();
  pending_.tokens.clear();
  // A finished request keeps reporting its end.
  news_ = pending_.finished;
  return true;
}

Update RequestHandle::Wait() {
  Update u;
  while (!u.finished) Take(&u, std::chrono::milliseconds(1000));
  return u;
}

void RequestHandle::Publish(const std::string& text, const TokenInfo* token) {
  if (text.empty() && !token) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.text += text;
    if (token) pending_.tokens.push_back(*token);
    news_ = true;
  }
  cv_.notify_all();
}

void RequestHandle::Finish(const std::string& reason, const std::string& error, int64_t prompt_tokens,
                           int64_t completion_tokens, int64_t cached_tokens) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.finished) return;
    pending_.finished = true;
    pending_.finish_reason = reason;
    pending_.error = error;
    pending_.prompt_tokens = prompt_tokens;
    pending_.completion_tokens = completion_tokens;
    pending_.cached_tokens = cached_tokens;
    news_ = true;
  }
  cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Scheduler

struct Scheduler::Sequence {
  std::shared_ptr<RequestHandle> handle;
  int32_t slot = -1;
  int64_t pos = 0;                // prompt tokens already in the slot's state
  std::vector<int32_t> history;  // prompt + generated ids (the repetition penalty's window)
  std::optional<Sampler> sampler;
  Utf8Stream utf8;
  StopMatcher stop;
  int32_t next_token = -1;  // sampled and published, not yet fed to the model
  int64_t generated = 0;
  int64_t text_bytes = 0;
  int64_t cached = 0;
  bool done = false;

  explicit Sequence(std::vector<std::string> stops) : stop(std::move(stops)) {}
  const GenRequest& req() const { return handle->request(); }
  int64_t prompt_len() const { return int64_t(req().prompt.size()); }
};

Result<std::unique_ptr<Scheduler>> Scheduler::Create(Mamba2Model* model, const Tokenizer* tokenizer,
                                                     const SchedulerOptions& options, Metrics* metrics) {
  if (!model || !tokenizer || !metrics) return Status::Error("scheduler: model, tokenizer and metrics are required");
  if (options.max_seqs < 1) return Status::Error("max_seqs must be >= 1, got " + std::to_string(options.max_seqs));
  if (options.max_seqs > model->max_slots())
    return Status::Error("max_seqs " + std::to_string(options.max_seqs) + " exceeds the model's " +
                         std::to_string(model->max_slots()) + " state slots");
  if (options.max_queue < 0) return Status::Error("max_queue must be >= 0");
  if (options.snapshot_interval < 1) return Status::Error("snapshot_interval must be >= 1");
  if (options.prefill_budget < 0) return Status::Error("prefill_budget must be >= 0");
  return std::unique_ptr<Scheduler>(new Scheduler(model, tokenizer, options, metrics));
}

Scheduler::Scheduler(Mamba2Model* model, const Tokenizer* tokenizer, const SchedulerOptions& options,
                     Metrics* metrics)
    : model_(model),
      tokenizer_(tokenizer),
      options_(options),
      metrics_(metrics),
      vocab_rows_(model->config().vocab_rows),
      n_valid_(int32_t(std::min<int64_t>(model->config().vocab_rows, tokenizer->vocab_size()))),
      eos_(tokenizer->eos_id()),
      cache_(options.cache_bytes) {
  if (options_.prefill_budget == 0) options_.prefill_budget = options_.snapshot_interval;
  for (int32_t s = options_.max_seqs - 1; s >= 0; --s) free_slots_.push_back(s);
  prefill_logits_.resize(size_t(vocab_rows_));
  step_logits_.resize(size_t(vocab_rows_ * options_.max_seqs));
  metrics_->max_seqs = options_.max_seqs;
  metrics_->cache_budget_bytes = std::max<int64_t>(0, options_.cache_bytes);
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { Loop(); });
}

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Whatever is left never ran to the end.
  std::deque<std::shared_ptr<RequestHandle>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(queue_);
  }
  for (auto& h : left) h->Finish("error", "the server is shutting down", 0, 0, 0);
  FailAll("the server is shutting down");
}

SubmitStatus Scheduler::Submit(GenRequest request, std::shared_ptr<RequestHandle>* handle, std::string* error) {
  auto invalid = [&](const std::string& m) {
    if (error) *error = m;
    return SubmitStatus::kInvalid;
  };
  if (request.prompt.empty()) return invalid("the prompt is empty");
  for (int32_t id : request.prompt)
    if (id < 0 || id >= vocab_rows_) return invalid("prompt token id " + std::to_string(id) + " out of range");
  if (request.max_tokens < 1) return invalid("max_tokens must be >= 1");
  if (request.sampling.n_valid < 0) request.sampling.n_valid = n_valid_;
  if (Status st = ValidateSamplingParams(request.sampling); !st.ok()) return invalid(st.message());
  if (request.logprobs > n_valid_) request.logprobs = n_valid_;
  auto h = std::make_shared<RequestHandle>(std::move(request));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return SubmitStatus::kStopped;
    // Requests whose clients left while waiting give their place up.
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->cancelled()) {
        ++metrics_->cancelled;
        (*it)->Finish("cancelled", "", int64_t((*it)->request().prompt.size()), 0, 0);
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (int64_t(queue_.size()) >= options_.max_queue) return SubmitStatus::kQueueFull;
    queue_.push_back(h);
    metrics_->queue_length = int64_t(queue_.size());
  }
  cv_.notify_one();
  *handle = std::move(h);
  return SubmitStatus::kOk;
}

void Scheduler::Loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !active_.empty(); });
      if (stop_) return;
    }
    try {
      RunOnce();
    } catch (const std::exception& e) {
      // bad_alloc and the like: the sequences in flight cannot be trusted, the server goes on.
      FailAll(std::string("internal error: ") + e.what());
    } catch (...) {
      FailAll("internal error");
    }
  }
}

bool Scheduler::RunOnce() {
  const bool had_work = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return !queue_.empty() || !active_.empty();
  }();
  for (auto& s : active_)
    if (!s->done && s->handle->cancelled()) {
      ++metrics_->cancelled;
      FinishSequence(*s, "cancelled");
    }
  Retire();
  Admit();
  PrefillSome();
  Retire();
  DecodeStep();
  Retire();
  PublishGauges();
  return had_work;
}

void Scheduler::Admit() {
  while (!free_slots_.empty()) {
    std::shared_ptr<RequestHandle> h;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty()) break;
      h = std::move(queue_.front());
      queue_.pop_front();
      metrics_->queue_length = int64_t(queue_.size());
    }
    if (h->cancelled()) {
      ++metrics_->cancelled;
      h->Finish("cancelled", "", int64_t(h->request().prompt.size()), 0, 0);
      continue;
    }
    StartSequence(std::move(h));
  }
}

void Scheduler::StartSequence(std::shared_ptr<RequestHandle> handle) {
  auto seq = std::make_unique<Sequence>(handle->request().stop);
  seq->handle = std::move(handle);
  const GenRequest& req = seq->req();
  seq->slot = free_slots_.back();
  free_slots_.pop_back();
  seq->history = req.prompt;
  seq->history.reserve(req.prompt.size() + size_t(req.max_tokens));
  seq->sampler.emplace(req.sampling);
  metrics_->prompt_tokens += seq->prompt_len();

  const PromptStateCache::Entry* hit = cache_.Lookup(req.prompt, options_.snapshot_interval);
  if (hit && model_->LoadSlot(seq->slot, hit->state).ok()) {
    seq->pos = int64_t(hit->tokens.size());
    seq->cached = seq->pos;
    ++metrics_->cache_hits;
    metrics_->cache_hit_tokens += seq->pos;
  } else {
    model_->ResetSlot(seq->slot);
    ++metrics_->cache_misses;
  }
  Sequence& s = *seq;
  active_.push_back(std::move(seq));
  // A snapshot of the whole prompt carries the logits of its last token: sample straight away.
  if (s.pos == s.prompt_len()) OnLogits(s, hit->logits.data());
}

void Scheduler::PrefillSome() {
  const int64_t G = options_.snapshot_interval;
  int64_t budget = options_.prefill_budget;
  for (auto& sp : active_) {
    Sequence& s = *sp;
    while (!s.done && s.pos < s.prompt_len() && budget > 0) {
      const int64_t n = s.prompt_len();
      // Pieces end at multiples of G and at the prompt end: the boundaries snapshots are taken at.
      const int64_t end = std::min(n, (s.pos / G + 1) * G);
      const bool last = end == n;
      const std::span<const int32_t> piece(s.req().prompt.data() + s.pos, size_t(end - s.pos));
      const Status st = model_->Prefill(piece, {&s.slot, 1}, last ? LogitsMode::kLast : LogitsMode::kNone,
                                        last ? prefill_logits_.data() : nullptr);
      if (!st.ok()) {
        FinishSequence(s, "error", st.message());
        break;
      }
      metrics_->prefill_tokens += end - s.pos;
      budget -= end - s.pos;
      s.pos = end;
      const std::span<const int32_t> prefix(s.req().prompt.data(), size_t(end));
      if (cache_.budget() > 0 && !cache_.Contains(prefix, last)) {
        std::vector<float> logits;
        if (last) logits = prefill_logits_;
        if (cache_.Insert(prefix, model_->SaveSlot(s.slot), std::move(logits))) ++metrics_->cache_snapshots;
      }
      if (last) OnLogits(s, prefill_logits_.data());
    }
    if (budget <= 0) break;
  }
}

void Scheduler::DecodeStep() {
  std::vector<Sequence*> batch;
  std::vector<int32_t> tokens, slots;
  for (auto& s : active_)
    if (!s->done && s->next_token >= 0) {
      batch.push_back(s.get());
      tokens.push_back(s->next_token);
      slots.push_back(s->slot);
    }
  if (batch.empty()) return;
  const Status st = model_->Step(tokens, slots, step_logits_.data());
  if (!st.ok()) {
    for (Sequence* s : batch) FinishSequence(*s, "error", st.message());
    return;
  }
  ++metrics_->decode_steps;
  metrics_->decode_rows += int64_t(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i]->next_token = -1;
    OnLogits(*batch[i], step_logits_.data() + int64_t(i) * vocab_rows_);
  }
}

void Scheduler::OnLogits(Sequence& s, const float* logits) {
  const GenRequest& req = s.req();
  const int32_t id = s.sampler->Sample(logits, vocab_rows_, s.history);
  auto flush = [&] { return s.stop.Push(s.utf8.Flush()) + s.stop.Flush(); };
  if (req.stop_at_eos && id == eos_) {
    s.handle->Publish(flush(), nullptr);
    FinishSequence(s, "stop");
    return;
  }
  ++s.generated;
  ++metrics_->generated_tokens;
  s.history.push_back(id);
  const std::string bytes = tokenizer_->TokenBytes(id);
  std::optional<TokenInfo> info;
  if (req.logprobs >= 0) {
    info.emplace();
    info->id = id;
    // Over the ids the sampler could pick (padding rows of the vocabulary excluded).
    const int64_t nv = std::min<int64_t>(req.sampling.n_valid, vocab_rows_);
    info->logprob = Sampler::LogProb(logits, nv, id);
    if (req.logprobs > 0) info->top = Sampler::TopLogProbs(logits, nv, req.logprobs);
    info->text_offset = s.text_bytes;
  }
  s.text_bytes += int64_t(bytes.size());
  std::string text = s.stop.Push(s.utf8.Push(bytes));
  if (s.stop.stopped()) {
    s.handle->Publish(text, info ? &*info : nullptr);
    FinishSequence(s, "stop");
    return;
  }
  if (s.generated >= req.max_tokens) {
    text += flush();
    s.handle->Publish(text, info ? &*info : nullptr);
    FinishSequence(s, "length");
    return;
  }
  s.handle->Publish(text, info ? &*info : nullptr);
  s.next_token = id;
}

void Scheduler::FinishSequence(Sequence& s, const std::string& reason, const std::string& error) {
  if (s.done) return;
  s.done = true;
  s.next_token = -1;
  s.handle->Finish(reason, error, s.prompt_len(), s.generated, s.cached);
}

void Scheduler::Retire() {
  for (auto it = active_.begin(); it != active_.end();) {
    if ((*it)->done) {
      free_slots_.push_back((*it)->slot);
      it = active_.erase(it);
    } else {
      ++it;
    }
  }
}

void Scheduler::FailAll(const std::string& error) {
  for (auto& s : active_) FinishSequence(*s, "error", error);
  Retire();
  PublishGauges();
}

void Scheduler::PublishGauges() {
  metrics_->running = int64_t(active_.size());
  metrics_->cache_bytes = cache_.bytes();
  metrics_->cache_entries = int64_t(cache_.entries());
  metrics_->cache_evictions = cache_.evictions();
}

}  // namespace mamba2::serve
