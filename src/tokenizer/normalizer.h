// The tokenizer.json "normalizer": none, or Unicode NFC (done with ICU's Normalizer2).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace mamba2 {

class TextNormalizer {
 public:
  // Accepts null and {"type": "NFC"}; anything else is refused with a Status naming it.
  static Result<TextNormalizer> FromJson(const nlohmann::json& j);

  bool enabled() const { return nfc_; }
  // `text` must be valid UTF-8. Returns the normalized text (a copy when unchanged).
  std::string Apply(std::string_view text) const;

 private:
  bool nfc_ = false;
};

}  // namespace mamba2
