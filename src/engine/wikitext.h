// WikiText as lm-evaluation-harness's `wikitext` task sees it: the raw split files cut into
// whole articles (as the EleutherAI/wikitext_document_level dataset builds its "page"s), the
// task's detokeniser (lm_eval/tasks/wikitext/preprocess_wikitext.py), and its word count.
//
// Python semantics are kept exactly, since the task's numbers depend on them:
//  - "whitespace" is what Python 3's str.isspace() / re's \s accept (ASCII \t\n\v\f\r, space,
//    U+001C..U+001F, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
//    U+3000), not the C locale's;
//  - str.replace is one left-to-right pass of non-overlapping matches;
//  - the file is read in text mode, so "\r\n" and a lone "\r" are newlines ("\n").
// All functions take and return valid UTF-8 (check with utf8::FindInvalid first).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mamba2 {

// True for the code points Python's str.isspace() accepts.
bool IsPythonSpace(char32_t cp);

// "\r\n" and lone "\r" become "\n" (Python's universal newlines on reading).
std::string NormalizeNewlines(std::string_view text);

// Cuts raw WikiText (newlines already normalised) into article pages. A line whose text, after
// "= = =" -> "===", "= =" -> "==" and Python strip(), starts with "= " and ends with " =" is a
// top-level heading (" = Title = "); it starts a new page, and the lines before it, joined by
// "\n", form the previous page unless they are all whitespace. The last page is always kept.
// Returns no pages when the text holds no heading line (it is then not WikiText).
std::vector<std::string> SplitWikitextArticles(std::string_view text);

// The task's doc_to_target: the article with WikiText's tokenisation undone (" @-@ " -> "-",
// " . " -> ". ", spaces inside brackets and quotes, "= =" -> "==", ...).
std::string WikitextDetokenize(std::string_view page);

// len(re.split(r"\s+", text)): one more than the number of maximal whitespace runs (so leading
// and trailing whitespace each count an empty "word", and "" counts 1).
int64_t CountWords(std::string_view text);

// Python's str.strip() with no argument.
std::string_view PythonStrip(std::string_view text);

// Python's str.replace(from, to) (from non-empty).
std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to);

}  // namespace mamba2
