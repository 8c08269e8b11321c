// Timed runs of a loaded model: prefill throughput, batch-1 decode, and decode after long
// contexts against recomputing the whole prefix. Medians over repetitions after a warm-up.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/mamba2_model.h"

namespace mamba2::bench {

struct ModelBenchOptions {
  std::vector<int64_t> prefill_lengths{512, 2048};
  int64_t decode_tokens = 128;             // per repetition of the batch-1 decode figure
  int64_t decode_prompt = 16;              // tokens prefilled before that decode
  std::vector<int64_t> contexts{128, 1024, 4096};
  int64_t context_decode_tokens = 32;      // decoded after each context, per repetition
                                           // (the model needs one state slot per context)
  int reps = 3;                            // timed repetitions (after one warm-up)
  int64_t pass_rows = 2048;                // the model's ModelOptions::max_rows (prefill pass size)
  uint64_t seed = 1;                       // prompt token ids
  std::function<void(const std::string&)> progress;  // one line per finished figure; may be empty
  // Memory read bandwidth (bytes/s), sampled right before each decode repetition so that the
  // decode figure is compared with the bandwidth of the same moment; may be empty.
  std::function<double()> probe_bandwidth;
};

struct PrefillRun {
  int64_t tokens = 0;
  double seconds = 0;  // median
  std::vector<double> all_seconds;
};

struct ContextRun {
  int64_t context = 0;
  double decode_s_per_token = 0;  // median over every timed token at this context
  double recompute_s = 0;         // median time to prefill the whole context (last logits)
};

struct ModelBenchRuns {
  std::vector<PrefillRun> prefill;
  double decode_s_per_token = 0;  // median over repetitions of the mean step time
  std::vector<double> decode_rep_s_per_token;
  // The same greedy decode with the token picked on the backend (a recorded step, only the id
  // read back, the next step queued before a token is taken), in the same repetitions.
  double picked_decode_s_per_token = 0;
  std::vector<double> picked_decode_rep_s_per_token;
  std::vector<double> decode_rep_bandwidth;  // probe_bandwidth() before each repetition
  std::vector<ContextRun> contexts;
  double seconds_total = 0;
};

// Uses state slot 0 of `model`, and slots 0..k-1 for k contexts (max_slots >= k).
Result<ModelBenchRuns> RunModelBench(Mamba2Model& model, const ModelBenchOptions& options);

}  // namespace mamba2::bench
