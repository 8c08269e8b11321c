// The tokenizer.json "model" of type BPE: vocab, merge ranks, and the merge loop, with
// a per-word cache. Mirrors HF tokenizers' BPE for the options it accepts.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "tokenizer/string_map.h"

namespace mamba2 {

using VocabMap = StringMap<int32_t>;

class Bpe {
 public:
  // Refuses what it does not implement (dropout > 0, continuing_subword_prefix,
  // end_of_word_suffix, byte_fallback) and merges naming tokens missing from the vocab.
  static Result<std::unique_ptr<Bpe>> FromJson(const nlohmann::json& model);
  Bpe(const Bpe&) = delete;
  Bpe& operator=(const Bpe&) = delete;

  // Appends the ids of one pre-tokenized piece. With `byte_level`, the piece is raw bytes
  // and each byte starts as the vocab entry of its GPT-2 stand-in character; otherwise
  // each UTF-8 character starts as its own vocab entry.
  void Tokenize(std::string_view piece, bool byte_level, std::vector<int32_t>& out) const;

  const VocabMap& vocab() const { return vocab_; }
  size_t vocab_entries() const { return vocab_.size(); }

 private:
  Bpe() = default;
  void Merge(std::string_view piece, bool byte_level, std::vector<int32_t>& out) const;

  VocabMap vocab_;
  // (left id, right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<uint32_t, int32_t>> merges_;
  int32_t byte_ids_[256];  // vocab id of each byte's stand-in character, -1 if absent
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;

  // Words seen before, keyed by the piece as given to Tokenize (byte_level is fixed per
  // tokenizer, so it need not be part of the key); values locate the ids in cache_ids_.
  struct IdSpan {
    uint32_t off;
    uint32_t len;
  };
  mutable std::shared_mutex cache_mu_;
  mutable StringMap<IdSpan> cache_;
  mutable std::vector<int32_t> cache_ids_;
};

}  // namespace mamba2
