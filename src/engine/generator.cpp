#include "engine/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>

namespace mamba2 {

std::string StopMatcher::Push(const std::string& text) {
  if (stopped_) return "";
  pending_ += text;
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) {
    if (s.empty()) continue;
    const size_t at = pending_.find(s);
    if (at != std::string::npos && at < cut) cut = at;
  }
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    return out;
  }
  // Keep the longest suffix that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& s : stops_)
    for (size_t n = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); n > keep; --n)
      if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StopMatcher::Flush() {
  std::string out;
  out.swap(pending_);
  return stopped_ ? "" : out;
}

Result<GenerateResult> Generator::Generate(const std::vector<int32_t>& prompt, const GenerateOptions& o,
                                           const TextCallback& on_text) {
  if (prompt.empty()) return Status::Error("the prompt is empty: give at least one token");
  if (o.max_tokens < 0) return Status::Error("max_tokens must be >= 0");
  RETURN_IF_ERROR(ValidateSamplingParams(o.sampling));
  using Clock = std::chrono::steady_clock;
  GenerateResult r;
  r.prompt_tokens = int64_t(prompt.size());
  const int64_t V = model_->config().vocab_rows;
  SamplingParams sp = o.sampling;
  if (sp.n_valid < 0) sp.n_valid = int32_t(std::min<int64_t>(V, tokenizer_ ? tokenizer_->vocab_size() : V));
  // The backend picks whenever the rule covers the parameters (all but a repetition penalty,
  // which needs the history): then no logits cross to the host.
  std::optional<PickParams> pick;
  if (o.pick_on_backend)
    if (Result<PickParams> p = PickParamsFrom(sp, std::min<int32_t>(sp.n_valid, int32_t(V))); p.ok()) pick = *p;
  r.picked_on_backend = pick.has_value();
  std::vector<float> logits(r.picked_on_backend ? 0 : static_cast<size_t>(V));  // [vocab_rows]
  std::optional<Sampler> sampler;
  if (!r.picked_on_backend) sampler.emplace(sp);
  std::vector<int32_t> history = prompt;
  const int32_t slot = o.slot;
  if (o.reset_slot) model_->ResetSlot(slot);
  auto t0 = Clock::now();
  RETURN_IF_ERROR(model_->Prefill(prompt, {&slot, 1}, LogitsMode::kLast, r.picked_on_backend ? nullptr : logits.data()));
  auto t1 = Clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  // The first token comes from the prompt's logits, each later one from a step on the previous.
  // Picking on the backend, the step that feeds a token is queued as soon as the token is known
  // not to end generation (below), so the backend computes while the host streams the token.
  auto next_token = [&](bool first, int32_t previous) -> Result<int32_t> {
    if (r.picked_on_backend) return first ? model_->StartPicking(slot, *pick) : model_->TakePicked();
    if (!first) RETURN_IF_ERROR(model_->Step({&previous, 1}, {&slot, 1}, logits.data()));
    return sampler->Sample(logits.data(), V, history);
  };
  Utf8Stream utf8;
  StopMatcher stop(o.stop);
  const int32_t eos = tokenizer_ ? tokenizer_->eos_id() : -1;
  r.finish_reason = "length";
  auto emit = [&](const std::string& piece) {
    if (piece.empty()) return true;
    r.text += piece;
    return on_text ? on_text(piece) : true;
  };
  int32_t id = -1;
  for (int64_t i = 0; i < o.max_tokens; ++i) {
    ASSIGN_OR_RETURN(id, next_token(i == 0, id));
    if (o.stop_at_eos && id == eos) {
      r.finish_reason = "eos";
      break;
    }
    if (r.picked_on_backend && i + 1 < o.max_tokens) RETURN_IF_ERROR(model_->QueueStepPicked());
    r.tokens.push_back(id);
    history.push_back(id);
    const std::string piece = stop.Push(utf8.Push(tokenizer_ ? tokenizer_->TokenBytes(id) : std::string()));
    if (!emit(piece)) {
      r.finish_reason = "cancelled";
      break;
    }
    if (stop.stopped()) {
      r.finish_reason = "stop";
      break;
    }
  }
  // A stop string or a cancel leaves one queued step behind: its token is not wanted.
  while (r.picked_on_backend && model_->queued_picks() > 0) RETURN_IF_ERROR(model_->TakePicked().status());
  if (r.finish_reason != "stop" && r.finish_reason != "cancelled") emit(stop.Push(utf8.Flush()) + stop.Flush());
  r.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return r;
}

}  // namespace mamba2
