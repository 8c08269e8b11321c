// WikiText article splitting, the lm-eval detokeniser and word counting, against results worked
// out by hand from the rules of EleutherAI/wikitext_document_level and preprocess_wikitext.py
// (Python str/re semantics).
#include <gtest/gtest.h>

#include "engine/wikitext.h"

namespace mamba2 {
namespace {

TEST(PerplexityWikitext, PythonWhitespace) {
  for (char32_t c : {U' ', U'\t', U'\n', U'\v', U'\f', U'\r', char32_t(0x1C), char32_t(0x1F), char32_t(0x85),
                     char32_t(0xA0), char32_t(0x1680), char32_t(0x2000), char32_t(0x200A), char32_t(0x2028),
                     char32_t(0x2029), char32_t(0x202F), char32_t(0x205F), char32_t(0x3000)})
    EXPECT_TRUE(IsPythonSpace(c)) << std::hex << uint32_t(c);
  // U+180E left White_Space in Unicode 6.3; U+200B and U+FEFF never were; U+001B is no separator.
  for (char32_t c : {U'a', U'0', char32_t(0x1B), char32_t(0x180E), char32_t(0x200B), char32_t(0xFEFF), char32_t(0x2060)})
    EXPECT_FALSE(IsPythonSpace(c)) << std::hex << uint32_t(c);
}

TEST(PerplexityWikitext, CountWordsIsReSplitLength) {
  EXPECT_EQ(CountWords(""), 1);       // re.split on "" -> [""]
  EXPECT_EQ(CountWords("a"), 1);
  EXPECT_EQ(CountWords("a b"), 2);
  EXPECT_EQ(CountWords("a  \t b"), 2);  // one run
  EXPECT_EQ(CountWords(" a b "), 4);    // ["", "a", "b", ""]
  EXPECT_EQ(CountWords("   "), 2);      // ["", ""]
  EXPECT_EQ(CountWords("a\xC2\xA0" "b"), 2);  // U+00A0 splits
  EXPECT_EQ(CountWords("a\xE2\x80\x8B" "b"), 1);  // U+200B does not
  EXPECT_EQ(CountWords("\xE3\x80\x80x\xE3\x80\x80"), 3);  // U+3000 on both sides
  // A WikiText page: runs " ", " ", " ", " \n ", " ", " \n" -> 6 runs, 7 words.
  EXPECT_EQ(CountWords(" = T = \n x y \n"), 7);
}

TEST(PerplexityWikitext, StripAndReplace) {
  EXPECT_EQ(PythonStrip("  \xE3\x80\x80x y\t\n"), "x y");
  EXPECT_EQ(PythonStrip(" \n "), "");
  EXPECT_EQ(PythonStrip("\xE2\x80\x8Bx"), "\xE2\x80\x8Bx");  // U+200B is not whitespace
  EXPECT_EQ(ReplaceAll("aaa", "aa", "b"), "ba");              // non-overlapping, left to right
  EXPECT_EQ(ReplaceAll(" N N ", " N ", " 1 "), " 1 N ");
  EXPECT_EQ(ReplaceAll("abc", "x", "y"), "abc");
}

TEST(PerplexityWikitext, NormalizeNewlines) {
  EXPECT_EQ(NormalizeNewlines("a\r\nb\rc\n\r\r\n"), "a\nb\nc\n\n\n");
}

TEST(PerplexityWikitext, DetokenizeNumbersAndPunctuation) {
  EXPECT_EQ(WikitextDetokenize("1 @,@ 000 @.@ 5 km"), "1,000.5 km");
  EXPECT_EQ(WikitextDetokenize("state @-@ of @-@ the @-@ art"), "state-of-the-art");
  EXPECT_EQ(WikitextDetokenize("a : b ; c . d ! e ? f , g"), "a: b; c. d! e? f, g");
  // " . " needs the space after it: a final " ." stays.
  EXPECT_EQ(WikitextDetokenize("the end ."), "the end .");
}

TEST(PerplexityWikitext, DetokenizeBracketsAndQuotes) {
  EXPECT_EQ(WikitextDetokenize("( see below )"), "(see below)");
  EXPECT_EQ(WikitextDetokenize("[ 1 ] and { x }"), "[1] and {x}");
  // The first ")" closes: the inner "(" is content.
  EXPECT_EQ(WikitextDetokenize("( a ( b ) c )"), "(a ( b) c )");
  EXPECT_EQ(WikitextDetokenize("( unclosed"), "( unclosed");
  EXPECT_EQ(WikitextDetokenize("(   )"), "()");
  // Python whitespace inside: U+00A0 is stripped too.
  EXPECT_EQ(WikitextDetokenize("(\xC2\xA0x\xC2\xA0)"), "(x)");
  // " , " first, then the quote pair.
  EXPECT_EQ(WikitextDetokenize("He said , \" hello world \" ."), "He said, \"hello world\" .");
  // Quotes pair left to right; a lone last quote stays.
  EXPECT_EQ(WikitextDetokenize("\" a \" \" b"), "\"a\" \" b");
  EXPECT_EQ(WikitextDetokenize("' quoted '"), "'quoted'");
}

TEST(PerplexityWikitext, DetokenizeContractionsHeadingsAndRest) {
  EXPECT_EQ(WikitextDetokenize("the dogs ' bones"), "the dogs' bones");
  EXPECT_EQ(WikitextDetokenize("John 's"), "John's");
  // The task's regex has literal slashes: only "/' <digit>/" changes, into "/'[0-9]/".
  EXPECT_EQ(WikitextDetokenize("x/' 5/y"), "x/'[0-9]/y");
  EXPECT_EQ(WikitextDetokenize("' 5"), "' 5");
  EXPECT_EQ(WikitextDetokenize("= = Section = ="), "== Section ==");
  EXPECT_EQ(WikitextDetokenize("= = = Sub = = ="), "=== Sub ===");
  EXPECT_EQ(WikitextDetokenize("= = = = Deep = = = ="), "==== Deep ====");
  EXPECT_EQ(WikitextDetokenize("20 \xC2\xB0 C"), "20\xC2\xB0" "C");
  EXPECT_EQ(WikitextDetokenize("a \n b"), "a\nb");
  EXPECT_EQ(WikitextDetokenize("the N 2 N"), "the 1 2 N");
  // A page as the dataset gives it.
  EXPECT_EQ(WikitextDetokenize(" = Title = \n\n It is 3 @.@ 5 m ( 11 ft ) long . \n"),
            " = Title =\n\nIt is 3.5 m (11 ft) long.\n");
}

TEST(PerplexityWikitext, SplitArticles) {
  const std::string text =
      " \n = A = \n\n a text \n = = Sec = = \n more \n = B = \n b \n";
  const std::vector<std::string> pages = SplitWikitextArticles(text);
  ASSERT_EQ(pages.size(), 2u);  // the leading " " page is whitespace only
  EXPECT_EQ(pages[0], " = A = \n\n a text \n = = Sec = = \n more ");
  EXPECT_EQ(pages[1], " = B = \n b \n");  // the last page keeps the final empty line
}

TEST(PerplexityWikitext, SplitHeadingRules) {
  EXPECT_TRUE(SplitWikitextArticles("no heading here\n").empty());
  EXPECT_TRUE(SplitWikitextArticles("").empty());
  // "=A=" lacks the spaces; "= = A = =" is a section; both stay inside the article.
  const auto a = SplitWikitextArticles("= A =\nx\n =B= \n = = C = = \ny");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0], "= A =\nx\n =B= \n = = C = = \ny");
  // Python strip() removes U+3000 around the heading.
  const auto b = SplitWikitextArticles("t\n\xE3\x80\x80= A =\xE3\x80\x80\nx");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0], "t");
  EXPECT_EQ(b[1], "\xE3\x80\x80= A =\xE3\x80\x80\nx");
  // A heading-only last article is still an article; "= =" alone is not a heading.
  const auto c = SplitWikitextArticles(" = A = \n = = \n = B = ");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], " = A = \n = = ");
  EXPECT_EQ(c[1], " = B = ");
}

}  // namespace
}  // namespace mamba2
