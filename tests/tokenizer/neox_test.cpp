// GPT-NeoX-20B tokenizer against HF tokenizers' own ids (tests/data/tokenizer, made by
// tools/tokenizer/make_expected.js).
#include <cstdio>
#include <cstring>
#include <thread>
#include <set>

#include <nlohmann/json.hpp>

#include "tokenizer/utf8.h"
#include "tokenizer_testing.h"

namespace mamba2 {
namespace {

using testing::FirstDifference;

nlohmann::json LoadJson(const std::string& path) {
  std::string text, err;
  if (!testing::ReadWholeFile(path, &text, &err)) {
    ADD_FAILURE() << err;
    return {};
  }
  return nlohmann::json::parse(text);
}

std::string Escaped(const std::string& s) { return nlohmann::json(s).dump(); }

TEST(NeoxTokenizer, Metadata) {
  REQUIRE_NEOX(tok);
  // Facts from MAMBA2-SPEC section 5.
  EXPECT_EQ(tok->vocab_size(), 50277);
  EXPECT_EQ(tok->eos_id(), 0);
  EXPECT_EQ(tok->TokenId("<|endoftext|>"), 0);
  EXPECT_EQ(tok->TokenId("<|padding|>"), 1);
  EXPECT_EQ(tok->TokenId("  "), 50276);
  EXPECT_EQ(tok->TokenId(std::string(24, ' ')), 50254);
  EXPECT_FALSE(tok->TokenId("no such token at all").has_value());
  EXPECT_EQ(tok->TokenBytes(0), "<|endoftext|>");
  EXPECT_EQ(tok->TokenBytes(50276), "  ");
  EXPECT_EQ(tok->TokenBytes(*tok->TokenId("\xC4\xA0the")), " the");  // "Ġthe"
  EXPECT_EQ(tok->TokenBytes(*tok->TokenId("\xC4\x8A")), "\n");       // "Ċ"
  EXPECT_EQ(tok->TokenBytes(-1), "");
  EXPECT_EQ(tok->TokenBytes(50277), "");
}

TEST(NeoxTokenizer, HfCases) {
  REQUIRE_NEOX(tok);
  const nlohmann::json doc = LoadJson(testing::TokenizerDataPath("neox_cases.json"));
  ASSERT_TRUE(doc.contains("cases"));
  const auto& cases = doc["cases"];
  ASSERT_GE(cases.size(), 200u);
  std::set<std::string> groups;
  size_t roundtrip_checked = 0;
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    const std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    const std::string want_decoded = c["decoded"].get<std::string>();
    groups.insert(c["group"].get<std::string>());
    SCOPED_TRACE("case " + c["group"].get<std::string>() + " " + Escaped(text));
    auto got = tok->Encode(text);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_EQ(*got, want) << FirstDifference(*got, want);
    EXPECT_EQ(tok->Decode(want), want_decoded);
    // HF gives back the text itself except where NFC changed it.
    if (want_decoded == text) {
      EXPECT_EQ(tok->Decode(*got), text);
      ++roundtrip_checked;
    }
  }
  for (const char* g : {"empty", "ascii", "accents", "combining", "cjk", "emoji", "whitespace", "space_runs", "digits",
                        "long_words", "punctuation", "contractions", "special", "lead_trail", "unicode_spaces"}) {
    EXPECT_TRUE(groups.count(g)) << "case group " << g << " missing from neox_cases.json";
  }
  EXPECT_GT(roundtrip_checked, cases.size() * 9 / 10);
}

// HF's decoder on arbitrary id sequences: partial UTF-8, added tokens, unknown ids.
TEST(NeoxTokenizer, HfDecodeCases) {
  REQUIRE_NEOX(tok);
  const nlohmann::json doc = LoadJson(testing::TokenizerDataPath("neox_cases.json"));
  ASSERT_TRUE(doc.contains("decode_cases"));
  ASSERT_GE(doc["decode_cases"].size(), 20u);
  for (const auto& c : doc["decode_cases"]) {
    const std::vector<int32_t> ids = c["ids"].get<std::vector<int32_t>>();
    const std::string want = c["decoded"].get<std::string>();
    EXPECT_EQ(tok->Decode(ids), want) << "ids " << c["ids"].dump();
    // Streaming gives the same text, and every chunk is whole UTF-8 characters.
    Utf8Stream stream;
    std::string streamed;
    for (int32_t id : ids) {
      const std::string chunk = stream.Push(tok->TokenBytes(id));
      EXPECT_EQ(utf8::FindInvalid(chunk), utf8::kValid);
      streamed += chunk;
    }
    streamed += stream.Flush();
    EXPECT_EQ(streamed, want) << "ids " << c["ids"].dump();
  }
}

struct Corpus {
  std::string text;
  nlohmann::json meta;
};

bool LoadCorpus(const std::string& name, Corpus* out) {
  std::string err;
  if (!testing::ReadWholeFile(testing::SharedDataPath(name), &out->text, &err)) {
    ADD_FAILURE() << err << " (shared corpus file, see MAMBA2-SPEC.md section 6)";
    return false;
  }
  const nlohmann::json meta = LoadJson(testing::TokenizerDataPath("corpus_ids.json"));
  if (!meta.contains("corpora") || !meta["corpora"].contains(name)) {
    ADD_FAILURE() << "corpus_ids.json has no entry for " << name;
    return false;
  }
  out->meta = meta["corpora"][name];
  if (out->meta["bytes"].get<size_t>() != out->text.size()) {
    ADD_FAILURE() << name << " has " << out->text.size() << " bytes, the expectations were made from "
                  << out->meta["bytes"].get<size_t>() << " bytes";
    return false;
  }
  return true;
}

std::string Fnv1a64(const std::vector<int32_t>& ids) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (int32_t id : ids) {
    const auto u = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) {
      h ^= (u >> (8 * k)) & 0xFF;
      h *= 0x100000001b3ULL;
    }
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

TEST(NeoxTokenizer, WikitextValidIdForId) {
  REQUIRE_NEOX(tok);
  Corpus corpus;
  ASSERT_TRUE(LoadCorpus("wikitext-103-raw-valid.txt", &corpus));
  std::string raw, err;
  ASSERT_TRUE(testing::ReadWholeFile(testing::TokenizerDataPath("wikitext_valid_ids.bin"), &raw, &err)) << err;
  ASSERT_EQ(raw.size() % 4, 0u);
  std::vector<int32_t> want(raw.size() / 4);
  for (size_t i = 0; i < want.size(); ++i) {
    const auto* p = reinterpret_cast<const unsigned char*>(raw.data() + 4 * i);
    want[i] = static_cast<int32_t>(p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24));
  }
  ASSERT_EQ(want.size(), corpus.meta["count"].get<size_t>());
  auto got = tok->Encode(corpus.text);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->size(), want.size());
  EXPECT_TRUE(*got == want) << FirstDifference(*got, want);
  EXPECT_TRUE(tok->Decode(*got) == corpus.text) << "decode(encode(wikitext valid)) differs from the text";
}

TEST(NeoxTokenizer, OtherCorporaHash) {
  REQUIRE_NEOX(tok);
  for (const char* name : {"wikitext-103-raw-test.txt", "tinyshakespeare.txt"}) {
    SCOPED_TRACE(name);
    Corpus corpus;
    ASSERT_TRUE(LoadCorpus(name, &corpus));
    auto got = tok->Encode(corpus.text);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_EQ(got->size(), corpus.meta["count"].get<size_t>());
    EXPECT_EQ(Fnv1a64(*got), corpus.meta["fnv1a64"].get<std::string>());
    EXPECT_TRUE(tok->Decode(*got) == corpus.text);
  }
}

TEST(NeoxTokenizer, RefusesInvalidUtf8WithOffset) {
  REQUIRE_NEOX(tok);
  struct Bad {
    std::string text;
    size_t offset;
  };
  const Bad bad[] = {
      {std::string("abc\xFF" "def"), 3},         // byte never used in UTF-8
      {std::string("\xC0\x80"), 0},              // overlong NUL
      {std::string("ok \xED\xA0\x80"), 3},       // UTF-16 surrogate
      {std::string("ab\xE2\x82"), 2},            // truncated at the end
      {std::string("\xE2\x82" "ab"), 0},         // truncated in the middle
      {std::string("x\xF4\x90\x80\x80"), 1},     // above U+10FFFF
      {std::string("caf\xC3\xA9 \x80"), 6},      // stray continuation byte
  };
  for (const Bad& b : bad) {
    auto r = tok->Encode(b.text);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("not valid UTF-8 at byte offset " + std::to_string(b.offset)),
              std::string::npos)
        << r.status().message();
  }
}

TEST(NeoxTokenizer, ConcurrentEncodeAgrees) {
  REQUIRE_NEOX(tok);
  Corpus corpus;
  ASSERT_TRUE(LoadCorpus("wikitext-103-raw-valid.txt", &corpus));
  const std::string part = corpus.text.substr(0, 200000);
  auto want = tok->Encode(part);
  ASSERT_TRUE(want.ok());
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      auto r = tok->Encode(part);
      if (r.ok()) got[t] = *r;
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_TRUE(g == *want);
}

}  // namespace
}  // namespace mamba2
