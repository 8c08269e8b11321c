#include "engine/wikitext.h"

#include "tokenizer/utf8.h"

namespace mamba2 {

bool IsPythonSpace(char32_t cp) {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

std::string NormalizeNewlines(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::string_view PythonStrip(std::string_view text) {
  size_t begin = 0;
  while (begin < text.size()) {
    size_t next = begin;
    if (!IsPythonSpace(utf8::Next(text, next))) break;
    begin = next;
  }
  size_t end = text.size();
  while (end > begin) {
    size_t start = 0;
    if (!IsPythonSpace(utf8::Prev(text, end, &start))) break;
    end = start;
  }
  return text.substr(begin, end - begin);
}

std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to) {
  // Byte matching equals code point matching: UTF-8 is self-synchronising and `from` is valid.
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = text.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(text.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(text.substr(pos));
  return out;
}

std::vector<std::string> SplitWikitextArticles(std::string_view text) {
  std::vector<std::string> pages;
  std::string current;  // the lines of the page being built, joined by "\n"
  bool have_line = false;
  bool any_heading = false;
  size_t pos = 0;
  while (true) {
    // str.split("\n"): n newlines give n + 1 lines, the last possibly empty.
    const size_t nl = text.find('\n', pos);
    const std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    const std::string squeezed = ReplaceAll(ReplaceAll(line, "= = =", "==="), "= =", "==");
    const std::string_view r = PythonStrip(squeezed);
    const bool heading = r.size() >= 2 && r.substr(0, 2) == "= " && r.substr(r.size() - 2) == " =";
    if (heading) {
      any_heading = true;
      if (!PythonStrip(current).empty()) pages.push_back(current);
      current.clear();
      have_line = false;
    }
    if (have_line) current.push_back('\n');
    current.append(line);
    have_line = true;
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  if (!any_heading) return {};
  pages.push_back(current);
  return pages;
}

namespace {

// re.sub(r"/' [0-9]/", r"/'[0-9]/", s): the pattern's slashes are literal, so it rewrites the
// five characters "/' <digit>/" into the literal text "/'[0-9]/" (kept as the task has it).
std::string SlashQuoteDigit(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (i + 5 <= s.size() && s[i] == '/' && s[i + 1] == '\'' && s[i + 2] == ' ' && s[i + 3] >= '0' &&
        s[i + 3] <= '9' && s[i + 4] == '/') {
      out.append("/'[0-9]/");
      i += 5;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

// re.sub(r"O\s*([^C]*?)\s*C", r"O\1C", s) for single-character delimiters O and C: the leftmost
// O with a C after it matches up to the first such C, and the group is the text between them
// with Python whitespace stripped from both ends. Scanning resumes after that C. An O with no
// C after it cannot match, and then no later O can either.
std::string TightenDelimited(std::string_view s, char open, char close) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    const size_t o = s.find(open, pos);
    if (o == std::string_view::npos) break;
    const size_t c = s.find(close, o + 1);
    if (c == std::string_view::npos) break;
    out.append(s.substr(pos, o - pos));
    out.push_back(open);
    out.append(PythonStrip(s.substr(o + 1, c - o - 1)));
    out.push_back(close);
    pos = c + 1;
  }
  out.append(s.substr(pos));
  return out;
}

}  // namespace

std::string WikitextDetokenize(std::string_view page) {
  std::string s(page);
  // contractions
  s = ReplaceAll(s, "s '", "s'");
  s = SlashQuoteDigit(s);
  // number separators
  s = ReplaceAll(s, " @-@ ", "-");
  s = ReplaceAll(s, " @,@ ", ",");
  s = ReplaceAll(s, " @.@ ", ".");
  // punctuation
  s = ReplaceAll(s, " : ", ": ");
  s = ReplaceAll(s, " ; ", "; ");
  s = ReplaceAll(s, " . ", ". ");
  s = ReplaceAll(s, " ! ", "! ");
  s = ReplaceAll(s, " ? ", "? ");
  s = ReplaceAll(s, " , ", ", ");
  // brackets and quotes
  s = TightenDelimited(s, '(', ')');
  s = TightenDelimited(s, '[', ']');
  s = TightenDelimited(s, '{', '}');
  s = TightenDelimited(s, '"', '"');
  s = TightenDelimited(s, '\'', '\'');
  // headings and the rest
  s = ReplaceAll(s, "= = = =", "====");
  s = ReplaceAll(s, "= = =", "===");
  s = ReplaceAll(s, "= =", "==");
  s = ReplaceAll(s, " \xC2\xB0 ", "\xC2\xB0");  // " ° " -> "°"
  s = ReplaceAll(s, " \n", "\n");
  s = ReplaceAll(s, "\n ", "\n");
  s = ReplaceAll(s, " N ", " 1 ");
  s = ReplaceAll(s, " 's", "'s");
  return s;
}

int64_t CountWords(std::string_view text) {
  int64_t runs = 0;
  bool in_space = false;
  size_t i = 0;
  while (i < text.size()) {
    const bool space = IsPythonSpace(utf8::Next(text, i));
    if (space && !in_space) ++runs;
    in_space = space;
  }
  return runs + 1;
}

}  // namespace mamba2
