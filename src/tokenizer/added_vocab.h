// added_tokens of tokenizer.json: tokens cut out of the text before normalization and
// BPE. Follows HF tokenizers' AddedVocabulary: tokens with normalized=false match the raw
// text first; tokens with normalized=true then match the normalized remaining pieces;
// both passes take leftmost-longest matches and honour single_word / lstrip / rstrip.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mamba2 {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  std::string match_text;  // content, or its normalized form when normalized=true
};

// One part of a split: either an added token (id >= 0) or text left for the next stage.
struct Segment {
  size_t begin;
  size_t end;
  int32_t id;  // -1 for text
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `tokens` must outlive the matcher; only those with normalized == `normalized_pass`
  // take part.
  void Build(const std::vector<AddedToken>* tokens, bool normalized_pass);

  bool empty() const { return nodes_.size() <= 1; }

  // Covers `text` with segments in order (as HF's find_matches: lstrip/rstrip may make a
  // token's segment overlap a neighbour's edge exactly as HF does). Empty text segments
  // are left out.
  void Split(std::string_view text, std::vector<Segment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token = -1;  // index into *tokens_ when a pattern ends here
  };
  int32_t Child(int32_t node, unsigned char b) const;

  const std::vector<AddedToken>* tokens_ = nullptr;
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
};

}  // namespace mamba2
