// Overflow-checked size arithmetic for values read from untrusted files.
#pragma once

#include <cstdint>

namespace mamba2::io_detail {

// Each returns false (and leaves *out unspecified) when the exact result does not fit.
inline bool MulU64(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
inline bool AddU64(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }

// Product of dims, each >= 0, as a count that also fits int64 (TensorView uses int64 numel).
inline bool CheckedNumel(const int64_t* dims, int ndim, uint64_t* out) {
  uint64_t n = 1;
  for (int i = 0; i < ndim; ++i) {
    if (dims[i] < 0) return false;
    if (!MulU64(n, uint64_t(dims[i]), &n)) return false;
  }
  if (n > uint64_t(INT64_MAX)) return false;
  *out = n;
  return true;
}

}  // namespace mamba2::io_detail
