// tokenizer.json options beyond what NeoX uses, against HF (variants.json), and refusal
// of malformed or unsupported files.
#include <functional>

#include <nlohmann/json.hpp>

#include "tokenizer_testing.h"

namespace mamba2 {
namespace {

using nlohmann::json;
using testing::FirstDifference;

json ReadJson(const std::string& path, std::string* error) {
  std::string text;
  if (!testing::ReadWholeFile(path, &text, error)) return json();
  return json::parse(text);
}

// Same patch as tools/tokenizer/make_expected.js applyVariant.
json ApplyVariant(json j, const json& v) {
  if (v.contains("patch")) {
    for (auto it = v["patch"].begin(); it != v["patch"].end(); ++it) j[it.key()] = it.value();
  }
  if (v.contains("model")) {
    for (auto it = v["model"].begin(); it != v["model"].end(); ++it) j["model"][it.key()] = it.value();
  }
  if (v.contains("extra_added_tokens")) {
    for (const auto& t : v["extra_added_tokens"]) j["added_tokens"].push_back(t);
  }
  const std::string merges = v.value("merges", "");
  if (merges == "pairs") {
    json pairs = json::array();
    for (const auto& m : j["model"]["merges"]) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      pairs.push_back(json::array({s.substr(0, sp), s.substr(sp + 1)}));
    }
    j["model"]["merges"] = pairs;
  } else if (merges == "version_header") {
    j["model"]["merges"].insert(j["model"]["merges"].begin(), "#version: 0.2");
  }
  return j;
}

TEST(TokenizerVariants, MatchHf) {
  std::string error;
  const json base = ReadJson(testing::NeoxJsonPath(), &error);
  ASSERT_TRUE(error.empty()) << error;
  const json doc = ReadJson(testing::TokenizerDataPath("variants.json"), &error);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_GE(doc["variants"].size(), 20u);
  for (const auto& v : doc["variants"]) {
    const std::string name = v["name"].get<std::string>();
    SCOPED_TRACE("variant " + name);
    auto tok = Tokenizer::FromJson(ApplyVariant(base, v), name);
    ASSERT_TRUE(tok.ok()) << tok.status().message();
    for (const auto& c : v["cases"]) {
      const std::string text = c["text"].get<std::string>();
      const std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
      SCOPED_TRACE("text " + json(text).dump());
      auto got = tok->Encode(text);
      ASSERT_TRUE(got.ok()) << got.status().message();
      EXPECT_EQ(*got, want) << FirstDifference(*got, want);
      EXPECT_EQ(tok->Decode(want), c["decoded"].get<std::string>());
    }
  }
}

// A tiny valid tokenizer; each refusal test breaks one thing in it.
json Tiny() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "post_processor": null,
    "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
              "end_of_word_suffix": null, "fuse_unk": false,
              "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3, "abc": 4}, "merges": ["a b", "ab c"]}
  })");
}

TEST(TokenizerConfig, TinyWorks) {
  auto tok = Tokenizer::FromJson(Tiny(), "tiny");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok->Encode("ab").value(), (std::vector<int32_t>{2}));
  EXPECT_EQ(tok->Encode("abcab").value(), (std::vector<int32_t>{4, 2}));
  EXPECT_EQ(tok->Encode("ba").value(), (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(tok->vocab_size(), 5);
  EXPECT_EQ(tok->eos_id(), -1);
  EXPECT_EQ(tok->Decode({4, 2, 99, -3}), "abcab");
}

TEST(TokenizerConfig, PairMergesEqualStringMerges) {
  json j = Tiny();
  j["model"]["merges"] = json::parse(R"([["a", "b"], ["ab", "c"]])");
  auto tok = Tokenizer::FromJson(j, "tiny-pairs");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok->Encode("abcab").value(), (std::vector<int32_t>{4, 2}));
}

TEST(TokenizerConfig, DropoutZeroIsNone) {
  json j = Tiny();
  j["model"]["dropout"] = 0.0;
  EXPECT_TRUE(Tokenizer::FromJson(j, "tiny").ok());
}

struct Refusal {
  const char* what;
  std::function<void(json&)> breakit;
  const char* message_part;
};

TEST(TokenizerConfig, RefusesMalformedAndUnsupported) {
  const Refusal cases[] = {
      {"missing model", [](json& j) { j.erase("model"); }, "missing \"model\""},
      {"null model", [](json& j) { j["model"] = nullptr; }, "missing \"model\""},
      {"unknown model type", [](json& j) { j["model"]["type"] = "WordPiece"; }, "unsupported type \"WordPiece\""},
      {"missing vocab", [](json& j) { j["model"].erase("vocab"); }, "missing object \"vocab\""},
      {"missing merges", [](json& j) { j["model"].erase("merges"); }, "missing array \"merges\""},
      {"merge of unknown token", [](json& j) { j["model"]["merges"].push_back("a zz"); },
       "token \"zz\" is not in the vocab"},
      {"merge result not in vocab", [](json& j) { j["model"]["merges"].push_back("b a"); },
       "token \"ba\" is not in the vocab"},
      {"merge line with three parts", [](json& j) { j["model"]["merges"].push_back("a b c"); },
       "not two tokens separated by one space"},
      {"merge of wrong shape", [](json& j) { j["model"]["merges"].push_back(7); }, "model.merges[2]"},
      {"negative vocab id", [](json& j) { j["model"]["vocab"]["zz"] = -1; }, "non-negative"},
      {"continuing_subword_prefix", [](json& j) { j["model"]["continuing_subword_prefix"] = "##"; },
       "continuing_subword_prefix \"##\" is not supported"},
      {"end_of_word_suffix", [](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; },
       "end_of_word_suffix \"</w>\" is not supported"},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }, "dropout 0.1 is not supported"},
      {"byte_fallback", [](json& j) { j["model"]["byte_fallback"] = true; }, "byte_fallback"},
      {"unk token not in vocab", [](json& j) { j["model"]["unk_token"] = "<unk>"; }, "unk_token \"<unk>\""},
      {"unknown pre-tokenizer", [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; },
       "unsupported pre-tokenizer type \"Whitespace\""},
      {"pre-tokenizer without type", [](json& j) { j["pre_tokenizer"] = json::object(); }, "pre_tokenizer"},
      {"ByteLevel not last", [](json& j) {
         j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
             {"type": "ByteLevel", "add_prefix_space": false},
             {"type": "Split", "pattern": {"String": "-"}, "behavior": "Isolated", "invert": false}]})");
       }, "ByteLevel must be the last"},
      {"bad split regex", [](json& j) {
         j["pre_tokenizer"] = json::parse(
             R"({"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false})");
       }, "does not compile"},
      {"unknown split behavior", [](json& j) {
         j["pre_tokenizer"] = json::parse(
             R"({"type": "Split", "pattern": {"String": "-"}, "behavior": "Sideways", "invert": false})");
       }, "unknown behavior \"Sideways\""},
      {"unknown normalizer", [](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; },
       "unsupported type \"Lowercase\""},
      {"unknown decoder", [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "unsupported type \"WordPiece\""},
      {"missing decoder", [](json& j) { j.erase("decoder"); }, "decoder: missing"},
      {"bad version", [](json& j) { j["version"] = "2.0"; }, "unknown tokenizer version \"2.0\""},
      {"added token without content", [](json& j) { j["added_tokens"].push_back({{"id", 9}}); }, "added_tokens[0]"},
      {"added token flag of wrong type", [](json& j) {
         j["added_tokens"].push_back({{"id", 9}, {"content", "<x>"}, {"lstrip", "yes"}});
       }, "\"lstrip\" must be a boolean"},
      {"top level not an object", [](json& j) { j = json::array(); }, "expected a JSON object"},
  };
  for (const Refusal& r : cases) {
    json j = Tiny();
    r.breakit(j);
    auto tok = Tokenizer::FromJson(j, "tiny.json");
    ASSERT_FALSE(tok.ok()) << r.what << ": loaded anyway";
    const std::string msg = tok.status().message();
    EXPECT_NE(msg.find(r.message_part), std::string::npos) << r.what << ": message was: " << msg;
    EXPECT_EQ(msg.rfind("tiny.json: ", 0), 0u) << r.what << ": message does not name the file: " << msg;
  }
}

TEST(TokenizerConfig, RefusesNonJsonAndMissingFiles) {
  auto a = Tokenizer::FromJsonText("{\"model\": [1, 2", "broken.json");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("broken.json: not valid JSON"), std::string::npos) << a.status().message();

  auto b = Tokenizer::FromJsonText("", "empty.json");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("not valid JSON"), std::string::npos) << b.status().message();

  const std::string missing = std::string(MAMBA2_TEST_DATA) + "/tokenizer/no_such_tokenizer.json";
  auto c = Tokenizer::Load(missing);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("cannot open " + missing), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace mamba2
