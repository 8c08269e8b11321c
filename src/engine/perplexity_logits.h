// The --save-logits file of `mamba2 perplexity` and the --kl-base comparison against one.
//
// File format (all little-endian), version 1:
//   offset  size  field
//        0     8  magic "M2LOGPRB"
//        8     4  u32 version = 1
//       12     4  u32 dtype of the rows: 0 = float32, 1 = float16 (IEEE binary16)
//       16     8  u64 n_rows: scored positions, in the protocol's canonical order
//       24     8  u64 vocab_rows: values per row (the model's padded vocabulary)
//       32     8  f64 sum_nll: sum over rows of -log p(target), accumulated in double
//       40     8  u64 context_hash: FNV-1a 64 of every window's fed tokens and scored count
//       48    16  zero
//       64   4*n  i32 targets[n_rows]: the token each row scores
//   then zero padding up to a multiple of 64 bytes (rows_offset), then
//   n_rows rows of vocab_rows log-probabilities (log-softmax over all vocab_rows logits,
//   float32 or float16; float16 clamps below at -65504).
// The writer fills rows in any order (pwrite) into PATH.tmp and renames it on Finish, so a
// failed run never leaves a partial PATH.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace mamba2 {

enum class LogprobDType : uint32_t { kF32 = 0, kF16 = 1 };

struct LogprobHeader {
  LogprobDType dtype = LogprobDType::kF32;
  int64_t n_rows = 0;
  int64_t vocab_rows = 0;
  double sum_nll = 0.0;
  uint64_t context_hash = 0;
};

inline constexpr size_t kLogprobHeaderBytes = 64;
// Byte offset of row 0 for n_rows targets.
size_t LogprobRowsOffset(int64_t n_rows);

// Destroyed without a successful Finish, it removes PATH.tmp and leaves PATH as it was.
class LogprobWriter {
 public:
  static Result<std::unique_ptr<LogprobWriter>> Create(const std::string& path, LogprobDType dtype,
                                                       int64_t vocab_rows, std::span<const int32_t> targets,
                                                       uint64_t context_hash);
  // Writes one row of vocab_rows log-probabilities. Thread-safe for distinct rows.
  Status WriteRow(int64_t row, const float* logprobs) const;
  // Stores sum_nll in the header, closes and renames PATH.tmp to PATH.
  Status Finish(double sum_nll);

 private:
  LogprobWriter() = default;
  std::optional<AtomicFile> file_;  // PATH.tmp until Finish
  LogprobHeader header_;
  size_t rows_offset_ = 0;
};

class LogprobFile {
 public:
  // Checks magic, version, dtype and that the size matches the header exactly.
  static Result<LogprobFile> Open(const std::string& path);

  const LogprobHeader& header() const { return header_; }
  int32_t target(int64_t row) const;
  // Row `row` widened to float32 into out[vocab_rows].
  void ReadRow(int64_t row, float* out) const;
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  LogprobHeader header_;
  size_t rows_offset_ = 0;
};

// FNV-1a 64, continued from `h` (start with kFnvOffset).
inline constexpr uint64_t kFnvOffset = 1469598103934665603ull;
uint64_t Fnv1a(uint64_t h, const void* data, size_t bytes);

// One row of the --kl-base comparison.
struct KlRow {
  double kl = 0.0;     // KL(base || current) = sum_v p_base(v) * (log p_base(v) - log p_cur(v))
  bool same_top1 = false;
};
// base, current: log-probabilities over n values.
KlRow CompareLogprobRows(const float* base, const float* current, int64_t n);

struct KlSummary {
  int64_t n_rows = 0;
  double mean_kl = 0.0, median_kl = 0.0, p99_kl = 0.0, max_kl = 0.0;
  double top1_agreement = 0.0;  // fraction of rows whose argmax agrees
  double base_ppl = 0.0, current_ppl = 0.0;  // exp(sum_nll / n_rows) of each run
};
// kl: one value per row (reordered in place); same_top1: count of agreeing rows.
KlSummary SummarizeKl(std::vector<double>& kl, int64_t same_top1, double base_sum_nll, double current_sum_nll);

}  // namespace mamba2
