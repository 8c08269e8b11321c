// The tokenizer.json "pre_tokenizer": ByteLevel (GPT-2 split regex), Split, or a Sequence
// of Splits optionally ending in ByteLevel. Cuts one normalized segment into the pieces
// that the BPE model encodes one by one.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "tokenizer/regex.h"

namespace mamba2 {

// HF's SplitDelimiterBehavior.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

class PreTokenizer {
 public:
  static Result<PreTokenizer> FromJson(const nlohmann::json& j);

  // True when the last step is ByteLevel: pieces are then raw bytes whose model-level
  // text is their GPT-2 byte map (the model maps them itself, to skip building strings).
  bool byte_level() const { return byte_level_; }

  // Appends the non-empty pieces of `text`. Pieces point into `text` or into `storage`
  // (which must outlive them).
  Status Split(std::string_view text, std::vector<std::string_view>& pieces, std::deque<std::string>& storage) const;

 private:
  struct Step {
    std::optional<Regex> regex;  // Split only
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    bool is_byte_level = false;
    bool add_prefix_space = false;  // ByteLevel only
    bool use_regex = true;          // ByteLevel only
  };
  static Status AddSteps(const nlohmann::json& j, const std::string& where, std::vector<Step>& steps);
  static Status ApplySplit(const Step& step, std::string_view piece, std::vector<std::string_view>& out);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace mamba2
