#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace mamba2 {

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() {
    if (code != nullptr) pcre2_code_free(code);
  }
};

namespace {

// Match data, JIT stack and contexts are not shareable between threads, so each thread
// keeps one set; the match data grows to the largest pattern seen.
struct ThreadScratch {
  pcre2_match_data* md = nullptr;
  uint32_t md_pairs = 0;
  pcre2_jit_stack* jit_stack = nullptr;
  pcre2_match_context* mctx = nullptr;
  ~ThreadScratch() {
    if (md != nullptr) pcre2_match_data_free(md);
    if (mctx != nullptr) pcre2_match_context_free(mctx);
    if (jit_stack != nullptr) pcre2_jit_stack_free(jit_stack);
  }
  pcre2_match_data* Data(const pcre2_code* code) {
    uint32_t pairs = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &pairs);
    pairs += 1;
    if (md == nullptr || md_pairs < pairs) {
      if (md != nullptr) pcre2_match_data_free(md);
      md = pcre2_match_data_create(pairs, nullptr);
      md_pairs = pairs;
    }
    return md;
  }
  pcre2_match_context* Context() {
    if (mctx == nullptr) {
      mctx = pcre2_match_context_create(nullptr);
      // Long runs of one class (a megabyte of spaces) can outgrow the default 32 KiB.
      jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
      if (jit_stack != nullptr) pcre2_jit_stack_assign(mctx, nullptr, jit_stack);
    }
    return mctx;
  }
};

thread_local ThreadScratch t_scratch;

std::string ErrorText(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;
Regex::~Regex() = default;

Result<Regex> Regex::Compile(const std::string& pattern, bool literal) {
  Regex r;
  r.pattern_ = pattern;
  r.code_ = std::make_unique<Code>();
  int err = 0;
  PCRE2_SIZE err_off = 0;
  // PCRE2_LITERAL refuses PCRE2_UCP, which only matters for classes anyway.
  const uint32_t opts = literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP);
  r.code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts, &err,
                                &err_off, nullptr);
  if (r.code_->code == nullptr) {
    return Status::Error("regex \"" + pattern + "\" does not compile at offset " + std::to_string(err_off) + ": " +
                         ErrorText(err));
  }
  r.code_->jit = pcre2_jit_compile(r.code_->code, PCRE2_JIT_COMPLETE) == 0;
  return r;
}

Status Regex::FindAll(std::string_view text, std::vector<Span>& out) const {
  pcre2_match_data* md = t_scratch.Data(code_->code);
  pcre2_match_context* mctx = t_scratch.Context();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const size_t n = text.size();
  size_t pos = 0;
  while (pos <= n) {
    const int rc = pcre2_match(code_->code, subject, n, pos, PCRE2_NO_UTF_CHECK, md, mctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) return Status::Error("regex \"" + pattern_ + "\" failed while matching: " + ErrorText(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    out.push_back({b, e});
    if (e > b) {
      pos = e;
    } else {
      // Step over one whole character after an empty match.
      if (e >= n) break;
      pos = e + 1;
      while (pos < n && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
  return Status::Ok();
}

}  // namespace mamba2
