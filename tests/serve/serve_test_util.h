// Shared pieces of the serve tests: a byte-level tokenizer built in memory (256 byte tokens plus
// <|endoftext|>), a small random model that fits it, and a scheduler driven on the test thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "engine/generator.h"
#include "model/mamba2_model.h"
#include "serve/scheduler.h"
#include "support/random_model.h"
#include "tokenizer/tokenizer.h"

namespace mamba2::testing {

// GPT-2's byte -> printable code point map: every byte is one token, so any text encodes.
inline std::string ByteChar(int b) {
  int cp;
  if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
    cp = b;
  } else {
    int n = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

inline std::unique_ptr<Tokenizer> ByteTokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteChar(b)] = b;
  nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 256}, {"content", "<|endoftext|>"}, {"special", true}, {"single_word", false},
         {"lstrip", false}, {"rstrip", false}, {"normalized", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                         {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                   {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", false},
                 {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  auto tok = Tokenizer::FromJson(j, "byte-tokenizer");
  CHECK_MSG(tok.ok(), tok.status().message());
  return std::make_unique<Tokenizer>(std::move(tok).value());
}

// A random model whose 272 vocabulary rows cover the byte tokenizer (ids 0..256).
inline const std::string& ServeModelDir() {
  static const std::string dir = [] {
    RandomModelSpec spec;
    spec.d_model = 64;
    spec.n_layer = 2;
    spec.d_state = 16;
    spec.head_dim = 16;
    spec.chunk_size = 8;
    spec.vocab_rows = 272;
    spec.seed = 11;
    return WriteRandomModel(spec);
  }();
  return dir;
}

struct Bundle {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Mamba2Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
};

inline Bundle LoadServeModel(const std::string& backend, int32_t max_slots) {
  Bundle b;
  b.tokenizer = ByteTokenizer();
  b.backend = backend == "ref" ? MakeRefBackend() : MakeCpuBackend(2);
  ModelOptions o;
  o.max_slots = max_slots;
  auto m = Mamba2Model::Load(ServeModelDir(), b.backend.get(), o);
  CHECK_MSG(m.ok(), m.status().message());
  b.model = std::move(m).value();
  return b;
}

inline std::vector<int32_t> Ids(const Tokenizer& tok, const std::string& text) {
  auto r = tok.Encode(text);
  CHECK_MSG(r.ok(), r.status().message());
  return *r;
}

}  // namespace mamba2::testing
