// Reading and checking OpenAI-style request bodies (/v1/completions, /tokenize, /detokenize).
// Pure functions of the JSON and the server limits, so they are unit-tested without a model or
// a socket; tokenizing a text prompt is left to the caller (it needs the tokenizer).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sample/sampler.h"

namespace mamba2::serve {

// An OpenAI-style error: HTTP status plus the body {"error": {message, type, param, code}}.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty -> null
  std::string code;   // empty -> null
};

nlohmann::json ErrorBody(const ApiError& e);
ApiError BadRequest(std::string message, std::string param = "", std::string code = "");

struct RequestLimits {
  int64_t max_prompt_tokens = 8192;
  int64_t max_tokens_limit = 4096;  // largest max_tokens a request may ask for
  int64_t vocab_rows = 0;           // prompt ids must lie in [0, vocab_rows)
  int max_logprobs = 20;
  int max_stop = 16;
  int64_t max_stop_bytes = 1024;  // per stop string
};

struct CompletionRequest {
  std::string model;
  bool prompt_is_text = true;
  std::string prompt_text;          // when prompt_is_text
  std::vector<int32_t> prompt_ids;  // otherwise
  int64_t max_tokens = 16;          // OpenAI's default for completions
  SamplingParams sampling;          // n_valid left at -1: the server knows the vocabulary
  bool seed_given = false;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int logprobs = -1;           // < 0: none; k >= 0: the k most likely alternatives per token
  bool ignore_eos = false;     // generate through the end-of-text token (benchmarks)
};

// Parses text as a JSON object; malformed JSON or a non-object is an error naming what was found.
std::optional<ApiError> ParseJsonObject(const std::string& text, nlohmann::json* out);

// Reads a /v1/completions body. Fields that would change the result but are not implemented
// (echo, suffix, best_of, logit_bias, n != 1, penalties) are refused by name; fields that do not
// change the result (user, model, ...) are accepted and ignored.
std::optional<ApiError> ParseCompletionRequest(const nlohmann::json& body, const RequestLimits& limits,
                                               CompletionRequest* out);

// The prompt as ids, checked against the limits (non-empty, length, id range).
std::optional<ApiError> CheckPromptIds(const std::vector<int32_t>& ids, const RequestLimits& limits);

// POST /tokenize {"prompt": text} and POST /detokenize {"tokens": [ids]}.
std::optional<ApiError> ParseTokenizeRequest(const nlohmann::json& body, std::string* text);
std::optional<ApiError> ParseDetokenizeRequest(const nlohmann::json& body, const RequestLimits& limits,
                                               std::vector<int32_t>* ids);

}  // namespace mamba2::serve
