// The two RMSNorms of the model (spec 2.1 and 2.2.8), parallel over rows.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"

namespace mamba2::cpu {
namespace {

// Rows per piece so that a piece has at least ~16K elements of work.
int64_t RowsPerPiece(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, cols)); }

float SumSquares(const float* x, int64_t n) { return Dot(x, x, n); }

// out[j] = x[j] * scale * w[j]
void ScaleByWeight(const float* x, float scale, const float* w, int64_t n, float* out) {
  const Vf s = Set1(scale);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) Store(out + j, Load(x + j) * s * Load(w + j));
  if (j < n) {
    const int t = int(n - j);
    StoreN(out + j, LoadN(x + j, t) * s * LoadN(w + j, t), t);
  }
}

float InvRms(float sum_sq, int64_t n, float eps) {
  return float(1.0 / std::sqrt(double(sum_sq) / double(n) + double(eps)));
}

}  // namespace

// With `rounded` (ld = cols), each normed row is rounded to bf16 there while it is in L1, in place
// of being written to out: the bf16 GEMM that reads it then skips a pass over fp32 rows.
void RmsNorm(ThreadPool& pool, Mat x, const float* w, float eps, Mat out, uint16_t* rounded) {
  const int64_t n = x.cols;
  CHECK(out.cols == n && out.rows == x.rows);
  pool.ParallelFor(
      x.rows,
      [&](int64_t r0, int64_t r1) {
        thread_local std::vector<float> row;
        if (rounded && int64_t(row.size()) < n) row.resize(size_t(n));
        for (int64_t r = r0; r < r1; ++r) {
          float* o = rounded ? row.data() : out.row(r);
          ScaleByWeight(x.row(r), InvRms(SumSquares(x.row(r), n), n, eps), w, n, o);
          if (rounded) RoundToBf16(o, n, rounded + r * n);
        }
      },
      RowsPerPiece(n));
}

void GatedRmsNorm(ThreadPool& pool, Mat y, Mat z, const float* w, int64_t group_size, float eps, Mat out,
                  uint16_t* rounded) {
  const int64_t n = y.cols;
  CHECK(group_size > 0 && n % group_size == 0);
  CHECK(z.cols == n && out.cols == n && z.rows == y.rows && out.rows == y.rows);
  pool.ParallelFor(
      y.rows,
      [&](int64_t r0, int64_t r1) {
        thread_local std::vector<float> row;
        if (rounded && int64_t(row.size()) < n) row.resize(size_t(n));
        for (int64_t r = r0; r < r1; ++r) {
          const float* yr = y.row(r);
          const float* zr = z.row(r);
          float* o = rounded ? row.data() : out.row(r);
          // Gate into out first (element-wise, so out may alias y or z), then normalise in place.
          int64_t j = 0;
          for (; j + kLanes <= n; j += kLanes) Store(o + j, Load(yr + j) * Silu(Load(zr + j)));
          if (j < n) {
            const int t = int(n - j);
            StoreN(o + j, LoadN(yr + j, t) * Silu(LoadN(zr + j, t)), t);
          }
          for (int64_t g0 = 0; g0 < n; g0 += group_size)
            ScaleByWeight(o + g0, InvRms(SumSquares(o + g0, group_size), group_size, eps), w + g0, group_size,
                          o + g0);
          if (rounded) RoundToBf16(o, n, rounded + r * n);
        }
      },
      RowsPerPiece(n));
}

}  // namespace mamba2::cpu
