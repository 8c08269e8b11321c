#include "serve/api_request.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mamba2::serve {

using nlohmann::json;

namespace {

std::string TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}

// A JSON value for an error message, cut short: a request may carry anything.
std::string Short(const json& v) {
  std::string s = v.dump();
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return s;
}

ApiError WrongType(const std::string& field, const char* expected, const json& got) {
  return BadRequest("'" + field + "' must be " + expected + ", got " + TypeName(got), field, "invalid_type");
}

// An integral JSON number (16 and 16.0 alike) that fits int64; nullopt otherwise.
std::optional<int64_t> AsInt64(const json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return int64_t(u);
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.0e18) return int64_t(d);
  }
  return std::nullopt;
}

const json* Field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<ApiError> GetInt(const json& body, const char* name, int64_t lo, int64_t hi, int64_t* out) {
  const json* v = Field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number() || !AsInt64(*v)) {
    if (v->is_number()) return BadRequest("'" + std::string(name) + "' must be an integer, got " + Short(*v), name);
    return WrongType(name, "an integer", *v);
  }
  const int64_t x = *AsInt64(*v);
  if (x < lo || x > hi)
    return BadRequest("'" + std::string(name) + "' = " + std::to_string(x) + " is out of range [" +
                          std::to_string(lo) + ", " + std::to_string(hi) + "]",
                      name);
  *out = x;
  return std::nullopt;
}

std::optional<ApiError> GetFloat(const json& body, const char* name, float* out) {
  const json* v = Field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) return WrongType(name, "a number", *v);
  *out = v->get<float>();
  return std::nullopt;
}

std::optional<ApiError> GetBool(const json& body, const char* name, bool* out) {
  const json* v = Field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) return WrongType(name, "a boolean", *v);
  *out = v->get<bool>();
  return std::nullopt;
}

// Fields that change the result when set to anything but their default, and are not implemented.
std::optional<ApiError> RefuseUnsupported(const json& body) {
  auto unsupported = [](const std::string& field, const std::string& why) {
    return BadRequest("'" + field + "' is not supported by this server" + (why.empty() ? "" : ": " + why), field,
                      "unsupported_parameter");
  };
  if (const json* v = Field(body, "n"); v && !(AsInt64(*v) && *AsInt64(*v) == 1))
    return unsupported("n", "only n = 1 (one completion per request)");
  if (const json* v = Field(body, "best_of"); v && !(AsInt64(*v) && *AsInt64(*v) == 1))
    return unsupported("best_of", "only best_of = 1");
  if (const json* v = Field(body, "echo"); v && !(v->is_boolean() && !v->get<bool>()))
    return unsupported("echo", "the prompt is not echoed");
  if (const json* v = Field(body, "suffix"); v && !(v->is_string() && v->get<std::string>().empty()))
    return unsupported("suffix", "no insertion mode");
  if (const json* v = Field(body, "logit_bias"); v && !(v->is_object() && v->empty()))
    return unsupported("logit_bias", "");
  for (const char* p : {"presence_penalty", "frequency_penalty"})
    if (const json* v = Field(body, p); v && !(v->is_number() && v->get<double>() == 0.0))
      return unsupported(p, "use repetition_penalty");
  for (const char* p : {"tools", "tool_choice", "functions", "function_call", "response_format", "grammar",
                        "guided_json", "guided_regex", "guided_choice", "min_tokens", "prompt_logprobs",
                        "use_beam_search"})
    if (Field(body, p)) return unsupported(p, "");
  return std::nullopt;
}

std::optional<ApiError> ParsePrompt(const json& body, CompletionRequest* out) {
  const json* p = Field(body, "prompt");
  if (!p) return BadRequest("'prompt' is required", "prompt", "missing_required_parameter");
  // A one-element batch is one prompt (clients often wrap it).
  const json* one = p;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) one = &(*p)[0];
  if (one->is_string()) {
    out->prompt_is_text = true;
    out->prompt_text = one->get<std::string>();
    return std::nullopt;
  }
  if (one->is_array()) {
    if (!one->empty() && ((*one)[0].is_string() || (*one)[0].is_array())) {
      // A one-element batch was unwrapped above: what is left nests deeper than any prompt form.
      if (one != p)
        return BadRequest("'prompt' must be a string, an array of token ids, or a one-element array of either; "
                          "got arrays nested deeper: " + Short(*p),
                          "prompt", "invalid_type");
      return BadRequest("only one prompt per request is supported, got " + std::to_string(one->size()), "prompt",
                        "unsupported_parameter");
    }
    out->prompt_is_text = false;
    out->prompt_ids.clear();
    out->prompt_ids.reserve(one->size());
    for (size_t i = 0; i < one->size(); ++i) {
      const json& t = (*one)[i];
      const std::optional<int64_t> id = t.is_number() ? AsInt64(t) : std::nullopt;
      if (!id || *id < 0 || *id > std::numeric_limits<int32_t>::max())
        return BadRequest("'prompt' token " + std::to_string(i) + " must be a non-negative integer id, got " +
                              Short(t),
                          "prompt", "invalid_type");
      out->prompt_ids.push_back(int32_t(*id));
    }
    return std::nullopt;
  }
  return WrongType("prompt", "a string or an array of token ids", *p);
}

std::optional<ApiError> ParseStop(const json& body, const RequestLimits& limits, CompletionRequest* out) {
  const json* s = Field(body, "stop");
  out->stop.clear();
  if (!s) return std::nullopt;
  std::vector<const json*> items;
  if (s->is_string()) {
    items.push_back(s);
  } else if (s->is_array()) {
    if (int64_t(s->size()) > limits.max_stop)
      return BadRequest("'stop' has " + std::to_string(s->size()) + " strings, at most " +
                            std::to_string(limits.max_stop) + " are allowed",
                        "stop");
    for (const json& x : *s) items.push_back(&x);
  } else {
    return WrongType("stop", "a string or an array of strings", *s);
  }
  for (const json* x : items) {
    if (!x->is_string()) return WrongType("stop", "a string or an array of strings", *x);
    std::string str = x->get<std::string>();
    if (int64_t(str.size()) > limits.max_stop_bytes)
      return BadRequest("a 'stop' string is " + std::to_string(str.size()) + " bytes, at most " +
                            std::to_string(limits.max_stop_bytes) + " are allowed",
                        "stop");
    if (!str.empty()) out->stop.push_back(std::move(str));
  }
  return std::nullopt;
}

}  // namespace

json ErrorBody(const ApiError& e) {
  json err = {{"message", e.message}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return json{{"error", err}};
}

ApiError BadRequest(std::string message, std::string param, std::string code) {
  ApiError e;
  e.status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

std::optional<ApiError> ParseJsonObject(const std::string& text, json* out) {
  try {
    *out = json::parse(text);
  } catch (const json::exception& e) {
    return BadRequest(std::string("the request body is not valid JSON: ") + e.what(), "", "invalid_json");
  }
  if (!out->is_object())
    return BadRequest("the request body must be a JSON object, got " + TypeName(*out), "", "invalid_json");
  return std::nullopt;
}

std::optional<ApiError> ParseCompletionRequest(const json& body, const RequestLimits& limits,
                                               CompletionRequest* out) {
  if (!body.is_object()) return BadRequest("the request body must be a JSON object", "", "invalid_json");
  *out = CompletionRequest{};
  if (auto e = RefuseUnsupported(body)) return e;
  if (const json* m = Field(body, "model")) {
    if (!m->is_string()) return WrongType("model", "a string", *m);
    out->model = m->get<std::string>();
  }
  if (auto e = ParsePrompt(body, out)) return e;
  out->max_tokens = std::min<int64_t>(out->max_tokens, limits.max_tokens_limit);

  if (const json* v = Field(body, "max_tokens")) {
    const std::optional<int64_t> n = v->is_number() ? AsInt64(*v) : std::nullopt;
    if (!n) return WrongType("max_tokens", "an integer", *v);
    if (*n < 1)
      return BadRequest("'max_tokens' must be >= 1, got " + std::to_string(*n), "max_tokens", "invalid_value");
    if (*n > limits.max_tokens_limit)
      return BadRequest("'max_tokens' = " + std::to_string(*n) + " exceeds this server's limit of " +
                            std::to_string(limits.max_tokens_limit) + " (--max-tokens-limit)",
                        "max_tokens", "invalid_value");
    out->max_tokens = *n;
  }

  SamplingParams& sp = out->sampling;
  if (auto e = GetFloat(body, "temperature", &sp.temperature)) return e;
  if (auto e = GetFloat(body, "top_p", &sp.top_p)) return e;
  if (auto e = GetFloat(body, "min_p", &sp.min_p)) return e;
  if (auto e = GetFloat(body, "repetition_penalty", &sp.repetition_penalty)) return e;
  int64_t top_k = 0;
  // -1 means "off" in vLLM's API; 0 in ours.
  if (auto e = GetInt(body, "top_k", -1, std::numeric_limits<int32_t>::max(), &top_k)) return e;
  sp.top_k = top_k < 0 ? 0 : int(top_k);
  int64_t last_n = sp.repeat_last_n;
  if (auto e = GetInt(body, "repeat_last_n", -1, std::numeric_limits<int32_t>::max(), &last_n)) return e;
  sp.repeat_last_n = int(last_n);
  if (const json* v = Field(body, "seed")) {
    if (!v->is_number()) return WrongType("seed", "an integer", *v);
    if (!(v->is_number_unsigned() || AsInt64(*v)))
      return BadRequest("'seed' must be an integer in [-2^63, 2^64), got " + Short(*v), "seed");
    sp.seed = v->is_number_unsigned() ? v->get<uint64_t>() : uint64_t(*AsInt64(*v));
    out->seed_given = true;
  }
  if (Status st = ValidateSamplingParams(sp); !st.ok()) {
    // "sampling parameter <name> = ..." names the field.
    std::string param;
    const std::string& m = st.message();
    const std::string lead = "sampling parameter ";
    if (m.rfind(lead, 0) == 0) param = m.substr(lead.size(), m.find(' ', lead.size()) - lead.size());
    return BadRequest(m, param, "invalid_value");
  }

  if (auto e = ParseStop(body, limits, out)) return e;
  if (auto e = GetBool(body, "stream", &out->stream)) return e;
  if (const json* so = Field(body, "stream_options")) {
    if (!so->is_object()) return WrongType("stream_options", "an object", *so);
    if (auto e = GetBool(*so, "include_usage", &out->include_usage)) {
      e->param = "stream_options.include_usage";
      return e;
    }
  }
  if (const json* v = Field(body, "logprobs")) {
    // The chat API's boolean logprobs is not this field.
    if (!v->is_number()) return WrongType("logprobs", "an integer (the number of alternatives per token)", *v);
    int64_t k = 0;
    if (auto e = GetInt(body, "logprobs", 0, limits.max_logprobs, &k)) return e;
    out->logprobs = int(k);
  }
  if (auto e = GetBool(body, "ignore_eos", &out->ignore_eos)) return e;
  return std::nullopt;
}

std::optional<ApiError> CheckPromptIds(const std::vector<int32_t>& ids, const RequestLimits& limits) {
  if (ids.empty())
    return BadRequest("the prompt is empty: it must have at least one token", "prompt", "invalid_value");
  if (int64_t(ids.size()) > limits.max_prompt_tokens)
    return BadRequest("the prompt has " + std::to_string(ids.size()) + " tokens, more than this server's limit of " +
                          std::to_string(limits.max_prompt_tokens) + " (--max-prompt-tokens)",
                      "prompt", "context_length_exceeded");
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= limits.vocab_rows)
      return BadRequest("prompt token " + std::to_string(i) + " has id " + std::to_string(ids[i]) +
                            ", outside the model's vocabulary [0, " + std::to_string(limits.vocab_rows) + ")",
                        "prompt", "invalid_value");
  return std::nullopt;
}

std::optional<ApiError> ParseTokenizeRequest(const json& body, std::string* text) {
  const json* p = Field(body, "prompt");
  if (!p) return BadRequest("'prompt' is required", "prompt", "missing_required_parameter");
  if (!p->is_string()) return WrongType("prompt", "a string", *p);
  *text = p->get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> ParseDetokenizeRequest(const json& body, const RequestLimits& limits,
                                               std::vector<int32_t>* ids) {
  const json* t = Field(body, "tokens");
  if (!t) return BadRequest("'tokens' is required", "tokens", "missing_required_parameter");
  if (!t->is_array()) return WrongType("tokens", "an array of token ids", *t);
  ids->clear();
  for (size_t i = 0; i < t->size(); ++i) {
    const json& x = (*t)[i];
    const std::optional<int64_t> id = x.is_number() ? AsInt64(x) : std::nullopt;
    if (!id || *id < 0 || *id >= limits.vocab_rows)
      return BadRequest("'tokens' item " + std::to_string(i) + " must be a token id in [0, " +
                            std::to_string(limits.vocab_rows) + "), got " + Short(x),
                        "tokens", "invalid_value");
    ids->push_back(int32_t(*id));
  }
  return std::nullopt;
}

}  // namespace mamba2::serve
