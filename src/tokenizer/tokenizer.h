// Hugging Face tokenizer.json reader for byte-level BPE (GPT-2 / GPT-NeoX family),
// producing the same ids as HF tokenizers' encode(text, add_special_tokens=false)
// (checked against HF tokenizers 0.22.2 by tests/tokenizer).
//
// Pipeline, as in HF: added tokens with normalized=false are cut out of the raw text;
// the rest is normalized (NFC) and added tokens with normalized=true are cut out of it;
// what remains is pre-tokenized (GPT-2 split, byte map) and BPE-encoded per piece.
// post_processor, truncation and padding are ignored: Encode never adds BOS/EOS.
//
// Accepted: model BPE (merges as "a b" or ["a", "b"], unk_token, fuse_unk,
// ignore_merges; dropout null or 0); normalizer null or NFC; pre_tokenizer null,
// ByteLevel, Split, or a Sequence of Splits optionally ending in ByteLevel; decoder
// ByteLevel. Anything else is refused with a Status naming the field.
//
// Unicode: the GPT-2 split uses character classes taken from HF itself and NFC skips the
// code points HF's older tables do not know (gpt2_classes.inc, nfc_inert.inc, made by
// tools/tokenizer/make_expected.js), so both agree with HF on every code point. A Split
// with a user regex runs on PCRE2 10.42 (Unicode 14, and \s includes U+180E), which can
// differ from HF's Oniguruma on characters newer than Unicode 14.
//
// Added tokens get ids as HF assigns them (the id their content already has, else the
// next one after the model vocab), not from the file's "id" field.
//
// Invalid UTF-8: HF cannot receive it (a Rust &str is valid UTF-8 by construction; the
// Node binding turns lone surrogates into U+FFFD before Rust sees them), so Encode
// refuses it with a Status naming the byte offset.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace mamba2 {

class Tokenizer {
 public:
  static Result<Tokenizer> Load(const std::string& tokenizer_json_path);
  // Same, from the JSON text or the parsed document; `source` names it in error messages.
  static Result<Tokenizer> FromJsonText(std::string_view json_text, const std::string& source);
  static Result<Tokenizer> FromJson(const nlohmann::json& root, const std::string& source);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Thread-safe. No BOS/EOS is added.
  Result<std::vector<int32_t>> Encode(std::string_view text) const;
  // Concatenated token bytes decoded as UTF-8, ill-formed parts replaced by U+FFFD (as HF's
  // ByteLevel decoder). Unknown ids are skipped. Added tokens decode to their content.
  std::string Decode(const std::vector<int32_t>& ids) const;
  // Raw bytes of one token, possibly a partial UTF-8 character; "" for an unknown id.
  std::string TokenBytes(int32_t id) const;

  // max id + 1 over the vocab and the added tokens.
  int32_t vocab_size() const;
  std::optional<int32_t> TokenId(std::string_view token) const;
  // Id of "<|endoftext|>" or "</s>" if present, else -1.
  int32_t eos_id() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Turns a stream of token bytes into text that only ever contains whole UTF-8
// characters: an incomplete trailing sequence is held back until the next Push.
// The concatenation of all Push outputs and Flush equals Decode of the whole stream.
class Utf8Stream {
 public:
  std::string Push(std::string_view bytes);
  // Emits what is held back (an incomplete sequence becomes U+FFFD) and resets.
  std::string Flush();

 private:
  std::string pending_;
};

}  // namespace mamba2
