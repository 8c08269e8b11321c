#include "tokenizer/bpe.h"

#include <algorithm>
#include <mutex>

#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace mamba2 {
namespace {

// Pieces this long are rare and would bloat the cache (HF uses the same bound).
constexpr size_t kMaxCachedPieceBytes = 256;
constexpr size_t kMaxCacheEntries = 1 << 18;

uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

std::string Quoted(const std::string& s) { return nlohmann::json(s).dump(); }

}  // namespace

Result<std::unique_ptr<Bpe>> Bpe::FromJson(const nlohmann::json& m) {
  if (!m.is_object()) return Status::Error("model: expected an object");
  if (m.contains("type")) {
    if (!m["type"].is_string()) return Status::Error("model: \"type\" must be a string");
    const std::string type = m["type"].get<std::string>();
    if (type != "BPE") return Status::Error("model: unsupported type \"" + type + "\" (supported: BPE)");
  }
  if (m.contains("dropout") && !m["dropout"].is_null()) {
    if (!m["dropout"].is_number()) return Status::Error("model: \"dropout\" must be null or a number");
    // dropout 0 is the same as none in HF; anything else makes encoding random.
    if (m["dropout"].get<double>() != 0.0) {
      return Status::Error("model: BPE dropout " + m["dropout"].dump() + " is not supported (expected null)");
    }
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(key) && !m[key].is_null()) {
      return Status::Error(std::string("model: ") + key + " " + m[key].dump() + " is not supported (expected null)");
    }
  }
  auto flag = [&](const char* key) -> Result<bool> {
    if (!m.contains(key) || m[key].is_null()) return false;
    if (!m[key].is_boolean()) return Status::Error(std::string("model: \"") + key + "\" must be a boolean");
    return m[key].get<bool>();
  };
  ASSIGN_OR_RETURN(const bool byte_fallback, flag("byte_fallback"));
  if (byte_fallback) return Status::Error("model: byte_fallback=true is not supported");

  auto bpe = std::unique_ptr<Bpe>(new Bpe());
  ASSIGN_OR_RETURN(bpe->fuse_unk_, flag("fuse_unk"));
  ASSIGN_OR_RETURN(bpe->ignore_merges_, flag("ignore_merges"));

  if (!m.contains("vocab") || !m["vocab"].is_object()) return Status::Error("model: missing object \"vocab\"");
  if (!m.contains("merges") || !m["merges"].is_array()) return Status::Error("model: missing array \"merges\"");
  const auto& vocab = m["vocab"];
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX) {
      return Status::Error("model.vocab: entry " + Quoted(it.key()) + " has id " + it.value().dump() +
                           ", expected a non-negative 32-bit integer");
    }
    bpe->vocab_.Set(it.key(), static_cast<int32_t>(it.value().get<int64_t>()));
  }

  if (m.contains("unk_token") && !m["unk_token"].is_null()) {
    if (!m["unk_token"].is_string()) return Status::Error("model: \"unk_token\" must be null or a string");
    const std::string unk = m["unk_token"].get<std::string>();
    const int32_t* id = bpe->vocab_.Find(unk);
    if (id == nullptr) return Status::Error("model: unk_token " + Quoted(unk) + " is not in the vocab");
    bpe->unk_id_ = *id;
  }

  const auto& merges = m["merges"];
  bpe->merges_.reserve(merges.size());
  uint32_t rank = 0;
  for (size_t k = 0; k < merges.size(); ++k) {
    const auto& e = merges[k];
    std::string a, b;
    if (e.is_string()) {
      // Legacy "a b" lines; HF skips "#version" headers and does not count them as ranks.
      const std::string line = e.get<std::string>();
      if (line.rfind("#version", 0) == 0) continue;
      const size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos) {
        return Status::Error("model.merges[" + std::to_string(k) + "]: " + Quoted(line) +
                             " is not two tokens separated by one space");
      }
      a = line.substr(0, sp);
      b = line.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      return Status::Error("model.merges[" + std::to_string(k) + "]: expected \"a b\" or [\"a\", \"b\"], found " +
                           e.dump());
    }
    auto find = [&](const std::string& t) -> Result<int32_t> {
      const int32_t* id = bpe->vocab_.Find(t);
      if (id == nullptr) {
        return Status::Error("model.merges[" + std::to_string(k) + "]: token " + Quoted(t) +
                             " is not in the vocab");
      }
      return *id;
    };
    ASSIGN_OR_RETURN(const int32_t a_id, find(a));
    ASSIGN_OR_RETURN(const int32_t b_id, find(b));
    ASSIGN_OR_RETURN(const int32_t new_id, find(a + b));
    // A repeated pair keeps its last rank, as in HF (map built by successive inserts).
    bpe->merges_[PairKey(a_id, b_id)] = {rank++, new_id};
  }

  const auto& b2c = byte_level::ByteToChar();
  for (int byte = 0; byte < 256; ++byte) {
    std::string ch;
    utf8::Append(ch, b2c[byte]);
    const int32_t* id = bpe->vocab_.Find(ch);
    bpe->byte_ids_[byte] = id == nullptr ? -1 : *id;
  }
  return bpe;
}

void Bpe::Tokenize(std::string_view piece, bool byte_level, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  const bool cacheable = piece.size() < kMaxCachedPieceBytes;
  if (cacheable) {
    std::shared_lock lock(cache_mu_);
    if (const IdSpan* hit = cache_.Find(piece)) {
      const int32_t* ids = cache_ids_.data() + hit->off;
      out.insert(out.end(), ids, ids + hit->len);
      return;
    }
  }
  const size_t first = out.size();
  Merge(piece, byte_level, out);
  if (cacheable) {
    std::unique_lock lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) {
      cache_.Clear();
      cache_ids_.clear();
    }
    if (cache_.Find(piece) == nullptr) {  // another thread may have added it meanwhile
      cache_.Set(piece, IdSpan{static_cast<uint32_t>(cache_ids_.size()), static_cast<uint32_t>(out.size() - first)});
      cache_ids_.insert(cache_ids_.end(), out.begin() + first, out.end());
    }
  }
}

void Bpe::Merge(std::string_view piece, bool byte_level, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    const int32_t* id = byte_level ? vocab_.Find(byte_level::Encode(piece)) : vocab_.Find(piece);
    if (id != nullptr) {
      out.push_back(*id);
      return;
    }
  }
  // A doubly linked list of symbols over a vector; a merged-away symbol is marked dead.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  thread_local std::vector<Symbol> sym;
  sym.clear();
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(sym.size());
    if (n > 0) sym.back().next = n;
    sym.push_back({id, n - 1, -1, true});
  };
  // Characters missing from the vocab become unk (fused when fuse_unk) or vanish when
  // there is no unk token, as in HF's merge_word.
  bool pending_unk = false;
  auto push_known = [&](int32_t id) {
    if (pending_unk) {
      add(unk_id_);
      pending_unk = false;
    }
    add(id);
  };
  auto push_missing = [&]() {
    if (unk_id_ < 0) return;
    if (pending_unk && !fuse_unk_) add(unk_id_);
    pending_unk = true;
  };
  if (byte_level) {
    for (char c : piece) {
      const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
      if (id >= 0) {
        push_known(id);
      } else {
        push_missing();
      }
    }
  } else {
    size_t i = 0;
    while (i < piece.size()) {
      const size_t start = i;
      utf8::Next(piece, i);
      const int32_t* id = vocab_.Find(piece.substr(start, i - start));
      if (id != nullptr) {
        push_known(*id);
      } else {
        push_missing();
      }
    }
  }
  if (pending_unk) add(unk_id_);
  if (sym.empty()) return;

  // Min-heap on (rank, position): the lowest rank merges first, leftmost among equals.
  // Entries can go stale as neighbours merge; they are checked when popped.
  struct Cand {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
  };
  auto worse = [](const Cand& x, const Cand& y) { return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos; };
  thread_local std::vector<Cand> heap;
  heap.clear();
  auto lookup = [&](int32_t a, int32_t b) -> const std::pair<uint32_t, int32_t>* {
    auto it = merges_.find(PairKey(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  auto push = [&](int32_t pos, int32_t a, int32_t b) {
    if (const auto* m = lookup(a, b)) {
      heap.push_back({m->first, pos, m->second});
      std::push_heap(heap.begin(), heap.end(), worse);
    }
  };
  for (size_t k = 0; k + 1 < sym.size(); ++k) {
    if (const auto* m = lookup(sym[k].id, sym[k + 1].id)) heap.push_back({m->first, static_cast<int32_t>(k), m->second});
  }
  std::make_heap(heap.begin(), heap.end(), worse);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), worse);
    const Cand top = heap.back();
    heap.pop_back();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    const int32_t right_pos = left.next;
    const Symbol right = sym[right_pos];
    const auto* m = lookup(left.id, right.id);
    if (m == nullptr || m->second != top.new_id) continue;
    left.id = top.new_id;
    left.next = right.next;
    sym[right_pos].alive = false;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev, sym[left.prev].id, left.id);
    if (left.next >= 0) push(top.pos, left.id, sym[left.next].id);
  }
  for (const Symbol& s : sym) {
    if (s.alive) out.push_back(s.id);
  }
}

}  // namespace mamba2
