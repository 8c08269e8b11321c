// Unicode tables of the split regex (PCRE2) and NFC (ICU) against HF's (Oniguruma and
// the unicode-normalization crate), code point by code point: tests/data/tokenizer/
// unicode_props.json from tools/tokenizer/make_expected.js.
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"
#include "tokenizer_testing.h"

namespace mamba2 {
namespace {

nlohmann::json Props() {
  std::string text, err;
  if (!testing::ReadWholeFile(testing::TokenizerDataPath("unicode_props.json"), &text, &err)) {
    ADD_FAILURE() << err;
    return {};
  }
  return nlohmann::json::parse(text);
}

std::string Hex(char32_t cp) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

TEST(TokenizerUnicode, SplitClassesMatchHfPerCodePoint) {
  const nlohmann::json props = Props();
  ASSERT_TRUE(props.contains("classes"));
  auto pre = PreTokenizer::FromJson(nlohmann::json::parse(R"({"type": "ByteLevel", "add_prefix_space": false})"));
  ASSERT_TRUE(pre.ok()) << pre.status().message();
  std::vector<std::string_view> pieces;
  std::deque<std::string> storage;
  // Same probes as the generator: a piece count of 1 means c joined the probe's class.
  auto joins = [&](char lead, char32_t c) {
    std::string s(1, lead);
    utf8::Append(s, c);
    pieces.clear();
    storage.clear();
    EXPECT_TRUE(pre->Split(s, pieces, storage).ok());
    return pieces.size() == 1;
  };
  const auto& runs = props["classes"];
  ASSERT_GT(runs.size(), 100u);
  size_t run = 0, mismatches = 0, checked = 0;
  std::ostringstream report;
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    while (run + 1 < runs.size() && runs[run + 1][0].get<char32_t>() <= cp) ++run;
    const std::string want = runs[run][1].get<std::string>();
    const std::string got = joins('a', cp) ? "L" : joins('1', cp) ? "N" : joins('!', cp) ? "O" : "S";
    ++checked;
    if (got != want) {
      if (++mismatches <= 20) report << ' ' << Hex(cp) << " got " << got << " want " << want << ';';
    }
  }
  EXPECT_EQ(mismatches, 0u) << mismatches << " of " << checked << " code points differ:" << report.str();
}

TEST(TokenizerUnicode, NfcMatchesHf) {
  const nlohmann::json props = Props();
  ASSERT_TRUE(props.contains("nfc"));
  ASSERT_GT(props["nfc"].size(), 1000u);
  auto nfc = TextNormalizer::FromJson(nlohmann::json::parse(R"({"type": "NFC"})"));
  ASSERT_TRUE(nfc.ok());
  size_t mismatches = 0;
  std::ostringstream report;
  for (const auto& p : props["nfc"]) {
    const std::string in = p[0].get<std::string>(), want = p[1].get<std::string>();
    const std::string got = nfc->Apply(in);
    if (got != want && ++mismatches <= 20) {
      report << ' ' << nlohmann::json(in).dump() << " got " << nlohmann::json(got).dump() << " want "
             << nlohmann::json(want).dump() << ';';
    }
  }
  EXPECT_EQ(mismatches, 0u) << mismatches << " of " << props["nfc"].size() << " differ:" << report.str();
}

}  // namespace
}  // namespace mamba2
