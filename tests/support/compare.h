// Comparison helpers for tests: relative L2 error, the one metric every parity test states.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

namespace mamba2::testing {

// ||a - b|| / ||b||  (b is the reference).
inline double RelL2(const float* a, const float* b, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}
inline double RelL2(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() != b.size() ? INFINITY : RelL2(a.data(), b.data(), a.size());
}

}  // namespace mamba2::testing
