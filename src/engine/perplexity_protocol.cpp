#include "engine/perplexity_protocol.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "engine/wikitext.h"
#include "tokenizer/utf8.h"

namespace mamba2 {

const char* PplProtocolName(PplProtocol p) {
  switch (p) {
    case PplProtocol::kWikitext: return "lm-eval-wikitext";
    case PplProtocol::kSliding: return "sliding";
    case PplProtocol::kStateful: return "stateful";
  }
  return "?";
}

Result<PplInput> PreparePplInput(std::string_view text, const std::string& source, const Tokenizer& tokenizer,
                                 const PplSetup& setup) {
  PplInput in;
  in.setup = setup;
  if (setup.ctx < 2) return Status::Error("--ctx " + std::to_string(setup.ctx) + ": a window needs at least 2 tokens");
  if (setup.protocol == PplProtocol::kSliding) {
    if (in.setup.stride == 0) in.setup.stride = std::max<int64_t>(1, setup.ctx / 2);
    if (in.setup.stride < 1 || in.setup.stride > setup.ctx)
      return Status::Error("--stride " + std::to_string(in.setup.stride) + " is outside [1, ctx = " +
                           std::to_string(setup.ctx) + "]");
  }
  if (text.empty()) return Status::Error(source + ": the file is empty");
  if (const size_t bad = utf8::FindInvalid(text); bad != utf8::kValid)
    return Status::Error(source + ": invalid UTF-8 at byte offset " + std::to_string(bad));

  if (setup.protocol == PplProtocol::kWikitext) {
    const std::vector<std::string> pages = SplitWikitextArticles(NormalizeNewlines(text));
    if (pages.empty())
      return Status::Error(source + ": no WikiText articles found (no top-level heading line \" = Title = \"); "
                                    "use --ctx/--stride or --stateful for plain text");
    for (size_t a = 0; a < pages.size(); ++a) {
      if (setup.max_articles > 0 && int64_t(a) >= setup.max_articles) break;
      if (setup.max_tokens > 0 && in.n_tokens >= setup.max_tokens) break;
      const std::string target = WikitextDetokenize(pages[a]);
      auto ids = tokenizer.Encode(target);
      if (!ids.ok()) return ids.status().With(source + ": article " + std::to_string(a + 1));
      PplDocInfo info{int64_t(ids->size()), CountWords(pages[a]), int64_t(pages[a].size())};
      std::vector<int32_t> seq;
      seq.reserve(ids->size() + 1);
      seq.push_back(setup.prefix_token);
      seq.insert(seq.end(), ids->begin(), ids->end());
      AppendRollingWindows(int32_t(in.docs.size()), info.tokens, setup.ctx, in.windows);
      in.n_tokens += info.tokens;
      in.docs.push_back(std::move(seq));
      in.info.push_back(info);
    }
  } else {
    auto ids = tokenizer.Encode(text);
    if (!ids.ok()) return ids.status().With(source);
    std::vector<int32_t> seq = std::move(ids).value();
    if (setup.max_tokens > 0 && int64_t(seq.size()) > setup.max_tokens) seq.resize(size_t(setup.max_tokens));
    if (seq.size() < 2)
      return Status::Error(source + ": " + std::to_string(seq.size()) + " token(s); perplexity needs at least 2");
    PplDocInfo info{int64_t(seq.size()), 0, 0};
    if (setup.protocol == PplProtocol::kSliding)
      AppendSlidingWindows(0, info.tokens, setup.ctx, in.setup.stride, in.windows);
    else
      AppendStatefulWindow(0, info.tokens, in.windows);
    in.n_tokens = info.tokens;
    in.docs.push_back(std::move(seq));
    in.info.push_back(info);
  }
  if (in.windows.empty()) return Status::Error(source + ": no token to score");
  return in;
}

PplMetrics ComputePplMetrics(const PplInput& input, const PplResult& result) {
  PplMetrics m;
  for (double ll : result.doc_loglik) m.sum_loglik += ll;
  m.n_scored = result.n_scored;
  m.nll_per_token = m.n_scored > 0 ? -m.sum_loglik / double(m.n_scored) : 0.0;
  m.token_perplexity = std::exp(m.nll_per_token);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  m.word_perplexity = m.byte_perplexity = m.bits_per_byte = nan;
  if (input.setup.protocol == PplProtocol::kWikitext) {
    for (const PplDocInfo& d : input.info) {
      m.n_words += d.words;
      m.n_bytes += d.bytes;
    }
    m.word_perplexity = std::exp(-m.sum_loglik / double(m.n_words));
    m.byte_perplexity = std::exp(-m.sum_loglik / double(m.n_bytes));
    m.bits_per_byte = -m.sum_loglik / double(m.n_bytes) / std::log(2.0);
  }
  return m;
}

int64_t AvailableHostBytes() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream ss(line.substr(13));
    int64_t kb = -1;
    ss >> kb;
    return kb >= 0 ? kb * 1024 : -1;
  }
  return -1;
}

}  // namespace mamba2
