#include "serve/state_cache.h"

#include <algorithm>

namespace mamba2::serve {

uint64_t PromptStateCache::HashStep(uint64_t h, int32_t id) {
  // splitmix64 finaliser over (h ^ id): cheap and well mixed; equality is checked on the ids anyway.
  uint64_t x = h ^ (uint64_t(uint32_t(id)) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2));
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

uint64_t PromptStateCache::Hash(std::span<const int32_t> ids) {
  uint64_t h = kHashSeed;
  for (int32_t id : ids) h = HashStep(h, id);
  return h;
}

PromptStateCache::List::iterator PromptStateCache::Find(std::span<const int32_t> prefix, uint64_t hash) const {
  auto [lo, hi] = index_.equal_range(hash);
  for (auto it = lo; it != hi; ++it) {
    const Entry& e = *it->second;
    if (e.tokens.size() == prefix.size() && std::equal(e.tokens.begin(), e.tokens.end(), prefix.begin()))
      return it->second;
  }
  return lru_.end();
}

const PromptStateCache::Entry* PromptStateCache::Lookup(std::span<const int32_t> prompt, int64_t interval) {
  if (lru_.empty() || prompt.empty() || interval < 1) return nullptr;
  const int64_t n = int64_t(prompt.size());
  // Hashes at each candidate length, then probe from the longest down.
  std::vector<std::pair<int64_t, uint64_t>> candidates;
  uint64_t h = kHashSeed;
  for (int64_t i = 0; i < n; ++i) {
    h = HashStep(h, prompt[size_t(i)]);
    const int64_t len = i + 1;
    if (len == n || len % interval == 0) candidates.emplace_back(len, h);
  }
  for (auto c = candidates.rbegin(); c != candidates.rend(); ++c) {
    auto it = Find(prompt.first(size_t(c->first)), c->second);
    if (it == lru_.end()) continue;
    const bool at_end = c->first == n;
    // The whole prompt is only usable with its logits; a shorter length only at a boundary.
    if (at_end ? it->logits.empty() : c->first % interval != 0) continue;
    lru_.splice(lru_.begin(), lru_, it);
    return &*it;
  }
  return nullptr;
}

bool PromptStateCache::Contains(std::span<const int32_t> prefix, bool need_logits) const {
  if (lru_.empty()) return false;
  auto it = Find(prefix, Hash(prefix));
  return it != lru_.end() && (!need_logits || !it->logits.empty());
}

void PromptStateCache::Erase(List::iterator it) {
  auto [lo, hi] = index_.equal_range(it->hash);
  for (auto i = lo; i != hi; ++i)
    if (i->second == it) {
      index_.erase(i);
      break;
    }
  bytes_ -= it->bytes;
  lru_.erase(it);
}

bool PromptStateCache::Insert(std::span<const int32_t> prefix, std::vector<float> state, std::vector<float> logits) {
  if (budget_ <= 0) return false;
  const uint64_t hash = Hash(prefix);
  auto old = Find(prefix, hash);
  // Same prefix, same state: keep the old entry's logits if the new one has none.
  if (old != lru_.end() && logits.empty() && !old->logits.empty()) logits = old->logits;
  const int64_t bytes = int64_t((prefix.size() + state.size() + logits.size()) * sizeof(float) + sizeof(Entry));
  if (bytes > budget_) return false;
  if (old != lru_.end()) Erase(old);
  while (bytes_ + bytes > budget_ && !lru_.empty()) {
    Erase(std::prev(lru_.end()));
    ++evictions_;
  }
  Entry e;
  e.tokens.assign(prefix.begin(), prefix.end());
  e.state = std::move(state);
  e.logits = std::move(logits);
  e.hash = hash;
  e.bytes = bytes;
  bytes_ += bytes;
  lru_.push_front(std::move(e));
  index_.emplace(hash, lru_.begin());
  return true;
}

void PromptStateCache::Clear() {
  lru_.clear();
  index_.clear();
  bytes_ = 0;
}

}  // namespace mamba2::serve
