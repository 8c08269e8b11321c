// The GPT-2 byte <-> unicode map used by byte-level BPE: every byte gets a printable
// stand-in character so that BPE vocabularies can be stored as text.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace mamba2::byte_level {

// Bytes 33-126, 161-172, 174-255 map to themselves; the other 68 map to U+0100.. in order.
const std::array<char32_t, 256>& ByteToChar();

// The byte a stand-in character encodes, or -1 for characters outside the map.
int CharToByte(char32_t c);

// UTF-8 text of the stand-in characters of `raw`.
std::string Encode(std::string_view raw);

// What HF's ByteLevel decoder yields for one token: the bytes its characters stand for
// when every character is in the map, otherwise the token's own UTF-8 bytes unchanged.
std::string DecodeToken(std::string_view token);

}  // namespace mamba2::byte_level
