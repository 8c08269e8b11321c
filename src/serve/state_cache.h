// Prompt-state cache: snapshots of a sequence's full recurrent state (conv + SSM, all layers) after
// a token prefix, keyed by the exact prefix, in an LRU bounded by bytes.
//
// Because a Mamba-2 state has a fixed size whatever the prefix length, resuming a prompt from a
// snapshot costs one state copy instead of re-reading the prefix. Exactness: the scheduler feeds
// every prompt in pieces that end at multiples of `interval` (and at the prompt's end), and only
// snapshots taken at those boundaries are offered to a prompt, so a run resumed from a snapshot
// goes through the very same computations as a cold run and gives bit-identical results.
//
// Not thread-safe: the scheduler thread owns it.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace mamba2::serve {

class PromptStateCache {
 public:
  struct Entry {
    std::vector<int32_t> tokens;  // the prefix
    std::vector<float> state;     // Mamba2Model::SaveSlot layout
    std::vector<float> logits;    // [vocab_rows] after the last prefix token; empty if not kept
    uint64_t hash = 0;
    int64_t bytes = 0;
  };

  // budget_bytes <= 0 disables the cache.
  explicit PromptStateCache(int64_t budget_bytes) : budget_(budget_bytes) {}

  // The longest cached prefix of `prompt` that a cold run of `prompt` would also pass through:
  // a length that is a multiple of `interval` and shorter than the prompt, or the whole prompt
  // when its entry has logits (then no token needs to be fed before sampling). Marks it recently
  // used. The pointer stays valid until the next Insert.
  const Entry* Lookup(std::span<const int32_t> prompt, int64_t interval);

  // True if `prefix` is cached (with logits, when `need_logits`): the caller can skip a snapshot.
  bool Contains(std::span<const int32_t> prefix, bool need_logits) const;

  // Adds (or refreshes) a snapshot, evicting least recently used entries to fit the budget.
  // Returns false when the entry alone exceeds the budget (nothing is stored).
  bool Insert(std::span<const int32_t> prefix, std::vector<float> state, std::vector<float> logits);

  void Clear();

  int64_t bytes() const { return bytes_; }
  int64_t budget() const { return budget_; }
  size_t entries() const { return lru_.size(); }
  int64_t evictions() const { return evictions_; }

  // Hash of a token prefix, the same rolling function Lookup uses position by position.
  static uint64_t HashStep(uint64_t h, int32_t id);
  static constexpr uint64_t kHashSeed = 0x9E3779B97F4A7C15ull;
  static uint64_t Hash(std::span<const int32_t> ids);

 private:
  using List = std::list<Entry>;
  List::iterator Find(std::span<const int32_t> prefix, uint64_t hash) const;
  void Erase(List::iterator it);

  int64_t budget_;
  int64_t bytes_ = 0;
  int64_t evictions_ = 0;
  mutable List lru_;  // front = most recently used
  std::unordered_multimap<uint64_t, List::iterator> index_;
};

}  // namespace mamba2::serve
