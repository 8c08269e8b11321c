// Request parsing and validation: each accepted form reads as intended, each bad input is refused
// with status 400 and the offending field named, as the OpenAI API reports it.
#include <gtest/gtest.h>

#include "serve/api_request.h"
#include "serve/api_response.h"

namespace mamba2::serve {
namespace {

using nlohmann::json;

RequestLimits Limits() {
  RequestLimits l;
  l.max_prompt_tokens = 100;
  l.max_tokens_limit = 50;
  l.vocab_rows = 1000;
  l.max_logprobs = 5;
  l.max_stop = 4;
  l.max_stop_bytes = 16;
  return l;
}

CompletionRequest ParseOk(const std::string& body) {
  json j;
  EXPECT_FALSE(ParseJsonObject(body, &j).has_value()) << body;
  CompletionRequest r;
  auto e = ParseCompletionRequest(j, Limits(), &r);
  EXPECT_FALSE(e.has_value()) << body << " -> " << (e ? e->message : "");
  return r;
}

ApiError ParseBad(const std::string& body) {
  json j;
  if (auto e = ParseJsonObject(body, &j)) return *e;
  CompletionRequest r;
  auto e = ParseCompletionRequest(j, Limits(), &r);
  EXPECT_TRUE(e.has_value()) << body << " was accepted";
  return e.value_or(ApiError{});
}

TEST(ApiRequest, Defaults) {
  const CompletionRequest r = ParseOk(R"({"prompt": "hello"})");
  EXPECT_TRUE(r.prompt_is_text);
  EXPECT_EQ(r.prompt_text, "hello");
  EXPECT_EQ(r.max_tokens, 16);
  EXPECT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FALSE(r.seed_given);
  EXPECT_FALSE(r.stream);
  EXPECT_EQ(r.logprobs, -1);
  EXPECT_TRUE(r.stop.empty());
  EXPECT_FALSE(r.ignore_eos);
}

TEST(ApiRequest, DefaultMaxTokensRespectsTheLimit) {
  RequestLimits l = Limits();
  l.max_tokens_limit = 10;
  CompletionRequest r;
  ASSERT_FALSE(ParseCompletionRequest(json{{"prompt", "a"}}, l, &r).has_value());
  EXPECT_EQ(r.max_tokens, 10);
}

TEST(ApiRequest, AllFields) {
  const CompletionRequest r = ParseOk(R"({"model": "m", "prompt": [1, 2, 3], "max_tokens": 7, "temperature": 0,
      "top_p": 0.5, "top_k": 4, "min_p": 0.1, "repetition_penalty": 1.3, "repeat_last_n": 8, "seed": 42,
      "stop": ["a", "bc"], "stream": true, "stream_options": {"include_usage": true}, "logprobs": 3,
      "ignore_eos": true, "n": 1, "best_of": 1, "echo": false, "suffix": null, "logit_bias": {},
      "presence_penalty": 0, "frequency_penalty": 0.0, "user": "someone", "unknown_harmless": [1]})");
  EXPECT_EQ(r.model, "m");
  EXPECT_FALSE(r.prompt_is_text);
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 4);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r.sampling.repetition_penalty, 1.3f);
  EXPECT_EQ(r.sampling.repeat_last_n, 8);
  EXPECT_EQ(r.sampling.seed, 42u);
  EXPECT_TRUE(r.seed_given);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.logprobs, 3);
  EXPECT_TRUE(r.ignore_eos);
}

TEST(ApiRequest, PromptForms) {
  EXPECT_EQ(ParseOk(R"({"prompt": ["one"]})").prompt_text, "one");
  EXPECT_EQ(ParseOk(R"({"prompt": [[5, 6]]})").prompt_ids, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(ParseOk(R"({"prompt": [7.0]})").prompt_ids, (std::vector<int32_t>{7}));
  EXPECT_EQ(ParseOk(R"({"prompt": "a", "stop": "x"})").stop, (std::vector<std::string>{"x"}));
  EXPECT_EQ(ParseOk(R"({"prompt": "a", "stop": null, "max_tokens": null})").max_tokens, 16);
  EXPECT_EQ(ParseOk(R"({"prompt": "a", "top_k": -1})").sampling.top_k, 0);  // vLLM's "off"
  EXPECT_EQ(ParseOk(R"({"prompt": "a", "seed": 18446744073709551615})").sampling.seed, 18446744073709551615ull);
  EXPECT_EQ(ParseOk(R"({"prompt": "a", "seed": -1})").sampling.seed, ~0ull);
  EXPECT_EQ(ParseOk(R"({"prompt": "a", "stop": ["", "y"]})").stop, (std::vector<std::string>{"y"}));
}

struct BadCase {
  const char* body;
  const char* param;  // "" -> none expected
  const char* words;  // the message must contain this
};

TEST(ApiRequest, BadInputsNameTheField) {
  const BadCase cases[] = {
      {R"({"prompt": "a",})", "", "not valid JSON"},
      {R"([1, 2])", "", "must be a JSON object"},
      {R"("text")", "", "must be a JSON object"},
      {R"({})", "prompt", "required"},
      {R"({"prompt": 5})", "prompt", "must be a string or an array of token ids"},
      {R"({"prompt": ["a", "b"]})", "prompt", "only one prompt"},
      {R"({"prompt": [[1, 2], [3]]})", "prompt", "only one prompt per request is supported, got 2"},
      {R"({"prompt": [[[1, 2]]]})", "prompt", "nested deeper"},
      {R"({"prompt": [["a"]]})", "prompt", "nested deeper"},
      {R"({"prompt": [1, "b"]})", "prompt", "token 1"},
      {R"({"prompt": [1, -2]})", "prompt", "non-negative"},
      {R"({"prompt": [1.5]})", "prompt", "integer"},
      {R"({"prompt": [3000000000]})", "prompt", "token 0"},
      {R"({"prompt": "a", "max_tokens": 0})", "max_tokens", ">= 1"},
      {R"({"prompt": "a", "max_tokens": -5})", "max_tokens", ">= 1"},
      {R"({"prompt": "a", "max_tokens": 51})", "max_tokens", "limit of 50"},
      {R"({"prompt": "a", "max_tokens": "10"})", "max_tokens", "must be an integer"},
      {R"({"prompt": "a", "max_tokens": 2.5})", "max_tokens", "must be an integer"},
      {R"({"prompt": "a", "temperature": -1})", "temperature", "temperature"},
      {R"({"prompt": "a", "temperature": "hot"})", "temperature", "must be a number"},
      {R"({"prompt": "a", "temperature": 1e300})", "temperature", "finite"},
      {R"({"prompt": "a", "top_p": 0})", "top_p", "(0, 1]"},
      {R"({"prompt": "a", "top_p": 1.5})", "top_p", "(0, 1]"},
      {R"({"prompt": "a", "top_k": -2})", "top_k", "out of range"},
      {R"({"prompt": "a", "top_k": 1.5})", "top_k", "integer"},
      {R"({"prompt": "a", "min_p": 2})", "min_p", "[0, 1]"},
      {R"({"prompt": "a", "repetition_penalty": 0})", "repetition_penalty", "> 0"},
      {R"({"prompt": "a", "seed": "x"})", "seed", "integer"},
      {R"({"prompt": "a", "seed": 1.5})", "seed", "integer"},
      {R"({"prompt": "a", "seed": 1180591620717411303424})", "seed", "[-2^63, 2^64), got 1.1805916207174113e+21"},
      {R"({"prompt": "a", "stop": 3})", "stop", "string"},
      {R"({"prompt": "a", "stop": ["a", 3]})", "stop", "string"},
      {R"({"prompt": "a", "stop": ["a", "b", "c", "d", "e"]})", "stop", "at most 4"},
      {R"({"prompt": "a", "stop": "0123456789abcdefg"})", "stop", "at most 16"},
      {R"({"prompt": "a", "stream": "yes"})", "stream", "boolean"},
      {R"({"prompt": "a", "stream_options": 1})", "stream_options", "object"},
      {R"({"prompt": "a", "stream_options": {"include_usage": 1}})", "stream_options.include_usage", "boolean"},
      {R"({"prompt": "a", "logprobs": true})", "logprobs", "integer"},
      {R"({"prompt": "a", "logprobs": 6})", "logprobs", "out of range"},
      {R"({"prompt": "a", "logprobs": -1})", "logprobs", "out of range"},
      {R"({"prompt": "a", "n": 2})", "n", "n = 1"},
      {R"({"prompt": "a", "n": "1"})", "n", "n = 1"},
      {R"({"prompt": "a", "best_of": 3})", "best_of", "not supported"},
      {R"({"prompt": "a", "echo": true})", "echo", "not supported"},
      {R"({"prompt": "a", "suffix": "tail"})", "suffix", "not supported"},
      {R"({"prompt": "a", "logit_bias": {"5": 10}})", "logit_bias", "not supported"},
      {R"({"prompt": "a", "presence_penalty": 0.5})", "presence_penalty", "repetition_penalty"},
      {R"({"prompt": "a", "frequency_penalty": 1})", "frequency_penalty", "not supported"},
      {R"({"prompt": "a", "response_format": {"type": "json_object"}})", "response_format", "not supported"},
      {R"({"prompt": "a", "model": 5})", "model", "string"},
      {R"({"prompt": "a", "ignore_eos": 1})", "ignore_eos", "boolean"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.body);
    const ApiError e = ParseBad(c.body);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(e.param, c.param);
    EXPECT_NE(e.message.find(c.words), std::string::npos) << e.message;
  }
}

TEST(ApiRequest, PromptIdChecks) {
  const RequestLimits l = Limits();
  EXPECT_FALSE(CheckPromptIds({0, 999}, l).has_value());
  auto empty = CheckPromptIds({}, l);
  ASSERT_TRUE(empty.has_value());
  EXPECT_NE(empty->message.find("empty"), std::string::npos);
  auto range = CheckPromptIds({1, 1000}, l);
  ASSERT_TRUE(range.has_value());
  EXPECT_NE(range->message.find("token 1 has id 1000"), std::string::npos) << range->message;
  auto longp = CheckPromptIds(std::vector<int32_t>(101, 1), l);
  ASSERT_TRUE(longp.has_value());
  EXPECT_EQ(longp->code, "context_length_exceeded");
  EXPECT_EQ(longp->param, "prompt");
  EXPECT_FALSE(CheckPromptIds(std::vector<int32_t>(100, 1), l).has_value());
}

TEST(ApiRequest, TokenizeAndDetokenize) {
  std::string text;
  EXPECT_FALSE(ParseTokenizeRequest(json{{"prompt", "hi"}}, &text).has_value());
  EXPECT_EQ(text, "hi");
  EXPECT_EQ(ParseTokenizeRequest(json::object(), &text)->param, "prompt");
  EXPECT_EQ(ParseTokenizeRequest(json{{"prompt", 1}}, &text)->param, "prompt");
  std::vector<int32_t> ids;
  EXPECT_FALSE(ParseDetokenizeRequest(json{{"tokens", {1, 2}}}, Limits(), &ids).has_value());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(ParseDetokenizeRequest(json{{"tokens", {1, 1000}}}, Limits(), &ids)->param, "tokens");
  EXPECT_EQ(ParseDetokenizeRequest(json{{"tokens", "12"}}, Limits(), &ids)->param, "tokens");
  EXPECT_EQ(ParseDetokenizeRequest(json::object(), Limits(), &ids)->param, "tokens");
}

TEST(ApiRequest, ErrorBodyShape) {
  const json b = ErrorBody(BadRequest("bad thing", "max_tokens", "invalid_value"));
  EXPECT_EQ(b["error"]["message"], "bad thing");
  EXPECT_EQ(b["error"]["type"], "invalid_request_error");
  EXPECT_EQ(b["error"]["param"], "max_tokens");
  EXPECT_EQ(b["error"]["code"], "invalid_value");
  const json n = ErrorBody(BadRequest("x"));
  EXPECT_TRUE(n["error"]["param"].is_null());
  EXPECT_TRUE(n["error"]["code"].is_null());
}

TEST(ApiResponse, LegacyLogprobsShape) {
  std::vector<TokenInfo> toks(2);
  toks[0].id = 5;
  toks[0].logprob = -0.5f;
  toks[0].top = {{5, -0.5f}, {6, -1.5f}};
  toks[0].text_offset = 0;
  toks[1].id = 6;
  toks[1].logprob = -2.0f;
  toks[1].text_offset = 3;
  const json lp = LogprobsJson(toks, [](int32_t id) { return "t" + std::to_string(id); });
  EXPECT_EQ(lp["tokens"], json({"t5", "t6"}));
  EXPECT_EQ(lp["token_logprobs"], json({-0.5, -2.0}));
  EXPECT_EQ(lp["top_logprobs"][0], json({{"t5", -0.5}, {"t6", -1.5}}));
  EXPECT_EQ(lp["top_logprobs"][1], json::object());
  EXPECT_EQ(lp["text_offset"], json({0, 3}));
}

TEST(ApiResponse, CompletionShape) {
  Update u;
  u.text = "abc";
  u.finished = true;
  u.finish_reason = "length";
  u.prompt_tokens = 4;
  u.completion_tokens = 3;
  u.cached_tokens = 2;
  const json r = CompletionJson({"cmpl-1", 123, "m"}, u, false, [](int32_t) { return std::string(); });
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["id"], "cmpl-1");
  EXPECT_EQ(r["created"], 123);
  EXPECT_EQ(r["model"], "m");
  EXPECT_EQ(r["choices"][0]["text"], "abc");
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(r["usage"]["completion_tokens"], 3);
  EXPECT_EQ(r["usage"]["total_tokens"], 7);
  EXPECT_EQ(r["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
  const std::string ev = SseEvent(StreamChunkJson({"cmpl-1", 1, "m"}, "x", nullptr, "", nullptr));
  EXPECT_EQ(ev.rfind("data: {", 0), 0u);
  EXPECT_EQ(ev.substr(ev.size() - 2), "\n\n");
  EXPECT_TRUE(json::parse(ev.substr(6))["choices"][0]["finish_reason"].is_null());
}

}  // namespace
}  // namespace mamba2::serve
