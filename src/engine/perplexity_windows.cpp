#include "engine/perplexity_windows.h"

#include <algorithm>

namespace mamba2 {
namespace {

int64_t NextRow(const std::vector<PplWindow>& out) {
  return out.empty() ? 0 : out.back().row + out.back().n_scored;
}

void Push(int32_t doc, int64_t start, int64_t length, int64_t n_scored, std::vector<PplWindow>& out) {
  if (n_scored <= 0) return;
  const int64_t row = NextRow(out);
  out.push_back(PplWindow{doc, start, length, n_scored, row});
}

}  // namespace

void AppendRollingWindows(int32_t doc, int64_t n_tokens, int64_t max_len, std::vector<PplWindow>& out) {
  CHECK(max_len >= 1);
  if (n_tokens <= 0) return;
  // seq = [prefix] + tokens, so tokens[k] is seq[k + 1].
  const int64_t first = std::min(max_len, n_tokens);
  Push(doc, 0, first, first, out);
  for (int64_t predicted = first; predicted < n_tokens;) {
    const int64_t n_pred = std::min(n_tokens - predicted, max_len);
    const int64_t end = predicted + n_pred;  // tokens[predicted, end) are scored
    // Fed tokens[end - 1 - max_len, end - 1) = seq[end - max_len, end).
    Push(doc, end - max_len, max_len, n_pred, out);
    predicted = end;
  }
}

void AppendSlidingWindows(int32_t doc, int64_t n_tokens, int64_t ctx, int64_t stride, std::vector<PplWindow>& out) {
  CHECK(ctx >= 2 && stride >= 1 && stride <= ctx);
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < n_tokens; begin += stride) {
    const int64_t end = std::min(begin + ctx, n_tokens);
    const int64_t first_scored = std::max(prev_end, begin + 1);
    Push(doc, begin, end - 1 - begin, end - first_scored, out);
    prev_end = end;
    if (end == n_tokens) break;
  }
}

void AppendStatefulWindow(int32_t doc, int64_t n_tokens, std::vector<PplWindow>& out) {
  Push(doc, 0, n_tokens - 1, n_tokens - 1, out);
}

int64_t TotalScored(const std::vector<PplWindow>& windows) {
  return windows.empty() ? 0 : windows.back().row + windows.back().n_scored;
}

}  // namespace mamba2
