// The GPT-2 split of HF's ByteLevel pre-tokenizer,
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// written out by hand over character classes taken from HF itself (gpt2_classes.inc).
// Why not PCRE2 here: the system PCRE2 (10.42) carries Unicode 14 tables and counts
// U+180E as \s, while HF's Oniguruma has Unicode 16; that is 9,393 code points on which
// the two disagree (tests/tokenizer/unicode_test.cpp checks every code point).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace mamba2 {

enum class Gpt2Class : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

Gpt2Class Gpt2ClassOf(char32_t cp);

// Appends the pieces of valid UTF-8 `text`; they cover it exactly, in order.
void SplitGpt2(std::string_view text, std::vector<std::string_view>& out);

}  // namespace mamba2
