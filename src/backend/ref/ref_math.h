// Scalar definitions shared by the reference backend and by the tests that check optimised ops:
// one place that says what softplus, SiLU, dt and RMSNorm mean.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "backend/backend.h"

namespace mamba2::ref {

inline double Silu(double v) { return v / (1.0 + std::exp(-v)); }

// torch / mamba_ssm: linear above 20.
inline double Softplus(double v) { return v > 20.0 ? v : std::log1p(std::exp(v)); }

// dt for head hh at input row: softplus(raw + bias) clamped to [dt_min, dt_max].
inline double Dt(const ScanInputs& in, int64_t row, int64_t hh) {
  double dt = Softplus(double(in.dt.row(row)[hh]) + double(in.dt_bias.as<float>()[hh]));
  if (dt < in.dt_min) dt = in.dt_min;
  if (dt > in.dt_max) dt = in.dt_max;
  return dt;
}

// out = x * rsqrt(mean(x^2) + eps) * w, accumulated in double.
inline void RmsNormRow(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss = 0.0;
  for (int64_t j = 0; j < n; ++j) ss += double(x[j]) * double(x[j]);
  const double inv = 1.0 / std::sqrt(ss / double(n) + double(eps));
  for (int64_t j = 0; j < n; ++j) out[j] = float(double(x[j]) * inv * double(w[j]));
}

}  // namespace mamba2::ref
