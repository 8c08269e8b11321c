// An open-addressing map from byte strings to small values, keys kept in one arena.
// Used for the vocab and the per-word cache: lookups by string_view without building a
// std::string, and with stored hashes so a probe never rehashes a key.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mamba2 {

template <typename V>
class StringMap {
 public:
  size_t size() const { return size_; }

  const V* Find(std::string_view key) const {
    if (slots_.empty()) return nullptr;
    const uint64_t h = Hash(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.hash == h && s.len == key.size() && std::memcmp(arena_.data() + s.off, key.data(), key.size()) == 0) {
        return &s.value;
      }
    }
  }

  // Inserts, or overwrites the value of an existing key.
  void Set(std::string_view key, V value) {
    if ((size_ + 1) * 2 > slots_.size()) Grow();
    const uint64_t h = Hash(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (!s.used) {
        CHECK_MSG(arena_.size() + key.size() <= UINT32_MAX, "StringMap arena over 4 GiB");
        s = Slot{h, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), true, value};
        arena_.append(key);
        ++size_;
        return;
      }
      if (s.hash == h && s.len == key.size() && std::memcmp(arena_.data() + s.off, key.data(), key.size()) == 0) {
        s.value = value;
        return;
      }
    }
  }

  void Clear() {
    slots_.clear();
    arena_.clear();
    size_ = 0;
    mask_ = 0;
  }

  // f(std::string_view key, const V& value) for every entry, in no particular order.
  template <typename F>
  void ForEach(F&& f) const {
    for (const Slot& s : slots_) {
      if (s.used) f(std::string_view(arena_.data() + s.off, s.len), s.value);
    }
  }

 private:
  struct Slot {
    uint64_t hash;
    uint32_t off;
    uint32_t len;
    bool used;
    V value;
  };
  static uint64_t Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }
  void Grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    const size_t cap = old.empty() ? 64 : old.size() * 2;
    slots_.assign(cap, Slot{0, 0, 0, false, V{}});
    mask_ = cap - 1;
    for (const Slot& s : old) {
      if (!s.used) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].used) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  std::string arena_;
  size_t size_ = 0;
  size_t mask_ = 0;
};

}  // namespace mamba2
