#include "tokenizer/added_vocab.h"

#include <algorithm>

#include <unicode/uchar.h>

#include "tokenizer/utf8.h"

namespace mamba2 {
namespace {

// The \w and \s of the Rust regex crate, which HF uses for single_word and lstrip/rstrip.
bool IsWordChar(char32_t c) {
  const auto cp = static_cast<UChar32>(c);
  if (u_hasBinaryProperty(cp, UCHAR_ALPHABETIC) || u_hasBinaryProperty(cp, UCHAR_JOIN_CONTROL)) return true;
  return (U_GET_GC_MASK(cp) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) != 0;
}
bool IsSpaceChar(char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)); }

bool EndsWithWord(std::string_view s, size_t end) {
  if (end == 0) return false;
  size_t start;
  return IsWordChar(utf8::Prev(s, end, &start));
}
bool StartsWithWord(std::string_view s, size_t begin) {
  if (begin >= s.size()) return false;
  return IsWordChar(utf8::Next(s, begin));
}

}  // namespace

void AddedTokenMatcher::Build(const std::vector<AddedToken>* tokens, bool normalized_pass) {
  tokens_ = tokens;
  nodes_.assign(1, Node{});
  std::fill(std::begin(first_byte_), std::end(first_byte_), false);
  for (size_t t = 0; t < tokens->size(); ++t) {
    const AddedToken& tok = (*tokens)[t];
    if (tok.normalized != normalized_pass || tok.match_text.empty()) continue;
    int32_t node = 0;
    for (char ch : tok.match_text) {
      const auto b = static_cast<unsigned char>(ch);
      int32_t next = Child(node, b);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_[node].children.emplace_back(b, next);
        nodes_.push_back(Node{});
      }
      node = next;
    }
    // Two tokens with the same text: the later one wins, like HF's map built in order.
    nodes_[node].token = static_cast<int32_t>(t);
    first_byte_[static_cast<unsigned char>(tok.match_text[0])] = true;
  }
}

int32_t AddedTokenMatcher::Child(int32_t node, unsigned char b) const {
  for (const auto& [byte, child] : nodes_[node].children) {
    if (byte == b) return child;
  }
  return -1;
}

void AddedTokenMatcher::Split(std::string_view text, std::vector<Segment>& out) const {
  auto emit_text = [&](size_t b, size_t e) {
    if (e > b) out.push_back({b, e, -1});
  };
  if (empty()) {
    emit_text(0, text.size());
    return;
  }
  const size_t n = text.size();
  size_t start_offset = 0;  // end of the last emitted segment
  size_t pos = 0;           // where the leftmost-longest scan resumes
  while (pos < n) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    // Longest pattern starting at pos. Patterns are valid UTF-8, so byte matches start
    // and end on character boundaries.
    int32_t node = 0, best_tok = -1;
    size_t best_end = 0;
    for (size_t i = pos; i < n; ++i) {
      node = Child(node, static_cast<unsigned char>(text[i]));
      if (node < 0) break;
      if (nodes_[node].token >= 0) {
        best_tok = nodes_[node].token;
        best_end = i + 1;
      }
    }
    if (best_tok < 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = best_end;
    pos = best_end;  // the scan never revisits a match, even one discarded below
    const AddedToken& tok = (*tokens_)[best_tok];
    if (tok.single_word) {
      const bool start_space = start == 0 || !EndsWithWord(text, start);
      const bool stop_space = stop == n || !StartsWithWord(text, stop);
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) {
      size_t s = start;
      while (s > 0) {
        size_t prev;
        const char32_t c = utf8::Prev(text, s, &prev);
        if (!IsSpaceChar(c)) break;
        s = prev;
      }
      start = std::max(s, start_offset);
    }
    if (tok.rstrip) {
      while (stop < n) {
        size_t next = stop;
        const char32_t c = utf8::Next(text, next);
        if (!IsSpaceChar(c)) break;
        stop = next;
      }
    }
    if (start_offset < start) emit_text(start_offset, start);
    out.push_back({start, stop, tok.id});
    start_offset = stop;
  }
  if (start_offset < n) emit_text(start_offset, n);
}

}  // namespace mamba2
