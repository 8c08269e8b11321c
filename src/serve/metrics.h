// Server counters and gauges, rendered in the Prometheus text exposition format for GET /metrics.
// Written by the HTTP threads and the scheduler thread; every field is atomic or under mu_.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace mamba2::serve {

class Metrics {
 public:
  // One HTTP response. Paths outside the API are counted as "other" (bounded label values).
  void CountResponse(const std::string& path, int status);
  int64_t responses(const std::string& endpoint, int status) const;

  std::string Render() const;

  // Tokens.
  std::atomic<int64_t> prompt_tokens{0};     // prompt tokens of admitted requests
  std::atomic<int64_t> prefill_tokens{0};    // prompt tokens actually run through the model
  std::atomic<int64_t> generated_tokens{0};  // sampled tokens
  std::atomic<int64_t> decode_steps{0};      // batched Step calls
  std::atomic<int64_t> decode_rows{0};       // sequences advanced by those calls (sum of batch sizes)
  // Scheduler state.
  std::atomic<int64_t> queue_length{0};  // waiting for a slot
  std::atomic<int64_t> running{0};       // holding a slot (prefilling or decoding)
  std::atomic<int64_t> max_seqs{0};
  std::atomic<int64_t> cancelled{0};     // sequences dropped because the client went away
  // Prompt-state cache.
  std::atomic<int64_t> cache_hits{0};
  std::atomic<int64_t> cache_misses{0};
  std::atomic<int64_t> cache_hit_tokens{0};  // prompt tokens not recomputed thanks to a hit
  std::atomic<int64_t> cache_bytes{0};
  std::atomic<int64_t> cache_budget_bytes{0};
  std::atomic<int64_t> cache_entries{0};
  std::atomic<int64_t> cache_evictions{0};
  std::atomic<int64_t> cache_snapshots{0};  // snapshots stored

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> responses_;  // (endpoint, status) -> count
};

}  // namespace mamba2::serve
