#include "tokenizer/gpt2_split.h"

#include <array>
#include <string>
#include <unordered_map>

#include "core/status.h"
#include "tokenizer/utf8.h"

namespace mamba2 {
namespace {

struct Run {
  char32_t first;
  uint8_t cls;
};
constexpr Run kRuns[] = {
#include "tokenizer/gpt2_classes.inc"
};

// Two-stage table: 256-code-point blocks, identical blocks shared.
class ClassTable {
 public:
  ClassTable() {
    constexpr size_t kBlocks = 0x110000 >> 8;
    std::vector<uint8_t> flat(0x110000);
    const size_t n = sizeof(kRuns) / sizeof(kRuns[0]);
    for (size_t r = 0; r < n; ++r) {
      const char32_t end = r + 1 < n ? kRuns[r + 1].first : 0x110000;
      for (char32_t cp = kRuns[r].first; cp < end; ++cp) flat[cp] = kRuns[r].cls;
    }
    index_.resize(kBlocks);
    std::unordered_map<std::string, uint16_t> seen;
    for (size_t b = 0; b < kBlocks; ++b) {
      const uint8_t* block = flat.data() + (b << 8);
      std::string key(reinterpret_cast<const char*>(block), 256);
      auto [it, fresh] = seen.emplace(std::move(key), static_cast<uint16_t>(seen.size()));
      if (fresh) blocks_.insert(blocks_.end(), block, block + 256);
      index_[b] = it->second;
    }
  }
  Gpt2Class Get(char32_t cp) const {
    return static_cast<Gpt2Class>(blocks_[(static_cast<size_t>(index_[cp >> 8]) << 8) | (cp & 0xFF)]);
  }

 private:
  std::vector<uint16_t> index_;
  std::vector<uint8_t> blocks_;
};

const ClassTable& Table() {
  static const ClassTable t;
  return t;
}

// ASCII fast path: the common case for English text.
constexpr std::array<Gpt2Class, 128> AsciiClasses() {
  std::array<Gpt2Class, 128> a{};
  for (int c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      a[c] = Gpt2Class::kLetter;
    } else if (c >= '0' && c <= '9') {
      a[c] = Gpt2Class::kNumber;
    } else if (c == ' ' || (c >= 9 && c <= 13)) {
      a[c] = Gpt2Class::kSpace;
    } else {
      a[c] = Gpt2Class::kOther;
    }
  }
  return a;
}
constexpr std::array<Gpt2Class, 128> kAscii = AsciiClasses();

struct CharAt {
  Gpt2Class cls;
  size_t len;
};

inline CharAt ClassAt(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return {kAscii[b], 1};
  size_t j = i;
  const char32_t cp = utf8::Next(s, j);
  return {Table().Get(cp), j - i};
}

}  // namespace

Gpt2Class Gpt2ClassOf(char32_t cp) {
  if (cp < 0x80) return kAscii[cp];
  return cp < 0x110000 ? Table().Get(cp) : Gpt2Class::kOther;
}

void SplitGpt2(std::string_view text, std::vector<std::string_view>& out) {
  const size_t n = text.size();
  size_t i = 0;
  auto emit = [&](size_t b, size_t e) { out.push_back(text.substr(b, e - b)); };
  // End of the run of characters of class `cls` starting at `from`.
  auto run_end = [&](size_t from, Gpt2Class cls) {
    size_t j = from;
    while (j < n) {
      const CharAt c = ClassAt(text, j);
      if (c.cls != cls) break;
      j += c.len;
    }
    return j;
  };
  while (i < n) {
    const char c0 = text[i];
    // 's 't 're 've 'm 'll 'd, lowercase only, tried before anything else.
    if (c0 == '\'' && i + 1 < n) {
      const char c1 = text[i + 1];
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        emit(i, i + 2);
        i += 2;
        continue;
      }
      if (i + 2 < n && (((c1 == 'r' || c1 == 'v') && text[i + 2] == 'e') || (c1 == 'l' && text[i + 2] == 'l'))) {
        emit(i, i + 3);
        i += 3;
        continue;
      }
    }
    // " ?" before a letter, number or other run.
    if (c0 == ' ' && i + 1 < n) {
      const CharAt next = ClassAt(text, i + 1);
      if (next.cls != Gpt2Class::kSpace) {
        const size_t e = run_end(i + 1, next.cls);
        emit(i, e);
        i = e;
        continue;
      }
    }
    const CharAt here = ClassAt(text, i);
    if (here.cls != Gpt2Class::kSpace) {
      const size_t e = run_end(i, here.cls);
      emit(i, e);
      i = e;
      continue;
    }
    // Whitespace: \s+(?!\S) takes the run but leaves its last character to lead the next
    // word, unless the run ends the text; a lone character falls to \s+.
    size_t j = i, last = i;
    while (j < n) {
      const CharAt c = ClassAt(text, j);
      if (c.cls != Gpt2Class::kSpace) break;
      last = j;
      j += c.len;
    }
    const size_t e = (j == n || last == i) ? j : last;
    emit(i, e);
    i = e;
  }
}

}  // namespace mamba2
