// A thin PCRE2 wrapper (UTF + UCP, JIT when available) for the pre-tokenizer splits.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mamba2 {

struct Span {
  size_t begin;
  size_t end;
};

class Regex {
 public:
  // `literal` compiles the text as a plain string (HF's Split with a "String" pattern).
  static Result<Regex> Compile(const std::string& pattern, bool literal);
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // Appends every non-overlapping match of `text` (valid UTF-8) from left to right.
  // An empty match is reported, and the next search starts one character later.
  Status FindAll(std::string_view text, std::vector<Span>& out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  struct Code;
  std::unique_ptr<Code> code_;
  std::string pattern_;
};

}  // namespace mamba2
