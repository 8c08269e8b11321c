// Which tokens each perplexity protocol feeds the model and which it scores.
//
// A document is a token sequence `seq` (for lm-eval-wikitext it starts with the prefix token).
// A window feeds seq[start, start + length) to the model from a zero state; its last
// `n_scored` positions are scored, position i predicting seq[i + 1]. So the scored targets are
// seq[start + length - n_scored + 1, start + length + 1). `row` numbers the window's first
// scored position in the protocol's canonical order (documents in order, windows in order,
// positions in order), which is also the row order of a --save-logits file.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace mamba2 {

struct PplWindow {
  int32_t doc = 0;
  int64_t start = 0;
  int64_t length = 0;
  int64_t n_scored = 0;
  int64_t row = 0;
};

// lm-evaluation-harness loglikelihood_rolling (get_rolling_token_windows with context_len=1,
// then make_disjoint_window) for one document of n tokens, seq = [prefix] + tokens, window
// size max_len:
//  - window 1 scores tokens [0, m), m = min(max_len, n), fed [prefix] + tokens[0, m-1);
//  - each later window scores the next min(max_len, remaining) tokens [b, e); it is fed the
//    max_len tokens tokens[e-1-max_len, e-1): for a full window that is the one token before
//    it plus all but its last scored token; the final, shorter window therefore also sees
//    max_len - (e - b) + 1 already scored tokens as context (the harness keeps its input
//    max_len long).
// An empty document gives no windows. Appends to `out`; rows continue from out's last window.
void AppendRollingWindows(int32_t doc, int64_t n_tokens, int64_t max_len, std::vector<PplWindow>& out);

// Hugging Face's perplexity guide (strided sliding window) over seq of n tokens, no prefix:
// windows begin at 0, stride, 2*stride, ... and cover [begin, min(begin + ctx, n)), the last
// being the first that reaches n. Token p is scored in the window where it first appears,
// never as a window's first token: window 1 scores tokens [1, e1), a later window scores
// [max(prev_end, begin + 1), end) -- its last `stride` tokens when stride < ctx. With
// stride < ctx every token but the first is scored exactly once; with stride == ctx (disjoint
// windows) each window's first token has no context and goes unscored, as in the guide.
// The window is fed tokens [begin, end - 1). Windows that would score nothing are dropped.
void AppendSlidingWindows(int32_t doc, int64_t n_tokens, int64_t ctx, int64_t stride, std::vector<PplWindow>& out);

// One window over the whole document (the state carries through it): scores tokens [1, n).
void AppendStatefulWindow(int32_t doc, int64_t n_tokens, std::vector<PplWindow>& out);

// Total scored positions (the last window's row + n_scored).
int64_t TotalScored(const std::vector<PplWindow>& windows);

}  // namespace mamba2
