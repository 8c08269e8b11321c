#include "engine/perplexity_logits.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "io/atomic_file.h"
#include "io/checked_math.h"

namespace mamba2 {
namespace {

constexpr char kMagic[8] = {'M', '2', 'L', 'O', 'G', 'P', 'R', 'B'};
constexpr uint32_t kVersion = 1;

size_t ValueBytes(LogprobDType t) { return t == LogprobDType::kF16 ? 2 : 4; }

void PutU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }  // little-endian hosts only
void PutU64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint32_t GetU32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t GetU64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

}  // namespace

size_t LogprobRowsOffset(int64_t n_rows) {
  const size_t end = kLogprobHeaderBytes + 4 * size_t(n_rows);
  return (end + 63) / 64 * 64;
}

uint64_t Fnv1a(uint64_t h, const void* data, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

Result<std::unique_ptr<LogprobWriter>> LogprobWriter::Create(const std::string& path, LogprobDType dtype,
                                                             int64_t vocab_rows, std::span<const int32_t> targets,
                                                             uint64_t context_hash) {
  std::unique_ptr<LogprobWriter> w(new LogprobWriter());
  Result<AtomicFile> file = AtomicFile::Create(path);
  if (!file.ok()) return file.status();
  w->file_.emplace(std::move(file).value());
  w->header_ = LogprobHeader{dtype, int64_t(targets.size()), vocab_rows, 0.0, context_hash};
  w->rows_offset_ = LogprobRowsOffset(int64_t(targets.size()));
  std::vector<uint8_t> head(w->rows_offset_, 0);
  std::memcpy(head.data(), kMagic, 8);
  PutU32(head.data() + 8, kVersion);
  PutU32(head.data() + 12, uint32_t(dtype));
  PutU64(head.data() + 16, uint64_t(targets.size()));
  PutU64(head.data() + 24, uint64_t(vocab_rows));
  PutU64(head.data() + 40, context_hash);
  if (!targets.empty()) std::memcpy(head.data() + kLogprobHeaderBytes, targets.data(), targets.size() * 4);
  RETURN_IF_ERROR(w->file_->WriteAt(0, head.data(), head.size()));
  // Size the file now so rows can land in any order (and a full disk shows up early).
  const uint64_t total = uint64_t(w->rows_offset_) +
                         uint64_t(targets.size()) * uint64_t(vocab_rows) * ValueBytes(dtype);
  RETURN_IF_ERROR(w->file_->Resize(total));
  return w;
}

Status LogprobWriter::WriteRow(int64_t row, const float* logprobs) const {
  CHECK(row >= 0 && row < header_.n_rows);
  const size_t n = size_t(header_.vocab_rows);
  const uint64_t offset = uint64_t(rows_offset_) + uint64_t(row) * n * ValueBytes(header_.dtype);
  if (header_.dtype == LogprobDType::kF32) return file_->WriteAt(offset, logprobs, n * 4);
  std::vector<uint16_t> half(n);
  for (size_t i = 0; i < n; ++i) half[i] = F32ToF16(std::max(logprobs[i], -65504.0f));
  return file_->WriteAt(offset, half.data(), n * 2);
}

Status LogprobWriter::Finish(double sum_nll) {
  // A second Finish fails AtomicFile's own check (written after Commit).
  RETURN_IF_ERROR(file_->WriteAt(32, &sum_nll, 8));
  return file_->Commit();
}

Result<LogprobFile> LogprobFile::Open(const std::string& path) {
  LogprobFile f;
  ASSIGN_OR_RETURN(f.file_, MappedFile::Open(path));
  const uint8_t* p = f.file_.data();
  const size_t size = f.file_.size();
  if (size < kLogprobHeaderBytes || std::memcmp(p, kMagic, 8) != 0)
    return Status::Error(path + ": not a mamba2 --save-logits file (magic \"M2LOGPRB\" missing)");
  if (GetU32(p + 8) != kVersion)
    return Status::Error(path + ": --save-logits format version " + std::to_string(GetU32(p + 8)) +
                         ", expected " + std::to_string(kVersion));
  const uint32_t dtype = GetU32(p + 12);
  if (dtype > 1) return Status::Error(path + ": row dtype code " + std::to_string(dtype) + ", expected 0 (f32) or 1 (f16)");
  f.header_.dtype = LogprobDType(dtype);
  const uint64_t n_rows = GetU64(p + 16), vocab_rows = GetU64(p + 24);
  std::memcpy(&f.header_.sum_nll, p + 32, 8);
  f.header_.context_hash = GetU64(p + 40);
  uint64_t values = 0, bytes = 0, total = 0;
  if (n_rows > (uint64_t(1) << 40) || vocab_rows == 0 || vocab_rows > (uint64_t(1) << 31) ||
      !io_detail::MulU64(n_rows, vocab_rows, &values) || !io_detail::MulU64(values, ValueBytes(f.header_.dtype), &bytes) ||
      !io_detail::AddU64(bytes, LogprobRowsOffset(int64_t(n_rows)), &total) || total != size)
    return Status::Error(path + ": header says " + std::to_string(n_rows) + " rows of " + std::to_string(vocab_rows) +
                         " values but the file has " + std::to_string(size) + " bytes (truncated or not this format)");
  f.header_.n_rows = int64_t(n_rows);
  f.header_.vocab_rows = int64_t(vocab_rows);
  f.rows_offset_ = LogprobRowsOffset(int64_t(n_rows));
  return f;
}

int32_t LogprobFile::target(int64_t row) const {
  CHECK(row >= 0 && row < header_.n_rows);
  int32_t t;
  std::memcpy(&t, file_.data() + kLogprobHeaderBytes + 4 * size_t(row), 4);
  return t;
}

void LogprobFile::ReadRow(int64_t row, float* out) const {
  CHECK(row >= 0 && row < header_.n_rows);
  const size_t n = size_t(header_.vocab_rows);
  const uint8_t* src = file_.data() + rows_offset_ + size_t(row) * n * ValueBytes(header_.dtype);
  if (header_.dtype == LogprobDType::kF32) {
    std::memcpy(out, src, n * 4);
  } else {
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      out[i] = F16ToF32(h);
    }
  }
}

KlRow CompareLogprobRows(const float* base, const float* current, int64_t n) {
  KlRow r;
  double kl = 0.0;
  int64_t arg_b = 0, arg_c = 0;
  for (int64_t v = 0; v < n; ++v) {
    const double lb = base[v];
    if (lb > -1e30) kl += std::exp(lb) * (lb - double(current[v]));  // p log p -> 0 as p -> 0
    if (base[v] > base[arg_b]) arg_b = v;
    if (current[v] > current[arg_c]) arg_c = v;
  }
  r.kl = std::max(kl, 0.0);  // rounding can leave a tiny negative for identical rows
  r.same_top1 = arg_b == arg_c;
  return r;
}

KlSummary SummarizeKl(std::vector<double>& kl, int64_t same_top1, double base_sum_nll, double current_sum_nll) {
  KlSummary s;
  s.n_rows = int64_t(kl.size());
  if (kl.empty()) return s;
  double sum = 0.0;
  for (double v : kl) sum += v;
  s.mean_kl = sum / double(kl.size());
  auto quantile = [&](double q) {
    const size_t k = std::min(kl.size() - 1, size_t(q * double(kl.size() - 1) + 0.5));
    std::nth_element(kl.begin(), kl.begin() + ptrdiff_t(k), kl.end());
    return kl[k];
  };
  s.median_kl = quantile(0.5);
  s.p99_kl = quantile(0.99);
  s.max_kl = *std::max_element(kl.begin(), kl.end());
  s.top1_agreement = double(same_top1) / double(kl.size());
  s.base_ppl = std::exp(base_sum_nll / double(kl.size()));
  s.current_ppl = std::exp(current_sum_nll / double(kl.size()));
  return s;
}

}  // namespace mamba2
