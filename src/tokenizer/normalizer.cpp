#include "tokenizer/normalizer.h"

#include <nlohmann/json.hpp>
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uniset.h>

namespace mamba2 {
namespace {

constexpr UChar32 kInert[] = {
#include "tokenizer/nfc_inert.inc"
};

// ICU's NFC restricted to the code points HF's (older) normalization tables know: the
// others are copied through and cut the text into separately normalized spans, which is
// what HF's treating them as unassigned starters amounts to.
const icu::Normalizer2* Nfc() {
  static const icu::Normalizer2* n = [] {
    UErrorCode err = U_ZERO_ERROR;
    const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(err);
    CHECK_MSG(U_SUCCESS(err) && nfc != nullptr, "ICU NFC data unavailable");
    auto* known = new icu::UnicodeSet(0, 0x10FFFF);
    for (UChar32 cp : kInert) known->remove(cp);
    known->freeze();
    return static_cast<const icu::Normalizer2*>(new icu::FilteredNormalizer2(*nfc, *known));
  }();
  return n;
}

}  // namespace

Result<TextNormalizer> TextNormalizer::FromJson(const nlohmann::json& j) {
  TextNormalizer n;
  if (j.is_null()) return n;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return Status::Error("normalizer: expected null or an object with a string \"type\"");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "NFC") {
    n.nfc_ = true;
    return n;
  }
  return Status::Error("normalizer: unsupported type \"" + type + "\" (supported: null, NFC)");
}

std::string TextNormalizer::Apply(std::string_view text) const {
  if (!nfc_) return std::string(text);
  // Everything below U+0300 (UTF-8 lead bytes below 0xCC) is NFC-inert: such characters
  // neither decompose nor compose with anything else in the run.
  bool inert = true;
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0xCC) {
      inert = false;
      break;
    }
  }
  if (inert) return std::string(text);
  const icu::Normalizer2* nfc = Nfc();
  const icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
  UErrorCode err = U_ZERO_ERROR;
  if (nfc->isNormalizedUTF8(piece, err) && U_SUCCESS(err)) return std::string(text);
  std::string out;
  icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(text.size()));
  err = U_ZERO_ERROR;
  nfc->normalizeUTF8(0, piece, sink, nullptr, err);
  CHECK_MSG(U_SUCCESS(err), "ICU normalizeUTF8 failed on valid UTF-8");
  return out;
}

}  // namespace mamba2
