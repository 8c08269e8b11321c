// Scores token windows with a Mamba2Model: log p(target) of every scored position, summed per
// document, with optional per-position log-probability rows saved or compared to a saved run.
//
// Windows of equal length run together, one per state slot (up to `batch`, which must not
// exceed the model's max_slots); each starts from a zeroed state. A window is fed in pieces of
// at most `piece` tokens per sequence (the state carries across pieces), which bounds the host
// logits buffer to batch * piece * vocab_rows floats whatever the window length.
// Log-probabilities are a log-softmax over all vocab_rows logits (the padded vocabulary, as
// lm-evaluation-harness does with mamba_ssm's padded lm_head), computed in double from the
// backend's float32 logits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/perplexity_logits.h"
#include "engine/perplexity_windows.h"
#include "engine/progress.h"
#include "model/mamba2_model.h"

namespace mamba2 {

struct PplOptions {
  int32_t batch = 1;
  int64_t piece = 0;  // tokens per sequence per Prefill call; 0: ChoosePiece()
  int threads = 0;    // threads for the log-softmax (<= 0: all cores)
  Progress* progress = nullptr;        // Add(tokens fed)
  const LogprobWriter* save = nullptr;  // rows written at their canonical index
  const LogprobFile* kl_base = nullptr;  // compared row by row (checked by CheckKlBase first)
};

struct PplResult {
  std::vector<double> doc_loglik;  // sum of log p(target) per document
  std::vector<int64_t> doc_scored;  // scored positions per document
  double sum_nll = 0.0;             // -sum of all log p(target)
  int64_t n_scored = 0;
  int64_t tokens_fed = 0;
  double seconds = 0.0;
  bool has_kl = false;
  KlSummary kl;
};

// The scored targets of all windows in canonical row order.
std::vector<int32_t> CollectTargets(const std::vector<std::vector<int32_t>>& docs, const std::vector<PplWindow>& windows);
// FNV-1a over each window's length, scored count and fed tokens (the --save-logits context_hash).
uint64_t HashWindows(const std::vector<std::vector<int32_t>>& docs, const std::vector<PplWindow>& windows);

// Refuses a --kl-base file whose vocab_rows, row count or targets differ from this run's.
Status CheckKlBase(const LogprobFile& base, int64_t vocab_rows, const std::vector<int32_t>& targets);

// Host bytes a run needs beyond the loaded weights: the logits buffer, the model's workspace
// for one pass, the state slots and the log-softmax scratch.
struct PplMemory {
  int64_t logits = 0, workspace = 0, states = 0, scratch = 0;
  int64_t total() const { return logits + workspace + states + scratch; }
};
PplMemory EstimatePplMemory(const ModelConfig& config, int32_t batch, int64_t piece, int64_t max_rows, int threads);
// Largest piece <= max_window whose logits buffer stays within `budget_bytes` (at least one
// chunk, or max_window if that is smaller), a multiple of chunk_size when above it.
int64_t ChoosePiece(const ModelConfig& config, int32_t batch, int64_t max_window, int64_t budget_bytes);

// docs: token sequences the windows index; windows: from perplexity_windows.h.
Result<PplResult> ScoreWindows(Mamba2Model& model, const std::vector<std::vector<int32_t>>& docs,
                               const std::vector<PplWindow>& windows, const PplOptions& options);

}  // namespace mamba2
