#include "serve/api_response.h"

namespace mamba2::serve {

using nlohmann::json;

json LogprobsJson(const std::vector<TokenInfo>& tokens, const TokenText& text) {
  json toks = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  for (const TokenInfo& t : tokens) {
    toks.push_back(text(t.id));
    lps.push_back(t.logprob);
    json top = json::object();
    for (const TokenLogProb& a : t.top) {
      const std::string s = text(a.id);
      // Two ids can decode to the same text; the likelier one (listed first) keeps the key.
      if (!top.contains(s)) top[s] = a.logprob;
    }
    tops.push_back(std::move(top));
    offsets.push_back(t.text_offset);
  }
  return json{{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

json UsageJson(const Update& u) {
  return json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

json CompletionJson(const CompletionMeta& meta, const Update& u, bool logprobs, const TokenText& text) {
  json choice = {{"text", u.text},
                 {"index", 0},
                 {"logprobs", logprobs ? LogprobsJson(u.tokens, text) : json(nullptr)},
                 {"finish_reason", u.finish_reason}};
  return json{{"id", meta.id},           {"object", "text_completion"},
              {"created", meta.created}, {"model", meta.model},
              {"choices", json::array({choice})}, {"usage", UsageJson(u)}};
}

json StreamChunkJson(const CompletionMeta& meta, const std::string& text, const std::vector<TokenInfo>* tokens,
                     const std::string& finish_reason, const TokenText& token_text) {
  json choice = {{"text", text},
                 {"index", 0},
                 {"logprobs", tokens ? LogprobsJson(*tokens, token_text) : json(nullptr)},
                 {"finish_reason", finish_reason.empty() ? json(nullptr) : json(finish_reason)}};
  return json{{"id", meta.id},
              {"object", "text_completion"},
              {"created", meta.created},
              {"model", meta.model},
              {"choices", json::array({choice})}};
}

json StreamUsageJson(const CompletionMeta& meta, const Update& u) {
  return json{{"id", meta.id},           {"object", "text_completion"}, {"created", meta.created},
              {"model", meta.model},     {"choices", json::array()},    {"usage", UsageJson(u)}};
}

std::string DumpJson(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string SseEvent(const json& j) { return "data: " + DumpJson(j) + "\n\n"; }

}  // namespace mamba2::serve
