// The hand-written GPT-2 split against the same pattern run by PCRE2, on text whose
// characters are old enough for PCRE2's Unicode 14 tables to agree with HF's.
#include <random>

#include <nlohmann/json.hpp>

#include "tokenizer/gpt2_split.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"
#include "tokenizer_testing.h"

namespace mamba2 {
namespace {

constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::vector<std::pair<size_t, size_t>> ByHand(std::string_view text) {
  std::vector<std::string_view> pieces;
  SplitGpt2(text, pieces);
  std::vector<std::pair<size_t, size_t>> out;
  for (std::string_view p : pieces) {
    const auto b = static_cast<size_t>(p.data() - text.data());
    out.emplace_back(b, b + p.size());
  }
  return out;
}

std::vector<std::pair<size_t, size_t>> ByPcre2(const Regex& re, std::string_view text) {
  std::vector<Span> spans;
  EXPECT_TRUE(re.FindAll(text, spans).ok());
  std::vector<std::pair<size_t, size_t>> out;
  for (const Span& s : spans) out.emplace_back(s.begin, s.end);
  return out;
}

TEST(Gpt2Split, AgreesWithPcre2) {
  auto re = Regex::Compile(kGpt2Pattern, false);
  ASSERT_TRUE(re.ok()) << re.status().message();
  std::vector<std::string> texts;
  // The HF case list, minus U+180E: PCRE2's \s counts it, Oniguruma's does not.
  std::string raw, err;
  ASSERT_TRUE(testing::ReadWholeFile(testing::TokenizerDataPath("neox_cases.json"), &raw, &err)) << err;
  const nlohmann::json cases = nlohmann::json::parse(raw)["cases"];
  for (const auto& c : cases) {
    const std::string t = c["text"].get<std::string>();
    if (t.find("\xE1\xA0\x8E") == std::string::npos) texts.push_back(t);
  }
  ASSERT_TRUE(testing::ReadWholeFile(testing::SharedDataPath("wikitext-103-raw-valid.txt"), &raw, &err)) << err;
  texts.push_back(raw);
  // Random mixes of every class and of the characters the alternatives single out.
  const char* pool[] = {"a", "Z", "s", "t", "re", "ve", "m", "ll", "d", "S", "'", "'", "1", "9", "!", ".", "-", " ", " ",
                        " ", "\t", "\n", "\r", "\v", "\f", "\xC2\x85", "\xC2\xA0", "\xE2\x80\xA8", "\xE3\x80\x80",
                        "\xC3\xA9", "\xE6\x97\xA5", "\xC2\xB2", "\xC2\xBD", "\xE2\x85\xAB", "\xCC\x81", "\xF0\x9F\x98\x80",
                        "\xE2\x80\x8D", "\xE2\x80\x8B", "\xD9\xA3", "\xE0\xA4\xA8", "\xE0\xA5\x8D"};
  std::mt19937 rng(7);
  for (int k = 0; k < 20000; ++k) {
    std::string t;
    const int n = 1 + static_cast<int>(rng() % 16);
    for (int j = 0; j < n; ++j) t += pool[rng() % std::size(pool)];
    texts.push_back(t);
  }
  for (const std::string& t : texts) {
    ASSERT_EQ(utf8::FindInvalid(t), utf8::kValid);
    const auto hand = ByHand(t), pcre = ByPcre2(*re, t);
    if (hand != pcre) {
      size_t i = 0;
      while (i < hand.size() && i < pcre.size() && hand[i] == pcre[i]) ++i;
      FAIL() << "split differs on " << nlohmann::json(t.size() > 200 ? t.substr(0, 200) : t).dump() << " at piece "
             << i;
    }
  }
}

TEST(Gpt2Split, Basics) {
  auto pieces = [](std::string_view t) {
    std::vector<std::string_view> p;
    SplitGpt2(t, p);
    return std::vector<std::string>(p.begin(), p.end());
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(pieces("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(pieces("it's"), (V{"it", "'s"}));
  EXPECT_EQ(pieces("IT'S"), (V{"IT", "'", "S"}));
  EXPECT_EQ(pieces("x  "), (V{"x", "  "}));
  EXPECT_EQ(pieces("\t\tx"), (V{"\t", "\t", "x"}));
  EXPECT_EQ(pieces(" 123 !!"), (V{" 123", " !!"}));
  EXPECT_EQ(pieces(""), V{});
  EXPECT_EQ(Gpt2ClassOf(U'\u180E'), Gpt2Class::kOther);
  EXPECT_EQ(Gpt2ClassOf(U'\u3000'), Gpt2Class::kSpace);
  EXPECT_EQ(Gpt2ClassOf(U'\u00B2'), Gpt2Class::kNumber);
}

}  // namespace
}  // namespace mamba2
