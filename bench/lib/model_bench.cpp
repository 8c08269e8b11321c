#include "lib/model_bench.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <map>
#include <set>

#include "lib/stats.h"

namespace mamba2::bench {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::vector<int32_t> RandomIds(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(size_t(std::max<int64_t>(n, 0)));
  for (int32_t& id : ids) id = int32_t(rng() % uint64_t(vocab));
  return ids;
}

int32_t Argmax(const std::vector<float>& v) {
  return int32_t(std::max_element(v.begin(), v.end()) - v.begin());
}

class Runner {
 public:
  Runner(Mamba2Model& m, const ModelBenchOptions& o)
      : m_(m), o_(o), logits_(size_t(m.config().vocab_rows)), vocab_(std::min(m.config().vocab_size, m.config().vocab_rows)) {}

  // Prefill of `n` fresh tokens into `slot` (reset first); returns seconds.
  Result<double> Prefill(int64_t n, uint64_t seed, int32_t slot = 0) {
    const std::vector<int32_t> ids = RandomIds(n, vocab_, seed);
    m_.ResetSlot(slot);
    const double t0 = Now();
    RETURN_IF_ERROR(m_.Prefill(ids, {&slot, 1}, LogitsMode::kLast, logits_.data()));
    next_[slot] = Argmax(logits_);
    return Now() - t0;
  }

  // `n` greedy steps from the current state of `slot`; appends each step's seconds.
  Status Decode(int64_t n, std::vector<double>* step_seconds, int32_t slot = 0) {
    for (int64_t i = 0; i < n; ++i) {
      const int32_t tok = next_[slot];
      const double t0 = Now();
      RETURN_IF_ERROR(m_.Step({&tok, 1}, {&slot, 1}, logits_.data()));
      next_[slot] = Argmax(logits_);
      step_seconds->push_back(Now() - t0);
    }
    return Status::Ok();
  }

  // `n` greedy steps picked on the backend after a fresh prompt of `prompt` tokens in slot 0;
  // returns seconds per token.
  Result<double> DecodePicked(int64_t n, int64_t prompt, uint64_t seed) {
    const std::vector<int32_t> ids = RandomIds(prompt, vocab_, seed);
    const int32_t slot = 0;
    m_.ResetSlot(slot);
    RETURN_IF_ERROR(m_.Prefill(ids, {&slot, 1}, LogitsMode::kLast, nullptr));
    PickParams greedy;
    greedy.temperature = 0.0f;
    greedy.n_valid = int32_t(vocab_);
    RETURN_IF_ERROR(m_.StartPicking(slot, greedy).status());
    // As the generator runs it: the next step is queued before a token is taken, so the backend
    // never waits for the host, so only the wall time of all n means anything.
    const double t0 = Now();
    int64_t queued = 0;
    for (int64_t i = 0; i < n; ++i) {
      while (queued < n && queued <= i + 1 && m_.queued_picks() < 2) {
        RETURN_IF_ERROR(m_.QueueStepPicked());
        ++queued;
      }
      RETURN_IF_ERROR(m_.TakePicked().status());
    }
    return (Now() - t0) / double(std::max<int64_t>(n, 1));
  }

  // Prefill passes are of min(len, max_rows) rows; the first pass of a row count builds the
  // library's kernels for it, so a length whose pass sizes have all run needs no warm-up.
  bool NeedsWarmup(int64_t len) {
    const int64_t piece = std::min<int64_t>(len, std::max<int64_t>(1, o_.pass_rows));
    const bool fresh = warmed_.insert(piece).second;
    const int64_t tail = len % piece;
    const bool fresh_tail = tail ? warmed_.insert(tail).second : false;
    return fresh || fresh_tail;
  }

  void Say(const std::string& s) {
    if (o_.progress) o_.progress(s);
  }

 private:
  Mamba2Model& m_;
  const ModelBenchOptions& o_;
  std::vector<float> logits_;
  int64_t vocab_;
  std::set<int64_t> warmed_;
  std::map<int32_t, int32_t> next_;  // the greedy next token of each slot
};

std::string Fmt(const char* f, double a, double b = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

}  // namespace

Result<ModelBenchRuns> RunModelBench(Mamba2Model& model, const ModelBenchOptions& o) {
  if (o.reps < 1) return Status::Error("bench: --reps must be >= 1");
  const double t_start = Now();
  Runner r(model, o);
  ModelBenchRuns out;
  uint64_t seed = o.seed;

  for (int64_t len : o.prefill_lengths) {
    if (len <= 0) continue;
    PrefillRun pr;
    pr.tokens = len;
    if (r.NeedsWarmup(len)) RETURN_IF_ERROR(r.Prefill(len, seed++).status());
    for (int i = 0; i < o.reps; ++i) {
      ASSIGN_OR_RETURN(double s, r.Prefill(len, seed++));
      pr.all_seconds.push_back(s);
    }
    pr.seconds = Median(pr.all_seconds);
    r.Say(Fmt("prefill %.0f tokens: %.1f tok/s", double(len), double(len) / pr.seconds));
    out.prefill.push_back(pr);
  }

  if (o.decode_tokens > 0) {
    // Warm-up: one prompt and a few steps, both ways.
    const int64_t prompt = std::max<int64_t>(1, o.decode_prompt);
    RETURN_IF_ERROR(r.Prefill(prompt, seed++).status());
    std::vector<double> ignored;
    RETURN_IF_ERROR(r.Decode(std::min<int64_t>(8, o.decode_tokens), &ignored));
    RETURN_IF_ERROR(r.DecodePicked(std::min<int64_t>(8, o.decode_tokens), prompt, seed++).status());
    for (int i = 0; i < o.reps; ++i) {
      if (o.probe_bandwidth) out.decode_rep_bandwidth.push_back(o.probe_bandwidth());
      RETURN_IF_ERROR(r.Prefill(prompt, seed++).status());
      std::vector<double> steps;
      RETURN_IF_ERROR(r.Decode(o.decode_tokens, &steps));
      double sum = 0;
      for (double s : steps) sum += s;
      out.decode_rep_s_per_token.push_back(sum / double(steps.size()));
      ASSIGN_OR_RETURN(double picked, r.DecodePicked(o.decode_tokens, prompt, seed++));
      out.picked_decode_rep_s_per_token.push_back(picked);
    }
    out.decode_s_per_token = Median(out.decode_rep_s_per_token);
    out.picked_decode_s_per_token = Median(out.picked_decode_rep_s_per_token);
    r.Say(Fmt("decode: %.2f tok/s (logits to the host), %.2f tok/s picked on the backend",
              1.0 / out.decode_s_per_token, 1.0 / out.picked_decode_s_per_token));
  }

  // Contexts: recomputation time is the prefill of the whole context. For the decode after
  // each context, every context keeps its state in a slot of its own and the steps alternate
  // between the slots, so that any slowdown of the shared machine hits all contexts alike and
  // the comparison between them measures the context length only.
  std::vector<int64_t> ctxs;
  for (int64_t ctx : o.contexts)
    if (ctx > 0) ctxs.push_back(ctx);
  if (!ctxs.empty() && int64_t(ctxs.size()) > model.max_slots())
    return Status::Error("bench: " + std::to_string(ctxs.size()) + " contexts need as many state slots, the model has " +
                         std::to_string(model.max_slots()));
  std::vector<std::vector<double>> steps(ctxs.size());
  for (size_t c = 0; c < ctxs.size(); ++c) {
    ContextRun cr;
    cr.context = ctxs[c];
    if (r.NeedsWarmup(ctxs[c])) RETURN_IF_ERROR(r.Prefill(ctxs[c], seed++, int32_t(c)).status());
    std::vector<double> recompute;
    for (int i = 0; i < o.reps; ++i) {
      ASSIGN_OR_RETURN(double s, r.Prefill(ctxs[c], seed++, int32_t(c)));
      recompute.push_back(s);
    }
    cr.recompute_s = Median(recompute);
    out.contexts.push_back(cr);
  }
  for (size_t c = 0; c < ctxs.size(); ++c) {  // warm-up: one step each
    std::vector<double> ignored;
    RETURN_IF_ERROR(r.Decode(1, &ignored, int32_t(c)));
  }
  for (int64_t t = 0; t < o.context_decode_tokens * o.reps; ++t)
    for (size_t c = 0; c < ctxs.size(); ++c) RETURN_IF_ERROR(r.Decode(1, &steps[c], int32_t(c)));
  for (size_t c = 0; c < ctxs.size(); ++c) {
    ContextRun& cr = out.contexts[c];
    cr.decode_s_per_token = Median(steps[c]);
    r.Say(Fmt("context %.0f: decode %.3f ms/token", double(cr.context), cr.decode_s_per_token * 1e3) +
          Fmt(", recompute %.3f s", cr.recompute_s));
  }
  out.seconds_total = Now() - t_start;
  return out;
}

}  // namespace mamba2::bench
