// Overlap tests of Mat views. The CUDA kernels read inputs of other rows than they write, so the
// backend copies an input aside when an op's output may share elements with it. Host-only.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace mamba2::cuda {

// Whether two views may share an element: exact for views with the same ld and element type
// (column slices of one matrix, like z and xBC, do not overlap), by address range otherwise.
// Never a false "no".
inline bool MayOverlap(const Mat& a, const Mat& b) {
  if (a.rows <= 0 || b.rows <= 0 || a.cols <= 0 || b.cols <= 0) return false;
  const int64_t ea = int64_t(DTypeSize(a.dtype)), eb = int64_t(DTypeSize(b.dtype));
  const auto a0 = reinterpret_cast<uintptr_t>(a.data), b0 = reinterpret_cast<uintptr_t>(b.data);
  const uintptr_t a1 = a0 + uintptr_t(((a.rows - 1) * a.ld + a.cols) * ea);
  const uintptr_t b1 = b0 + uintptr_t(((b.rows - 1) * b.ld + b.cols) * eb);
  if (a1 <= b0 || b1 <= a0) return false;
  if (a.ld != b.ld || ea != eb) return true;
  const int64_t diff_bytes = int64_t(b0 - a0);  // wraps to the signed difference
  if (diff_bytes % ea != 0) return true;
  const int64_t diff = diff_bytes / ea, ld = a.ld;
  int64_t q = diff / ld, rem = diff - q * ld;  // b starts at row q, column rem of a's grid
  if (rem < 0) {
    rem += ld;
    --q;
  }
  if (rem + b.cols > ld) return true;  // b's rows wrap across a's rows
  return q < a.rows && q + b.rows > 0 && rem < a.cols;
}

inline bool SameView(const Mat& a, const Mat& b) { return a.data == b.data && a.ld == b.ld && a.dtype == b.dtype; }

}  // namespace mamba2::cuda
