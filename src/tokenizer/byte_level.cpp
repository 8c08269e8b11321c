#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace mamba2::byte_level {
namespace {

bool MapsToItself(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

std::array<char32_t, 256> BuildByteToChar() {
  std::array<char32_t, 256> m{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) m[b] = MapsToItself(b) ? static_cast<char32_t>(b) : next++;
  return m;
}

// Stand-ins live below U+0144, so a flat table covers the inverse.
constexpr char32_t kInverseSize = 0x144;
std::array<int, kInverseSize> BuildCharToByte() {
  std::array<int, kInverseSize> inv{};
  inv.fill(-1);
  const auto& m = ByteToChar();
  for (int b = 0; b < 256; ++b) inv[m[b]] = b;
  return inv;
}

}  // namespace

const std::array<char32_t, 256>& ByteToChar() {
  static const std::array<char32_t, 256> m = BuildByteToChar();
  return m;
}

int CharToByte(char32_t c) {
  static const std::array<int, kInverseSize> inv = BuildCharToByte();
  return c < kInverseSize ? inv[c] : -1;
}

std::string Encode(std::string_view raw) {
  const auto& m = ByteToChar();
  std::string out;
  out.reserve(raw.size() * 2);
  for (char ch : raw) utf8::Append(out, m[static_cast<unsigned char>(ch)]);
  return out;
}

std::string DecodeToken(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  size_t i = 0;
  while (i < token.size()) {
    const utf8::Step st = utf8::Decode(token, i);
    const int b = st.valid ? CharToByte(st.cp) : -1;
    if (b < 0) return std::string(token);
    out.push_back(static_cast<char>(b));
    i += st.len;
  }
  return out;
}

}  // namespace mamba2::byte_level
