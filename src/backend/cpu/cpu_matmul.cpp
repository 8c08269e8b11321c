// out = x @ w^T for fp32 w [n, k]. Decode (a few rows) is bound by reading w, so it gets a GEMV
// that streams each weight row once for all rows; prefill is compute-bound and goes to sgemm.
#include <algorithm>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"

#if defined(MAMBA2_HAVE_DNNL)
#include <omp.h>

#include "oneapi/dnnl/dnnl.h"
#endif

namespace mamba2::cpu {
namespace {

// How far ahead (in floats) of the current position each weight row is prefetched: decode is
// bound by streaming w from DRAM, and a few explicit prefetches per row keep enough lines in flight.
constexpr int64_t kPrefetchAhead = 512;

// out[r][j] = x[r] . w[j] for j in [n0, n1): R rows of x against NW weight rows at a time, so
// each x vector loaded feeds NW FMAs and NW weight streams are in flight together.
template <int R, int NW>
void GemvTile(const float* const* xr, const float* w, int64_t k, int64_t n0, int64_t n1, float* const* outr) {
  int64_t j = n0;
  for (; j + NW <= n1; j += NW) {
    const float* wr[NW];
    for (int q = 0; q < NW; ++q) wr[q] = w + (j + q) * k;
    Vf acc[NW][R];
    for (int q = 0; q < NW; ++q)
      for (int r = 0; r < R; ++r) acc[q][r] = Zero();
    int64_t i = 0;
    for (; i + kLanes <= k; i += kLanes) {
      Vf wv[NW];
      for (int q = 0; q < NW; ++q) {
        Prefetch(wr[q] + i + kPrefetchAhead);
        wv[q] = Load(wr[q] + i);
      }
      for (int r = 0; r < R; ++r) {
        const Vf xv = Load(xr[r] + i);
        for (int q = 0; q < NW; ++q) acc[q][r] = Fma(xv, wv[q], acc[q][r]);
      }
    }
    if (i < k) {
      const int t = int(k - i);
      Vf wv[NW];
      for (int q = 0; q < NW; ++q) wv[q] = LoadN(wr[q] + i, t);
      for (int r = 0; r < R; ++r) {
        const Vf xv = LoadN(xr[r] + i, t);
        for (int q = 0; q < NW; ++q) acc[q][r] = Fma(xv, wv[q], acc[q][r]);
      }
    }
    for (int q = 0; q < NW; ++q)
      for (int r = 0; r < R; ++r) outr[r][j + q] = ReduceAdd(acc[q][r]);
  }
  for (; j < n1; ++j)
    for (int r = 0; r < R; ++r) outr[r][j] = Dot(xr[r], w + j * k, k);
}

// Weight rows per step for R rows of x: R * NW accumulators, half the vector register file.
constexpr int WeightRows(int r) {
  const int regs = kLanes >= 16 ? 16 : 8;
  return std::max(1, std::min(4, regs / r));
}

void GemvRange(const float* const* xr, int rows, const float* w, int64_t k, int64_t n0, int64_t n1,
               float* const* outr) {
  switch (rows) {
    case 1: return GemvTile<1, WeightRows(1)>(xr, w, k, n0, n1, outr);
    case 2: return GemvTile<2, WeightRows(2)>(xr, w, k, n0, n1, outr);
    case 3: return GemvTile<3, WeightRows(3)>(xr, w, k, n0, n1, outr);
    case 4: return GemvTile<4, WeightRows(4)>(xr, w, k, n0, n1, outr);
    case 5: return GemvTile<5, WeightRows(5)>(xr, w, k, n0, n1, outr);
    case 6: return GemvTile<6, WeightRows(6)>(xr, w, k, n0, n1, outr);
    case 7: return GemvTile<7, WeightRows(7)>(xr, w, k, n0, n1, outr);
    case 8: return GemvTile<8, WeightRows(8)>(xr, w, k, n0, n1, outr);
    default: CHECK_MSG(false, "GemvRange: rows must be 1..8");
  }
}

void Gemv(ThreadPool& pool, Mat x, const float* w, int64_t n, int64_t k, Mat out) {
  const float* xr[kGemvMaxRows];
  float* outr[kGemvMaxRows];
  for (int64_t r = 0; r < x.rows; ++r) {
    xr[r] = x.row(r);
    outr[r] = out.row(r);
  }
  // Pieces of >= 32 weight rows keep per-piece overhead small against streaming 32*k floats.
  pool.ParallelFor(
      n, [&](int64_t n0, int64_t n1) { GemvRange(xr, int(x.rows), w, k, n0, n1, outr); }, 32);
}

#if defined(MAMBA2_HAVE_DNNL)
void SgemmTile(const float* x, int64_t ldx, const float* w, int64_t k, float* out, int64_t ldo, int64_t rows,
               int64_t cols) {
  // Our pool supplies the parallelism; oneDNN's OpenMP team would oversubscribe the cores.
  // The OpenMP thread count is per calling thread, so set it once on each thread that gets here.
  thread_local bool omp_single = false;
  if (!omp_single) {
    omp_set_num_threads(1);
    omp_single = true;
  }
  const dnnl_status_t st = dnnl_sgemm('N', 'T', rows, cols, k, 1.0f, x, ldx, w, k, 0.0f, out, ldo);
  CHECK_MSG(st == dnnl_success, "dnnl_sgemm failed");
}
#else
// Portable fallback: blocks of weight rows small enough to stay in L2 while all x rows pass.
void SgemmTile(const float* x, int64_t ldx, const float* w, int64_t k, float* out, int64_t ldo, int64_t rows,
               int64_t cols) {
  constexpr int64_t kBlockN = 64;
  for (int64_t j0 = 0; j0 < cols; j0 += kBlockN) {
    const int64_t j1 = std::min(cols, j0 + kBlockN);
    for (int64_t r0 = 0; r0 < rows; r0 += kGemvMaxRows) {
      const int r_count = int(std::min<int64_t>(kGemvMaxRows, rows - r0));
      const float* xr[kGemvMaxRows];
      float* outr[kGemvMaxRows];
      for (int r = 0; r < r_count; ++r) {
        xr[r] = x + (r0 + r) * ldx;
        outr[r] = out + (r0 + r) * ldo;
      }
      GemvRange(xr, r_count, w, k, j0, j1, outr);
    }
  }
}
#endif

void Gemm(ThreadPool& pool, Mat x, const float* w, int64_t n, int64_t k, Mat out) {
  // Split the output columns first (each thread then reads only its slice of w), and the rows
  // only when there are too few columns per thread for an efficient tile.
  const int64_t threads = pool.n_threads();
  constexpr int64_t kMinCols = 128, kMinRows = 32, kAlign = 16;
  const int64_t col_pieces = std::max<int64_t>(1, std::min(threads, n / kMinCols));
  const int64_t row_pieces =
      std::max<int64_t>(1, std::min(threads / col_pieces, (x.rows + kMinRows - 1) / kMinRows));
  const int64_t col_blocks = (n + kAlign - 1) / kAlign;
  pool.ParallelFor(col_pieces * row_pieces, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ci = t % col_pieces, ri = t / col_pieces;
      const int64_t c0 = std::min(n, col_blocks * ci / col_pieces * kAlign);
      const int64_t c1 = std::min(n, col_blocks * (ci + 1) / col_pieces * kAlign);
      const int64_t r0 = x.rows * ri / row_pieces, r1 = x.rows * (ri + 1) / row_pieces;
      if (c1 > c0 && r1 > r0)
        SgemmTile(x.row(r0), x.ld, w + c0 * k, k, out.row(r0) + c0, out.ld, r1 - r0, c1 - c0);
    }
  });
}

}  // namespace

void MatMul(ThreadPool& pool, Mat x, const float* w, int64_t n, int64_t k, Mat out) {
  CHECK(x.cols == k && out.cols == n && out.rows == x.rows);
  if (x.rows == 0 || n == 0) return;
  if (x.rows <= kGemvMaxRows)
    Gemv(pool, x, w, n, k, out);
  else
    Gemm(pool, x, w, n, k, out);
}

}  // namespace mamba2::cpu
