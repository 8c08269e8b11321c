// Summary statistics of repeated timings.
#pragma once

#include <algorithm>
#include <vector>

namespace mamba2::bench {

// Median (mean of the middle two for an even count); 0 for none.
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

}  // namespace mamba2::bench
