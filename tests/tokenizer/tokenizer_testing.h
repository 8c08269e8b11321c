// Shared helpers of the tokenizer tests: data paths and the NeoX tokenizer, loaded once.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "tokenizer/tokenizer.h"

namespace mamba2::testing {

inline std::string SharedDataPath(const std::string& rel) { return std::string(MAMBA2_SHARED_DATA) + "/" + rel; }
inline std::string TokenizerDataPath(const std::string& rel) {
  return std::string(MAMBA2_TEST_DATA) + "/tokenizer/" + rel;
}
inline const std::string& NeoxJsonPath() {
  static const std::string p = SharedDataPath("gpt-neox-20b/tokenizer.json");
  return p;
}

// Reads a whole file; on failure returns false and explains in *error.
inline bool ReadWholeFile(const std::string& path, std::string* out, std::string* error) {
  if (!std::filesystem::exists(path)) {
    *error = "missing file " + path;
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  *out = ss.str();
  return true;
}

// The NeoX tokenizer, or nullptr with *error saying why (a missing shared file is an
// error, never a skip: these tests are the tokenizer's proof of equality with HF).
inline const Tokenizer* Neox(std::string* error) {
  static std::string load_error;
  static const Tokenizer* tok = []() -> const Tokenizer* {
    if (!std::filesystem::exists(NeoxJsonPath())) {
      load_error = "missing shared data file " + NeoxJsonPath() +
                   " (the GPT-NeoX-20B tokenizer.json, see MAMBA2-SPEC.md section 6)";
      return nullptr;
    }
    auto r = Tokenizer::Load(NeoxJsonPath());
    if (!r.ok()) {
      load_error = r.status().message();
      return nullptr;
    }
    return new Tokenizer(std::move(r).value());
  }();
  *error = load_error;
  return tok;
}

#define REQUIRE_NEOX(var)                      \
  std::string var##_error;                     \
  const ::mamba2::Tokenizer* var = ::mamba2::testing::Neox(&var##_error); \
  ASSERT_NE(var, nullptr) << var##_error

// Shows ids around the first difference, for failure messages.
inline std::string FirstDifference(const std::vector<int32_t>& got, const std::vector<int32_t>& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  if (i == got.size() && i == want.size()) return "equal";
  std::ostringstream os;
  os << "first difference at position " << i << " (got " << got.size() << " ids, want " << want.size() << "): ";
  const size_t from = i >= 3 ? i - 3 : 0;
  auto dump = [&](const std::vector<int32_t>& v) {
    os << "[";
    for (size_t k = from; k < v.size() && k < i + 5; ++k) os << (k == i ? "*" : "") << v[k] << (k + 1 < v.size() ? " " : "");
    os << "]";
  };
  os << "got ";
  dump(got);
  os << " want ";
  dump(want);
  return os.str();
}

}  // namespace mamba2::testing
