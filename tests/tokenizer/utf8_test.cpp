// UTF-8 validation, lossy decoding and the streaming helper, against the Unicode
// standard's own examples (chapter 3, "U+FFFD Substitution of Maximal Subparts").
#include <random>

#include <gtest/gtest.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace mamba2 {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, LossyFollowsMaximalSubparts) {
  // Table 3-8 of the Unicode standard.
  const std::string in("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64");
  EXPECT_EQ(utf8::Lossy(in), "a" + kFffd + kFffd + kFffd + "b" + kFffd + "c" + kFffd + kFffd + "d");
  // Each byte of an overlong or surrogate form is its own subpart.
  EXPECT_EQ(utf8::Lossy("\xC0\xAF"), kFffd + kFffd);
  EXPECT_EQ(utf8::Lossy("\xED\xA0\x80"), kFffd + kFffd + kFffd);
  EXPECT_EQ(utf8::Lossy("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);
  EXPECT_EQ(utf8::Lossy("caf\xC3\xA9 \xF0\x9F\x98\x80"), "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(utf8::Lossy(""), "");
}

TEST(Utf8, FindInvalid) {
  EXPECT_EQ(utf8::FindInvalid("plain ascii that is longer than eight bytes"), utf8::kValid);
  EXPECT_EQ(utf8::FindInvalid("\xE6\x97\xA5\xE6\x9C\xAC"), utf8::kValid);
  EXPECT_EQ(utf8::FindInvalid("0123456789abcdef\x80"), 16u);
  EXPECT_EQ(utf8::FindInvalid("\xEF\xBF\xBF\xF4\x8F\xBF\xBF"), utf8::kValid);  // U+FFFF, U+10FFFF
  EXPECT_EQ(utf8::FindInvalid("ab\xF0\x9F\x98"), 2u);
}

TEST(Utf8Stream, HoldsBackIncompleteCharacters) {
  Utf8Stream s;
  EXPECT_EQ(s.Push("\xE2"), "");
  EXPECT_EQ(s.Push("\x82"), "");
  EXPECT_EQ(s.Push("\xAC!"), "\xE2\x82\xAC!");
  EXPECT_EQ(s.Push("\xF0\x9F"), "");
  EXPECT_EQ(s.Push("\x98\x80" "b"), "\xF0\x9F\x98\x80" "b");
  EXPECT_EQ(s.Flush(), "");
  // Broken sequences are replaced as soon as they are known to be broken.
  EXPECT_EQ(s.Push("a\xFF"), "a" + kFffd);
  EXPECT_EQ(s.Push("\xE2\x82"), "");
  EXPECT_EQ(s.Push("A"), kFffd + "A");
  EXPECT_EQ(s.Push("\xC3"), "");
  EXPECT_EQ(s.Flush(), kFffd);
  EXPECT_EQ(s.Flush(), "");
}

TEST(Utf8Stream, ChunkedEqualsWhole) {
  std::mt19937 rng(1234);
  const std::string pieces[] = {"a", " ", "\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\x98\x80", "\x80", "\xFF", "\xE2\x82",
                                "\xF0\x9F", "\xED\xA0\x80", "\n"};
  for (int round = 0; round < 500; ++round) {
    std::string whole;
    const int n = 1 + static_cast<int>(rng() % 20);
    for (int k = 0; k < n; ++k) whole += pieces[rng() % std::size(pieces)];
    Utf8Stream s;
    std::string streamed;
    size_t i = 0;
    while (i < whole.size()) {
      const size_t len = 1 + rng() % 4;
      const std::string chunk = s.Push(std::string_view(whole).substr(i, len));
      ASSERT_EQ(utf8::FindInvalid(chunk), utf8::kValid);
      streamed += chunk;
      i += len;
    }
    streamed += s.Flush();
    ASSERT_EQ(streamed, utf8::Lossy(whole)) << "round " << round;
  }
}

}  // namespace
}  // namespace mamba2
