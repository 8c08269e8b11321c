// OpenAI-schema response bodies for /v1/completions (whole and streamed as server-sent events).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/scheduler.h"

namespace mamba2::serve {

struct CompletionMeta {
  std::string id;  // "cmpl-..."
  int64_t created = 0;
  std::string model;
};

// A token's text for logprobs tables (the tokenizer's Decode of one id).
using TokenText = std::function<std::string(int32_t id)>;

// The legacy completions logprobs object: tokens, token_logprobs, top_logprobs, text_offset.
nlohmann::json LogprobsJson(const std::vector<TokenInfo>& tokens, const TokenText& text);

nlohmann::json UsageJson(const Update& u);

// The whole response of a non-streaming request. `logprobs`: the request asked for them.
nlohmann::json CompletionJson(const CompletionMeta& meta, const Update& u, bool logprobs, const TokenText& text);

// One streamed chunk: text (and its tokens' logprobs when asked for); finish_reason null unless
// `finish_reason` is non-empty.
nlohmann::json StreamChunkJson(const CompletionMeta& meta, const std::string& text,
                               const std::vector<TokenInfo>* tokens, const std::string& finish_reason,
                               const TokenText& token_text);
// The usage chunk (stream_options.include_usage): no choices.
nlohmann::json StreamUsageJson(const CompletionMeta& meta, const Update& u);

// "data: <json>\n\n"; invalid UTF-8 can not occur in what we build, but is replaced, never thrown.
std::string SseEvent(const nlohmann::json& j);
std::string DumpJson(const nlohmann::json& j);

}  // namespace mamba2::serve
