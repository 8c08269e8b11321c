#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <deque>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace mamba2 {

struct Tokenizer::Impl {
  std::unique_ptr<Bpe> bpe;
  TextNormalizer normalizer;
  std::optional<PreTokenizer> pre_tokenizer;
  std::vector<AddedToken> added;                  // one entry per added id
  VocabMap added_ids;                             // content -> id
  AddedTokenMatcher raw_matcher;                  // normalized=false tokens
  AddedTokenMatcher normalized_matcher;           // normalized=true tokens
  std::vector<std::string> token_bytes;           // by id; what the decoder yields
  int32_t vocab_size = 0;
  int32_t eos = -1;
};

namespace {

Status ParseAddedTokens(const nlohmann::json& root, const TextNormalizer& normalizer, const Bpe& bpe,
                        std::vector<AddedToken>& added, VocabMap& added_ids) {
  if (!root.contains("added_tokens") || root["added_tokens"].is_null()) return Status::Ok();
  const auto& arr = root["added_tokens"];
  if (!arr.is_array()) return Status::Error("added_tokens: expected an array");
  // HF gives an added token the id its content already has (added earlier or in the
  // model vocab) and otherwise the next id from the model's vocab entry count; the "id"
  // field of the file is only checked there with a warning, so it is not used here.
  auto next_id = static_cast<int32_t>(bpe.vocab_entries());
  std::unordered_map<int32_t, size_t> slot_of_id;
  for (size_t k = 0; k < arr.size(); ++k) {
    const auto& t = arr[k];
    const std::string where = "added_tokens[" + std::to_string(k) + "]";
    if (!t.is_object() || !t.contains("content") || !t["content"].is_string()) {
      return Status::Error(where + ": expected an object with a string \"content\"");
    }
    AddedToken tok;
    tok.content = t["content"].get<std::string>();
    if (utf8::FindInvalid(tok.content) != utf8::kValid) return Status::Error(where + ": content is not valid UTF-8");
    auto flag = [&](const char* key, bool fallback) -> Result<bool> {
      if (!t.contains(key) || t[key].is_null()) return fallback;
      if (!t[key].is_boolean()) return Status::Error(where + ": \"" + key + "\" must be a boolean");
      return t[key].get<bool>();
    };
    ASSIGN_OR_RETURN(tok.special, flag("special", false));
    ASSIGN_OR_RETURN(tok.single_word, flag("single_word", false));
    ASSIGN_OR_RETURN(tok.lstrip, flag("lstrip", false));
    ASSIGN_OR_RETURN(tok.rstrip, flag("rstrip", false));
    ASSIGN_OR_RETURN(tok.normalized, flag("normalized", !tok.special));
    if (tok.content.empty()) continue;  // HF ignores empty added tokens
    if (const int32_t* a = added_ids.Find(tok.content)) {
      tok.id = *a;
    } else if (const int32_t* v = bpe.vocab().Find(tok.content)) {
      tok.id = *v;
    } else {
      tok.id = next_id++;
    }
    tok.match_text = tok.normalized && normalizer.enabled() ? normalizer.Apply(tok.content) : tok.content;
    added_ids.Set(tok.content, tok.id);
    if (auto s = slot_of_id.find(tok.id); s != slot_of_id.end()) {
      added[s->second] = std::move(tok);
    } else {
      slot_of_id[tok.id] = added.size();
      added.push_back(std::move(tok));
    }
  }
  return Status::Ok();
}

Status CheckDecoder(const nlohmann::json& root) {
  if (!root.contains("decoder") || root["decoder"].is_null()) {
    return Status::Error("decoder: missing (null); only ByteLevel is supported");
  }
  const auto& d = root["decoder"];
  if (!d.is_object() || !d.contains("type") || !d["type"].is_string()) {
    return Status::Error("decoder: expected an object with a string \"type\"");
  }
  const std::string type = d["type"].get<std::string>();
  if (type != "ByteLevel") return Status::Error("decoder: unsupported type \"" + type + "\" (supported: ByteLevel)");
  return Status::Ok();
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Result<Tokenizer> Tokenizer::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error("tokenizer: cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::Error("tokenizer: error reading " + path);
  return FromJsonText(ss.str(), path);
}

Result<Tokenizer> Tokenizer::FromJsonText(std::string_view json_text, const std::string& source) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    return Status::Error(source + ": not valid JSON: " + e.what());
  }
  return FromJson(root, source);
}

Result<Tokenizer> Tokenizer::FromJson(const nlohmann::json& root, const std::string& source) {
  auto fail = [&](const Status& st) { return st.With(source); };
  try {
    if (!root.is_object()) return fail(Status::Error("expected a JSON object at the top level"));
    if (root.contains("version") && !(root["version"].is_string() && root["version"] == "1.0")) {
      return fail(Status::Error("unknown tokenizer version " + root["version"].dump() + " (expected \"1.0\")"));
    }
    auto impl = std::make_unique<Impl>();
    if (!root.contains("model") || root["model"].is_null()) return fail(Status::Error("missing \"model\""));
    auto bpe = Bpe::FromJson(root["model"]);
    if (!bpe.ok()) return fail(bpe.status());
    impl->bpe = std::move(bpe).value();

    auto norm = TextNormalizer::FromJson(root.contains("normalizer") ? root["normalizer"] : nlohmann::json());
    if (!norm.ok()) return fail(norm.status());
    impl->normalizer = norm.value();

    auto pre = PreTokenizer::FromJson(root.contains("pre_tokenizer") ? root["pre_tokenizer"] : nlohmann::json());
    if (!pre.ok()) return fail(pre.status());
    impl->pre_tokenizer.emplace(std::move(pre).value());

    if (Status st = CheckDecoder(root); !st.ok()) return fail(st);
    if (Status st = ParseAddedTokens(root, impl->normalizer, *impl->bpe, impl->added, impl->added_ids); !st.ok()) {
      return fail(st);
    }
    impl->raw_matcher.Build(&impl->added, /*normalized_pass=*/false);
    impl->normalized_matcher.Build(&impl->added, /*normalized_pass=*/true);

    int32_t max_id = -1;
    impl->bpe->vocab().ForEach([&](std::string_view, int32_t id) { max_id = std::max(max_id, id); });
    for (const AddedToken& t : impl->added) max_id = std::max(max_id, t.id);
    impl->vocab_size = max_id + 1;
    impl->token_bytes.assign(impl->vocab_size, std::string());
    impl->bpe->vocab().ForEach(
        [&](std::string_view tok, int32_t id) { impl->token_bytes[id] = byte_level::DecodeToken(tok); });
    // An added token decodes from its content, which wins over a vocab entry of the same id
    // (HF tokenizers 0.22; 0.23 switched to the normalized form, which differs only for
    // added tokens that the normalizer changes).
    for (const AddedToken& t : impl->added) {
      impl->token_bytes[t.id] = byte_level::DecodeToken(t.content);
    }
    Tokenizer tk(std::move(impl));
    for (const char* name : {"<|endoftext|>", "</s>"}) {
      if (auto id = tk.TokenId(name)) {
        tk.impl_->eos = *id;
        break;
      }
    }
    return tk;
  } catch (const std::exception& e) {
    // nlohmann throws on type mismatches that the checks above did not foresee.
    return fail(Status::Error(std::string("malformed field: ") + e.what()));
  }
}

Result<std::vector<int32_t>> Tokenizer::Encode(std::string_view text) const {
  if (const size_t bad = utf8::FindInvalid(text); bad != utf8::kValid) {
    return Status::Error("Encode: input is not valid UTF-8 at byte offset " + std::to_string(bad) + " of " +
                         std::to_string(text.size()));
  }
  const Impl& im = *impl_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  std::vector<Segment> raw_segs, norm_segs;
  std::vector<std::string_view> pieces;
  std::deque<std::string> storage;
  const bool byte_level = im.pre_tokenizer->byte_level();
  im.raw_matcher.Split(text, raw_segs);
  for (const Segment& rs : raw_segs) {
    if (rs.id >= 0) {
      ids.push_back(rs.id);
      continue;
    }
    const std::string_view raw = text.substr(rs.begin, rs.end - rs.begin);
    std::string normalized_copy;
    std::string_view normalized = raw;
    if (im.normalizer.enabled()) {
      normalized_copy = im.normalizer.Apply(raw);
      normalized = normalized_copy;
    }
    norm_segs.clear();
    im.normalized_matcher.Split(normalized, norm_segs);
    for (const Segment& ns : norm_segs) {
      if (ns.id >= 0) {
        ids.push_back(ns.id);
        continue;
      }
      pieces.clear();
      storage.clear();
      RETURN_IF_ERROR(im.pre_tokenizer->Split(normalized.substr(ns.begin, ns.end - ns.begin), pieces, storage));
      for (std::string_view p : pieces) im.bpe->Tokenize(p, byte_level, ids);
    }
  }
  return ids;
}

std::string Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= impl_->vocab_size) return {};
  return impl_->token_bytes[id];
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id >= 0 && id < impl_->vocab_size) bytes += impl_->token_bytes[id];
  }
  return utf8::Lossy(bytes);
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

std::optional<int32_t> Tokenizer::TokenId(std::string_view token) const {
  if (const int32_t* id = impl_->added_ids.Find(token)) return *id;
  if (const int32_t* id = impl_->bpe->vocab().Find(token)) return *id;
  return std::nullopt;
}

int32_t Tokenizer::eos_id() const { return impl_->eos; }

std::string Utf8Stream::Push(std::string_view bytes) {
  pending_.append(bytes);
  size_t i = 0;
  while (i < pending_.size()) {
    const utf8::Step st = utf8::Decode(pending_, i);
    if (st.truncated) break;
    i += st.len;
  }
  std::string out = utf8::Lossy(std::string_view(pending_).substr(0, i));
  pending_.erase(0, i);
  return out;
}

std::string Utf8Stream::Flush() {
  std::string out = utf8::Lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace mamba2
