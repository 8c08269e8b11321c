// out = x @ w^T for w [n, k] in f32, f16 or bf16. Decode (a few rows) is bound by reading w,
// so it gets a GEMV that streams each weight row once for all rows, in the stored dtype,
// widening to fp32 in registers. Prefill is compute-bound and goes to the library GEMM:
// fp32 sgemm (half-precision weights widened a panel at a time), or bf16 x bf16 -> fp32.
#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_dnnl.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"

namespace mamba2::cpu {
namespace {

// One step of the GEMV over elements [i, i + kGemvStep) of a weight row w and of the R x rows
// xs: acc[u][r] += x[r] . w over the step's u-th quarter (U = 4 partial sums per x row).
constexpr int kU = 4;
constexpr int64_t kGemvStep = int64_t(kU) * kLanes;

// Weight element types, read as fp32 vectors. kSplitX: Step reads x rows rearranged by SplitX.
template <typename Self, typename Elem>
struct WidenEachVector {
  using E = Elem;
  static constexpr bool kSplitX = false;
  template <int R>
  static void Step(const float* const* xs, const E* w, int64_t i, Vf (&acc)[kU][R]) {
    for (int u = 0; u < kU; ++u) {
      const Vf wv = Self::Load(w + i + u * kLanes);
      for (int r = 0; r < R; ++r) acc[u][r] = Fma(Load(xs[r] + i + u * kLanes), wv, acc[u][r]);
    }
  }
};
struct F32W : WidenEachVector<F32W, float> {
  static Vf Load(const E* p) { return cpu::Load(p); }
  static Vf LoadN(const E* p, int n) { return cpu::LoadN(p, n); }
};
struct F16W : WidenEachVector<F16W, uint16_t> {
  static Vf Load(const E* p) { return LoadF16(p); }
  static Vf LoadN(const E* p, int n) { return LoadNF16(p, n); }
};
// bf16 widened on 32-bit lanes: 2 kLanes weights loaded as kLanes lanes give the even elements
// by a shift and the odd ones by a mask (LoadBf16EvenOdd), against x rearranged to match (per
// block of 2 kLanes: its even, then its odd elements). Three instructions per 32 weights where a
// zero-extend and shift per 16 take four: the 2.7b bf16 decode ran 180-181 -> 167-173 ms/token on
// the AMX Xeon (AVX-512, 2 threads; 81-84% -> 88-91% of the read bandwidth), the GEMV being partly
// bound by each core's instructions per byte.
struct Bf16W {
  using E = uint16_t;
  static constexpr bool kSplitX = true;
  static constexpr int64_t kBlock = 2 * kLanes;
  static_assert(kGemvStep == 2 * kBlock);
  static Vf Load(const E* p) { return LoadBf16(p); }
  static Vf LoadN(const E* p, int n) { return LoadNBf16(p, n); }
  template <int R>
  static void Step(const float* const* xs, const E* w, int64_t i, Vf (&acc)[kU][R]) {
    for (int b = 0; b < 2; ++b) {
      Vf even, odd;
      LoadBf16EvenOdd(w + i + b * kBlock, even, odd);
      for (int r = 0; r < R; ++r) {
        const float* x = xs[r] + i + b * kBlock;
        acc[2 * b][r] = Fma(cpu::Load(x), even, acc[2 * b][r]);
        acc[2 * b + 1][r] = Fma(cpu::Load(x + kLanes), odd, acc[2 * b + 1][r]);
      }
    }
  }
  // x[0, k) rearranged for Step over the whole steps of k (the tail is read from x itself).
  static void SplitX(const float* x, int64_t k, float* xs) {
    const int64_t whole = k / kGemvStep * kGemvStep;
    for (int64_t b = 0; b < whole; b += kBlock)
      for (int64_t e = 0; e < kLanes; ++e) {
        xs[b + e] = x[b + 2 * e];
        xs[b + kLanes + e] = x[b + 2 * e + 1];
      }
  }
};

// out[r][j] = x[r] . w[j] for the R (<= 4) rows of a group and one weight row j. Each x row
// keeps kU = 4 partial sums whatever R is, and the sums are combined in one fixed order, so a
// row's result does not depend on how many other rows share the step: a batched decode step
// gives every sequence the bits it would get alone. xs: the x rows as W::Step reads them; xr:
// as they are (for the tail).
// kPrefetch: each step also prefetches the weight bytes kPrefetchAheadBytes further on (see
// PrefetchAhead in simd.h).

template <typename W, int R, bool kPrefetch>
inline void GemvGroup(const float* const* xs, const float* const* xr, const typename W::E* wr, int64_t k, int64_t j,
                      bool accumulate, float* const* outr) {
  constexpr int64_t kStepBytes = kGemvStep * int64_t(sizeof(typename W::E));
  Vf acc[kU][R];
  for (int u = 0; u < kU; ++u)
    for (int r = 0; r < R; ++r) acc[u][r] = Zero();
  int64_t i = 0;
  for (; i + kGemvStep <= k; i += kGemvStep) {
    if constexpr (kPrefetch) PrefetchLinesL2(reinterpret_cast<const char*>(wr + i) + kPrefetchAheadBytes, kStepBytes);
    W::template Step<R>(xs, wr, i, acc);
  }
  for (; i + kLanes <= k; i += kLanes) {
    const Vf wv = W::Load(wr + i);
    for (int r = 0; r < R; ++r) acc[0][r] = Fma(Load(xr[r] + i), wv, acc[0][r]);
  }
  if (i < k) {
    const int t = int(k - i);
    const Vf wv = W::LoadN(wr + i, t);
    for (int r = 0; r < R; ++r) acc[0][r] = Fma(LoadN(xr[r] + i, t), wv, acc[0][r]);
  }
  for (int r = 0; r < R; ++r) {
    const float v = ReduceAdd((acc[0][r] + acc[1][r]) + (acc[2][r] + acc[3][r]));
    outr[r][j] = accumulate ? outr[r][j] + v : v;
  }
}

// Rows [0, rows) for weight rows [n0, n1), one weight row after another: the weights are read
// as a single sequential stream, which the hardware prefetchers follow at full memory bandwidth
// (interleaving several rows measured ~25% slower on the Zen 4, and slower on the Xeon too).
// Groups of rows after the first read the weight row again from L1.
template <typename W, bool kPrefetch>
void GemvRows(const float* const* xs, const float* const* xr, int rows, const typename W::E* w, int64_t k, int64_t n0,
              int64_t n1, bool accumulate, float* const* outr) {
  for (int64_t j = n0; j < n1; ++j) {
    const typename W::E* wr = w + j * k;
    int r = 0;
    for (; r + 4 <= rows; r += 4) GemvGroup<W, 4, kPrefetch>(xs + r, xr + r, wr, k, j, accumulate, outr + r);
    switch (rows - r) {
      case 1: GemvGroup<W, 1, kPrefetch>(xs + r, xr + r, wr, k, j, accumulate, outr + r); break;
      case 2: GemvGroup<W, 2, kPrefetch>(xs + r, xr + r, wr, k, j, accumulate, outr + r); break;
      case 3: GemvGroup<W, 3, kPrefetch>(xs + r, xr + r, wr, k, j, accumulate, outr + r); break;
      default: break;
    }
  }
}

template <typename W>
void GemvW(ThreadPool& pool, const float* const* xr, int rows, const typename W::E* w, int64_t n, int64_t k,
           bool accumulate, float* const* outr) {
  CHECK_MSG(rows >= 1 && rows <= kGemvMaxRows, "Gemv: rows must be 1..kGemvMaxRows");
  const float* xs[kGemvMaxRows];
  if constexpr (W::kSplitX) {
    thread_local std::vector<float> split;  // [rows, k]
    if (int64_t(split.size()) < rows * k) split.resize(size_t(rows * k));
    for (int r = 0; r < rows; ++r) {
      xs[r] = split.data() + r * k;
      W::SplitX(xr[r], k, split.data() + r * k);
    }
  } else {
    std::copy(xr, xr + rows, xs);
  }
  // About eight pieces per thread, claimed as the threads get free: with a fixed half each,
  // one thread idled at the end of every matmul while the other finished (13% of decode).
  // Pieces of >= 32 weight rows keep per-piece overhead small against streaming 32*k elements.
  const int64_t grain = std::max<int64_t>(32, n / (8 * int64_t(pool.n_threads())));
  const bool prefetch = PrefetchAhead();
  pool.ParallelForDynamic(n, grain, [&](int64_t n0, int64_t n1) {
    if (prefetch)
      GemvRows<W, true>(xs, xr, rows, w, k, n0, n1, accumulate, outr);
    else
      GemvRows<W, false>(xs, xr, rows, w, k, n0, n1, accumulate, outr);
  });
}

void Gemv(ThreadPool& pool, Mat x, const TensorView& w, Mat out, bool accumulate) {
  const int64_t n = w.shape[0], k = w.shape[1];
  const float* xr[kGemvMaxRows];
  float* outr[kGemvMaxRows];
  for (int64_t r = 0; r < x.rows; ++r) {
    xr[r] = x.row(r);
    outr[r] = out.row(r);
  }
  const int rows = int(x.rows);
  switch (w.dtype) {
    case DType::F32: return GemvW<F32W>(pool, xr, rows, w.as<const float>(), n, k, accumulate, outr);
    case DType::BF16: return GemvW<Bf16W>(pool, xr, rows, w.as<const uint16_t>(), n, k, accumulate, outr);
    case DType::F16: return GemvW<F16W>(pool, xr, rows, w.as<const uint16_t>(), n, k, accumulate, outr);
    default: CHECK_MSG(false, std::string("cpu MatMul: weight dtype ") + DTypeName(w.dtype));
  }
}

// Splits out [rows, n] into one tile per thread and calls tile(r0, r1, c0, c1) for each.
// kColumnsFirst: columns are split first (each thread then reads only its slice of w); rows only when
// there are too few columns per thread for an efficient tile. kRowsFirst splits the rows first
// where each thread gets at least kMinRowsFirst of them, so that each tile writes whole rows of
// out (oneDNN's bf16 matmul ran ~1.6x slower per thread on a tile whose rows are strided:
// 2048x1676x768 into ld 3352, on a Xeon with AMX); w is then read by every thread (from cache).
enum class TileSplit { kColumnsFirst, kRowsFirst };
template <typename F>
void ForEachTile(ThreadPool& pool, int64_t rows, int64_t n, TileSplit split, F&& tile) {
  const int64_t threads = pool.n_threads();
  constexpr int64_t kMinCols = 128, kMinRows = 32, kMinRowsFirst = 256, kAlign = 16;
  int64_t col_pieces = std::max<int64_t>(1, std::min(threads, n / kMinCols));
  if (split == TileSplit::kRowsFirst && rows >= threads * kMinRowsFirst) col_pieces = 1;
  const int64_t row_pieces = std::max<int64_t>(1, std::min(threads / col_pieces, (rows + kMinRows - 1) / kMinRows));
  const int64_t col_blocks = (n + kAlign - 1) / kAlign;
  pool.ParallelFor(col_pieces * row_pieces, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ci = t % col_pieces, ri = t / col_pieces;
      const int64_t c0 = std::min(n, col_blocks * ci / col_pieces * kAlign);
      const int64_t c1 = std::min(n, col_blocks * (ci + 1) / col_pieces * kAlign);
      const int64_t r0 = rows * ri / row_pieces, r1 = rows * (ri + 1) / row_pieces;
      if (c1 > c0 && r1 > r0) tile(r0, r1, c0, c1);
    }
  });
}

// Widens weight rows [j0, j0 + count) to fp32.
void WidenRows(const TensorView& w, int64_t j0, int64_t count, float* dst) {
  const int64_t k = w.shape[1], n = count * k;
  const uint16_t* src = w.as<const uint16_t>() + j0 * k;
  int64_t i = 0;
  if (w.dtype == DType::BF16) {
    for (; i + kLanes <= n; i += kLanes) Store(dst + i, LoadBf16(src + i));
    if (i < n) StoreN(dst + i, LoadNBf16(src + i, int(n - i)), int(n - i));
  } else {
    for (; i + kLanes <= n; i += kLanes) Store(dst + i, LoadF16(src + i));
    if (i < n) StoreN(dst + i, LoadNF16(src + i, int(n - i)), int(n - i));
  }
}

// fp32 GEMM. f16/bf16 weights are widened panel by panel into a per-thread buffer: O(n k) work
// against the GEMM's O(rows n k), and no fp32 copy of the model is ever held.
void GemmF32(ThreadPool& pool, Mat x, const TensorView& w, Mat out, bool accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  const int64_t n = w.shape[0], k = w.shape[1];
  if (w.dtype == DType::F32) {
    const float* wf = w.as<const float>();
    ForEachTile(pool, x.rows, n, TileSplit::kColumnsFirst, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
      SgemmTile(x.row(r0), x.ld, wf + c0 * k, k, beta, out.row(r0) + c0, out.ld, r1 - r0, c1 - c0);
    });
    return;
  }
  CHECK_MSG(w.dtype == DType::BF16 || w.dtype == DType::F16,
            std::string("cpu MatMul: weight dtype ") + DTypeName(w.dtype));
  constexpr int64_t kPanel = 256;  // weight rows widened at a time (k = 768: 768 KB)
  ForEachTile(pool, x.rows, n, TileSplit::kColumnsFirst, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    thread_local std::vector<float> panel;
    if (int64_t(panel.size()) < kPanel * k) panel.resize(size_t(kPanel * k));
    for (int64_t j0 = c0; j0 < c1; j0 += kPanel) {
      const int64_t cols = std::min(kPanel, c1 - j0);
      WidenRows(w, j0, cols, panel.data());
      SgemmTile(x.row(r0), x.ld, panel.data(), k, beta, out.row(r0) + j0, out.ld, r1 - r0, cols);
    }
  });
}

// bf16 GEMM: x rounded to bf16 once (shared by every tile), fp32 accumulation and output.
// Where oneDNN has no bf16 matmul for this CPU, the rounded x is widened back to fp32 and goes
// through the fp32 GEMM with the bf16 weights widened: products of bf16 values are exact in fp32,
// so the result is the same bf16 product with fp32 sums (no faster than fp32 mode, but the same mode).
void GemmBf16(ThreadPool& pool, Mat x, const TensorView& w, Mat out, bool accumulate,
              std::vector<uint16_t>& xb_scratch) {
  CHECK_MSG(w.dtype == DType::BF16, "cpu bf16 MatMul: weight not prepared as bf16");
  const int64_t k = w.shape[1];
  const bool native = HaveBf16Gemm();
  // [rows, k] bf16, then (no native bf16 GEMM) the same values widened to fp32: 2 halves each
  const int64_t scratch_halves = (native ? 1 : 3) * x.rows * k;
  if (int64_t(xb_scratch.size()) < scratch_halves) xb_scratch.resize(size_t(scratch_halves));
  uint16_t* xb = xb_scratch.data();
  float* xr = reinterpret_cast<float*>(xb + x.rows * k);  // used only where !native
  pool.ParallelFor(
      x.rows,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          uint16_t* dst = xb + r * k;
          RoundToBf16(x.row(r), k, dst);
          if (!native)
            for (int64_t i = 0; i < k; ++i) xr[r * k + i] = BF16ToF32(dst[i]);
        }
      },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(1, k)));
  if (!native) {
    GemmF32(pool, Mat{xr, x.rows, k, k}, w, out, accumulate);
    return;
  }
  GemmBf16Rounded(pool, xb, x.rows, w, out, accumulate);
}

}  // namespace

void GemmBf16Rounded(ThreadPool& pool, const uint16_t* xb, int64_t rows, const TensorView& w, Mat out,
                     bool accumulate) {
  CHECK_MSG(w.dtype == DType::BF16 && HaveBf16Gemm(), "GemmBf16Rounded: bf16 weights and oneDNN's bf16 matmul");
  const int64_t n = w.shape[0], k = w.shape[1];
  CHECK(out.rows == rows && out.cols == n);
  const uint16_t* wb = w.as<const uint16_t>();
  ForEachTile(pool, rows, n, TileSplit::kRowsFirst, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    Bf16GemmTile(xb + r0 * k, wb + c0 * k, k, accumulate, out.row(r0) + c0, out.ld, r1 - r0, c1 - c0);
  });
}

void MatMul(ThreadPool& pool, Mat x, const TensorView& w, Mat out, bool accumulate, bool bf16_gemm,
            std::vector<uint16_t>& xb_scratch) {
  CHECK(w.shape.ndim == 2);
  const int64_t n = w.shape[0], k = w.shape[1];
  CHECK(x.cols == k && out.cols == n && out.rows == x.rows);
  if (x.rows == 0 || n == 0) return;
  if (x.rows <= kGemvMaxRows)
    Gemv(pool, x, w, out, accumulate);
  else if (bf16_gemm)
    GemmBf16(pool, x, w, out, accumulate, xb_scratch);
  else
    GemmF32(pool, x, w, out, accumulate);
}

}  // namespace mamba2::cpu
