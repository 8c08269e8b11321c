#include "serve/metrics.h"

#include <initializer_list>

namespace mamba2::serve {

namespace {

const char* const kEndpoints[] = {"/v1/completions", "/v1/chat/completions", "/v1/models", "/tokenize",
                                  "/detokenize",     "/health",              "/metrics"};

std::string Endpoint(const std::string& path) {
  for (const char* e : kEndpoints)
    if (path == e) return e;
  return "other";
}

void Metric(std::string& out, const char* name, const char* type, const char* help, int64_t value) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  out += name;
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

}  // namespace

void Metrics::CountResponse(const std::string& path, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++responses_[{Endpoint(path), status}];
}

int64_t Metrics::responses(const std::string& endpoint, int status) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = responses_.find({endpoint, status});
  return it == responses_.end() ? 0 : it->second;
}

std::string Metrics::Render() const {
  std::string out;
  out += "# HELP mamba2_requests_total HTTP responses by endpoint and status code.\n";
  out += "# TYPE mamba2_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, n] : responses_)
      out += "mamba2_requests_total{endpoint=\"" + key.first + "\",status=\"" + std::to_string(key.second) +
             "\"} " + std::to_string(n) + "\n";
  }
  Metric(out, "mamba2_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", prompt_tokens);
  Metric(out, "mamba2_prefill_tokens_total", "counter",
         "Prompt tokens run through the model (prompt tokens minus prefix-cache hits).", prefill_tokens);
  Metric(out, "mamba2_generated_tokens_total", "counter", "Generated (sampled) tokens.", generated_tokens);
  Metric(out, "mamba2_decode_steps_total", "counter", "Batched decode steps.", decode_steps);
  Metric(out, "mamba2_decode_rows_total", "counter", "Sequences advanced by batched decode steps.", decode_rows);
  Metric(out, "mamba2_queue_length", "gauge", "Requests waiting for a sequence slot.", queue_length);
  Metric(out, "mamba2_running_sequences", "gauge", "Sequences holding a slot (batch size).", running);
  Metric(out, "mamba2_max_sequences", "gauge", "Sequence slots (--max-seqs).", max_seqs);
  Metric(out, "mamba2_cancelled_total", "counter", "Sequences dropped because the client disconnected.",
         cancelled);
  Metric(out, "mamba2_prefix_cache_hits_total", "counter", "Requests that resumed from a cached prompt state.",
         cache_hits);
  Metric(out, "mamba2_prefix_cache_misses_total", "counter", "Requests with no usable cached prompt state.",
         cache_misses);
  Metric(out, "mamba2_prefix_cache_hit_tokens_total", "counter",
         "Prompt tokens skipped by resuming from cached states.", cache_hit_tokens);
  Metric(out, "mamba2_prefix_cache_bytes", "gauge", "Bytes held by the prompt-state cache.", cache_bytes);
  Metric(out, "mamba2_prefix_cache_budget_bytes", "gauge", "Prompt-state cache budget (--state-cache-mb).",
         cache_budget_bytes);
  Metric(out, "mamba2_prefix_cache_entries", "gauge", "Snapshots held by the prompt-state cache.",
         cache_entries);
  Metric(out, "mamba2_prefix_cache_evictions_total", "counter", "Snapshots evicted to fit the budget.",
         cache_evictions);
  Metric(out, "mamba2_prefix_cache_snapshots_total", "counter", "Snapshots stored.", cache_snapshots);
  return out;
}

}  // namespace mamba2::serve
