// The three perplexity protocols of `mamba2 perplexity`: text -> token documents + windows,
// and window scores -> the reported metrics. See README.md "## Perplexity" for the exact
// conventions; perplexity_windows.h has the window rules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "engine/perplexity.h"
#include "engine/perplexity_windows.h"
#include "tokenizer/tokenizer.h"

namespace mamba2 {

enum class PplProtocol {
  kWikitext,  // lm-evaluation-harness `wikitext`: articles, detokenised, loglikelihood_rolling
  kSliding,   // strided sliding windows over the whole text (Hugging Face perplexity guide)
  kStateful,  // one pass over the whole text, the recurrent state carried throughout
};
const char* PplProtocolName(PplProtocol p);  // "lm-eval-wikitext", "sliding", "stateful"

struct PplSetup {
  PplProtocol protocol = PplProtocol::kSliding;
  int64_t ctx = 2048;          // window length (wikitext: max_length)
  int64_t stride = 0;          // sliding only; 0: ctx / 2
  int32_t prefix_token = 0;    // wikitext: the EOT token the first window is conditioned on
  int64_t max_tokens = 0;      // > 0: sliding/stateful keep the first N tokens; wikitext keeps
                               // whole articles until N tokens are reached
  int64_t max_articles = 0;    // wikitext, > 0: the first N articles only
};

struct PplDocInfo {
  int64_t tokens = 0;  // tokens of the (detokenised) text, prefix excluded
  int64_t words = 0;   // wikitext: len(re.split(r"\s+", original_page))
  int64_t bytes = 0;   // wikitext: UTF-8 bytes of the original page
};

struct PplInput {
  PplSetup setup;
  std::vector<std::vector<int32_t>> docs;  // what windows index (wikitext: [prefix] + tokens)
  std::vector<PplDocInfo> info;
  std::vector<PplWindow> windows;
  int64_t n_tokens = 0;  // sum of info[].tokens
};

// Splits (wikitext), detokenises and tokenises `text` (read from `source`, named in errors) and
// lays out the windows. Errors: invalid UTF-8, no articles, too few tokens, bad ctx/stride.
Result<PplInput> PreparePplInput(std::string_view text, const std::string& source, const Tokenizer& tokenizer,
                                 const PplSetup& setup);

struct PplMetrics {
  double sum_loglik = 0.0;
  int64_t n_scored = 0, n_words = 0, n_bytes = 0;
  double nll_per_token = 0.0, token_perplexity = 0.0;
  // wikitext only (NaN otherwise):
  double word_perplexity = 0.0, byte_perplexity = 0.0, bits_per_byte = 0.0;
};
PplMetrics ComputePplMetrics(const PplInput& input, const PplResult& result);

// Free host memory as /proc/meminfo's MemAvailable, or -1 when unknown.
int64_t AvailableHostBytes();

}  // namespace mamba2
