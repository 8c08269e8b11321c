// UTF-8 helpers shared by the tokenizer: validation, code point walking, and
// lossy decoding with the same replacement rule as Rust's String::from_utf8_lossy
// (one U+FFFD per maximal ill-formed subpart), because HF tokenizers' decoder uses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mamba2::utf8 {

inline constexpr size_t kValid = static_cast<size_t>(-1);

// One step of the decoder at s[i].
struct Step {
  char32_t cp;      // the code point, or U+FFFD when !valid
  uint32_t len;     // bytes consumed (>= 1)
  bool valid;       // a complete well-formed sequence
  bool truncated;   // ill-formed only because s ends inside a well-formed prefix
};
Step Decode(std::string_view s, size_t i);

// Byte offset of the first ill-formed sequence, or kValid.
size_t FindInvalid(std::string_view s);

// Decodes the code point at s[i] of a string already known to be valid, advancing i.
inline char32_t Next(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  auto cont = [&](size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k]) & 0x3F); };
  char32_t cp;
  if (b0 < 0xE0) {
    cp = (static_cast<char32_t>(b0 & 0x1F) << 6) | cont(1);
    i += 2;
  } else if (b0 < 0xF0) {
    cp = (static_cast<char32_t>(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2);
    i += 3;
  } else {
    cp = (static_cast<char32_t>(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3);
    i += 4;
  }
  return cp;
}

// Code point that ends at byte `end` of a valid string (end > 0); sets `start` to where it begins.
char32_t Prev(std::string_view s, size_t end, size_t* start);

void Append(std::string& out, char32_t cp);

// Valid UTF-8 copied as is; each maximal ill-formed subpart becomes U+FFFD.
std::string Lossy(std::string_view bytes);

}  // namespace mamba2::utf8
