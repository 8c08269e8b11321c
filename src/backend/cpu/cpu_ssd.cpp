// The selective scan on the cpu: the chunked SSD algorithm for prefill (spec 2.3), whose
// per-chunk products go to BLAS sgemm (or, in bf16 mode, to oneDNN's bf16 matmul with fp32
// accumulation), and the one-token recurrence for decode (spec 3).
#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_dnnl.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/denormals.h"
#include "backend/cpu/simd.h"

namespace mamba2::cpu {
namespace {

// Larger chunk hints are capped: the intra-chunk work grows with Q^2 and gains nothing.
constexpr int64_t kMaxChunk = 512;

// Rows per block of the block-triangular products (C.B^T and the intra-chunk term): a block
// of rows multiplies only the columns up to its last row's diagonal.
constexpr int64_t kTriBlock = 64;

// Chunk rows are padded with zero rows to a multiple of this, so that the products have a few
// shapes whatever the prompt length (oneDNN primitives are built and cached per shape).
constexpr int64_t kRowAlign = 16;

int64_t PadRows(int64_t q) { return (q + kRowAlign - 1) / kRowAlign * kRowAlign; }

// A head reads and writes its slice of each chunk row (p floats of a row d_inner or more wide):
// one row per page, where the hardware prefetchers do not follow, so every row was a cache miss
// waited for in turn. The loops over rows touch the row kAhead ahead.
constexpr int64_t kAhead = 16;

template <typename T>
void Grow(std::vector<T>& v, int64_t size) {
  if (int64_t(v.size()) < size) v.resize(size_t(size));
}

// Per-thread buffers, grown on first use and then reused. Q here is the padded chunk length.
struct ChunkScratch {
  std::vector<double> acum;             // [Q] cumulative dt*A within the chunk
  std::vector<float> acum_hi, acum_lo;  // [Q] acum split into two floats (see DiagCoeffs)
  std::vector<float> dt;                // [Q]
  std::vector<float> coeff;             // [Q, Q] decay-masked C.B^T times dt (lower triangle; fp32 products)
  std::vector<float> y;                 // [Q, p]
  std::vector<float> xw;                // [Q, p] x weighted by its decay to the chunk end and dt
  // bf16 products only:
  std::vector<uint16_t> coeff_b;        // [Q, Q] coeff, rounded as written
  std::vector<uint16_t> xw_b;           // [Q, p] xw rounded
  std::vector<uint16_t> h_b;            // [p, n] the incoming state rounded
  std::vector<float> dh;                // [p, n] (w o x)^T B of the chunk

  void Reserve(int64_t q, int64_t p, int64_t n, bool bf16) {
    Grow(acum, q);
    Grow(acum_hi, q);
    Grow(acum_lo, q);
    Grow(dt, q);
    Grow(coeff, bf16 ? 0 : q * q);
    Grow(y, q * p);
    Grow(xw, q * p);
    if (bf16) {
      Grow(coeff_b, q * q);
      Grow(xw_b, q * p);
      Grow(h_b, p * n);
      Grow(dh, p * n);
    }
  }
};

// The chunk's x, B and C rounded to bf16 (bf16 products only): x per head and B, C per group as
// contiguous [qp, width] blocks, rows q..qp zero.
struct Bf16Chunk {
  int64_t qp = 0;
  const uint16_t* x = nullptr;  // [n_seqs, n_heads, qp, head_dim]
  const uint16_t* B = nullptr;  // [n_seqs, n_groups, qp, d_state]
  const uint16_t* C = nullptr;  // [n_seqs, n_groups, qp, d_state]
};

// Where the coefficients go: fp32 rows for sgemm, or bf16 rows for the bf16 products (rounded
// as they are written, without an fp32 pass between).
struct F32Out {
  using E = float;
  static void Put(float* p, Vf v) { Store(p, v); }
  static void PutN(float* p, Vf v, int n) { StoreN(p, v, n); }
};
struct Bf16Out {
  using E = uint16_t;
  static void Put(uint16_t* p, Vf v) { StoreBf16(p, v); }
  static void PutN(uint16_t* p, Vf v, int n) { StoreNBf16(p, v, n); }
};

// coeff[s] = CB[l][s] * exp(min(Acum_l - Acum_s, 0)) * dt[s] for s <= l. The cumsum can reach
// |Acum| ~ 1e4 within a chunk, where a single float loses ~1e-3 absolute; carrying it as
// hi + lo keeps the difference accurate to float precision of the difference itself.
template <typename Out>
void DiagCoeffs(const float* cb_row, const float* hi, const float* lo, const float* dt, int64_t l,
                typename Out::E* coeff) {
  const Vf hl = Set1(hi[l]), ll = Set1(lo[l]), zero = Zero();
  const int64_t count = l + 1;
  int64_t s = 0;
  for (; s + kLanes <= count; s += kLanes) {
    const Vf d = (hl - Load(hi + s)) + (ll - Load(lo + s));
    Out::Put(coeff + s, Load(cb_row + s) * Exp(Min(d, zero)) * Load(dt + s));
  }
  if (s < count) {
    const int t = int(count - s);
    const Vf d = (hl - LoadN(hi + s, t)) + (ll - LoadN(lo + s, t));
    Out::PutN(coeff + s, LoadN(cb_row + s, t) * Exp(Min(d, zero)) * LoadN(dt + s, t), t);
  }
}

// Rows [i0, i1) of the block-triangular coefficients, columns [0, i1) (ld qp): the lower triangle
// from DiagCoeffs, zeros above it and in the padded rows l >= q.
template <typename Out>
void CoeffBlock(const float* cb, int64_t ldcb, const ChunkScratch& ws, int64_t q, int64_t i0, int64_t i1,
                int64_t qp, typename Out::E* coeff) {
  for (int64_t l = i0; l < i1; ++l) {
    typename Out::E* cr = coeff + l * qp;
    const int64_t count = l < q ? l + 1 : 0;
    if (count) DiagCoeffs<Out>(cb + l * ldcb, ws.acum_hi.data(), ws.acum_lo.data(), ws.dt.data(), l, cr);
    std::fill(cr + count, cr + i1, typename Out::E(0));
  }
}

// y[i] = a * y[i] + b * x[i]
void ScaleAdd(float* y, float a, const float* x, float b, int64_t n) {
  const Vf av = Set1(a), bv = Set1(b);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) Store(y + i, Fma(av, Load(y + i), bv * Load(x + i)));
  if (i < n) StoreN(y + i, Fma(av, LoadN(y + i, int(n - i)), bv * LoadN(x + i, int(n - i))), int(n - i));
}


struct ScanParams {
  const ScanInputs* in;
  const MixerDims* dims;
  int64_t seq_len;
  const int32_t* slots;
  float* ssm_state;
  Mat y;
};

// One chunk [c0, c0+q) of one head of one sequence: y of the chunk and the state after it,
// as three matrix products (spec 2.3 steps 2, 3 and 5 for one head):
//   y   = diag(exp(Acum)) (C H^T) + D x + (CB o decay o dt) x      [q, p]
//   H  <- exp(Acum_last) H + (w o x)^T B,  w_s = exp(Acum_last - Acum_s) dt_s
// cb: [q, ldcb] C_l . B_s of this chunk for the head's group (lower triangle valid). With bf16
// (its operands rounded: bf != nullptr) the products take bf16 operands (C, B, x, H, the
// coefficients and w o x, each rounded once) and accumulate in fp32; the rest stays fp32.
void ChunkHead(const ScanParams& sp, const Bf16Chunk* bf, int64_t seq, int64_t hh, int64_t c0, int64_t q,
               const float* cb, int64_t ldcb, ChunkScratch& ws) {
  const ScanInputs& in = *sp.in;
  const MixerDims& dims = *sp.dims;
  const int64_t p = dims.head_dim, n = dims.d_state;
  const int64_t g = hh / (dims.n_heads / dims.n_groups);
  const int64_t row0 = seq * sp.seq_len + c0;
  const int64_t qp = bf ? bf->qp : q;  // rows of the products
  float* h = sp.ssm_state + int64_t(sp.slots[seq]) * dims.ssm_state_size() + hh * p * n;  // [p, n]
  const float A = -std::exp(in.A_log.as<float>()[hh]);
  const float D = in.D.as<float>()[hh];
  const float bias = in.dt_bias.as<float>()[hh];

  double acc = 0.0;
  for (int64_t l = 0; l < q; ++l) {
    if (l + kAhead < q) Prefetch(in.dt.row(row0 + l + kAhead) + hh);
    ws.dt[l] = DtValue(in.dt.row(row0 + l)[hh], bias, in.dt_min, in.dt_max);
    acc += double(ws.dt[l]) * double(A);
    ws.acum[l] = acc;
    ws.acum_hi[l] = float(acc);
    ws.acum_lo[l] = float(acc - double(ws.acum_hi[l]));
  }

  const float* x0 = in.x.row(row0) + hh * p;  // row s of the chunk's x at x0 + s * in.x.ld
  const float* b0 = in.B.row(row0) + g * n;
  const float* c0_ = in.C.row(row0) + g * n;
  // bf16 operands: this head's x and its group's B and C, [qp, p] and [qp, n]
  const uint16_t* xb = bf ? bf->x + (seq * dims.n_heads + hh) * qp * p : nullptr;
  const uint16_t* bb = bf ? bf->B + (seq * dims.n_groups + g) * qp * n : nullptr;
  const uint16_t* cbf = bf ? bf->C + (seq * dims.n_groups + g) * qp * n : nullptr;
  float* y = ws.y.data();  // [qp, p]

  // The incoming state's contribution, then the skip term.
  if (bf) {
    RoundToBf16(h, p * n, ws.h_b.data());
    Bf16Matmul({qp, p, n, n, 1, 1, n, p, false}, cbf, ws.h_b.data(), y);  // C [qp, n] . H_b^T
  } else {
    Sgemm('N', 'T', q, p, n, 1.0f, c0_, in.C.ld, h, n, 0.0f, y, p);
  }
  for (int64_t l = 0; l < q; ++l) {
    if (l + kAhead < q) PrefetchSpan(x0 + (l + kAhead) * in.x.ld, p);
    ScaleAdd(y + l * p, float(std::exp(ws.acum[l])), x0 + l * in.x.ld, D, p);
  }

  // Intra-chunk term. With sgemm block-triangular: rows [i0, i1) need columns [0, i1) only.
  float* coeff = ws.coeff.data();         // [qp, qp]
  uint16_t* coeff_b = ws.coeff_b.data();  // [qp, qp] (bf16 products)
  // With bf16 products one call over the whole square (zeros above the diagonal): each oneDNN call
  // costs a few microseconds besides its arithmetic, more than the upper blocks (scan -10%).
  if (bf) {
    CoeffBlock<Bf16Out>(cb, ldcb, ws, q, 0, qp, qp, coeff_b);
    Bf16Matmul({qp, p, qp, qp, 1, p, 1, p, true}, coeff_b, xb, y);
  } else {
    for (int64_t i0 = 0; i0 < qp; i0 += kTriBlock) {
      const int64_t i1 = std::min(qp, i0 + kTriBlock);
      CoeffBlock<F32Out>(cb, ldcb, ws, q, i0, i1, qp, coeff);
      Sgemm('N', 'N', i1 - i0, p, i1, 1.0f, coeff + i0 * qp, qp, x0, in.x.ld, 1.0f, y + i0 * p, p);
    }
  }

  // State after the chunk.
  const double last = ws.acum[q - 1];
  float* xw = ws.xw.data();  // [q, p]
  for (int64_t s = 0; s < q; ++s) {
    const float w = float(std::exp(last - ws.acum[s])) * ws.dt[s];
    ScaleAdd(xw + s * p, 0.0f, x0 + s * in.x.ld, w, p);
  }
  if (bf) {
    uint16_t* xw_b = ws.xw_b.data();  // [qp, p]
    RoundToBf16(xw, q * p, xw_b);
    std::fill(xw_b + q * p, xw_b + qp * p, uint16_t(0));  // B's padded rows are 0, and 0 * stale NaN is not
    Bf16Matmul({p, n, qp, 1, p, n, 1, n, false}, xw_b, bb, ws.dh.data());  // xw_b^T [p, qp] . B [qp, n]
    ScaleAdd(h, float(std::exp(last)), ws.dh.data(), 1.0f, p * n);
  } else {
    Sgemm('T', 'N', p, n, q, 1.0f, xw, p, b0, in.B.ld, float(std::exp(last)), h, n);
  }

  // Written last, after every read of this chunk's x, so y may alias x.
  for (int64_t l = 0; l < q; ++l) {
    if (l + kAhead < q) PrefetchSpan(sp.y.row(row0 + l + kAhead) + hh * p, p);
    std::copy(y + l * p, y + (l + 1) * p, sp.y.row(row0 + l) + hh * p);
  }
}

// The chunk's rows [c0, c0 + q) of x, B and C rounded to bf16 into `out` in Bf16Chunk's layout.
Bf16Chunk RoundChunk(ThreadPool& pool, const ScanInputs& in, const MixerDims& dims, int64_t n_seqs,
                     int64_t seq_len, int64_t c0, int64_t q, std::vector<uint16_t>& out) {
  const int64_t qp = PadRows(q), p = dims.head_dim, n = dims.d_state, H = dims.n_heads, G = dims.n_groups;
  const int64_t x_size = n_seqs * H * qp * p, bc_size = n_seqs * G * qp * n;
  Grow(out, x_size + 2 * bc_size);
  Bf16Chunk bf{qp, out.data(), out.data() + x_size, out.data() + x_size + bc_size};
  uint16_t* xb = out.data();
  uint16_t* bb = xb + x_size;
  uint16_t* cb = bb + bc_size;
  pool.ParallelFor(n_seqs * qp, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t seq = t / qp, l = t % qp, row = seq * seq_len + c0 + l;
      // Row l of the chunk rounded, or a zero row where l is padding.
      auto put = [&](const Mat& src, int64_t col, int64_t width, uint16_t* dst) {
        if (l < q)
          RoundToBf16(src.row(row) + col, width, dst);
        else
          std::fill(dst, dst + width, uint16_t(0));
      };
      for (int64_t hh = 0; hh < H; ++hh) put(in.x, hh * p, p, xb + ((seq * H + hh) * qp + l) * p);
      for (int64_t g = 0; g < G; ++g) {
        put(in.B, g * n, n, bb + ((seq * G + g) * qp + l) * n);
        put(in.C, g * n, n, cb + ((seq * G + g) * qp + l) * n);
      }
    }
  });
  return bf;
}

void CheckScanShapes(const ScanInputs& in, const MixerDims& dims, int64_t rows, const Mat& y) {
  CHECK(dims.n_groups > 0 && dims.n_heads % dims.n_groups == 0);
  CHECK(dims.d_inner == dims.n_heads * dims.head_dim);
  CHECK(in.x.rows == rows && in.x.cols == dims.d_inner);
  CHECK(in.B.rows == rows && in.B.cols == dims.n_groups * dims.d_state);
  CHECK(in.C.rows == rows && in.C.cols == dims.n_groups * dims.d_state);
  CHECK(in.dt.rows == rows && in.dt.cols == dims.n_heads);
  CHECK(y.rows == rows && y.cols == dims.d_inner);
}

}  // namespace

void SsdChunked(ThreadPool& pool, const ScanInputs& in, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                const MixerDims& dims, int64_t chunk_size, bool bf16_products, float* ssm_state, Mat y,
                SsdScratch& scratch) {
  CheckScanShapes(in, dims, n_seqs * seq_len, y);
  CHECK(chunk_size >= 1);
  CHECK(!bf16_products || HaveBf16Gemm());
  if (n_seqs == 0 || seq_len == 0) return;
  const int64_t Q = std::min({chunk_size, seq_len, kMaxChunk});
  const int64_t Qp = PadRows(Q);  // ld of the C.B^T blocks
  const int64_t G = dims.n_groups, n = dims.d_state;
  Grow(scratch.cb, n_seqs * G * Qp * Qp);
  float* cb_all = scratch.cb.data();  // [n_seqs, G, Qp, Qp]
  const ScanParams sp{&in, &dims, seq_len, slots, ssm_state, y};

  // Chunks run in order (the state passes from one to the next); within a chunk, first the
  // group-shared C.B^T products, then every (sequence, head) in parallel.
  for (int64_t c0 = 0; c0 < seq_len; c0 += Q) {
    const int64_t q = std::min(Q, seq_len - c0);
    Bf16Chunk bf;
    if (bf16_products) bf = RoundChunk(pool, in, dims, n_seqs, seq_len, c0, q, scratch.operands);
    const int64_t rows = bf16_products ? bf.qp : q;
    // C.B^T of each (sequence, group), block-triangular like the intra-chunk term.
    const int64_t blocks = (rows + kTriBlock - 1) / kTriBlock;
    pool.ParallelFor(n_seqs * G * blocks, [&](int64_t t0, int64_t t1) {
      const FlushDenormals ftz;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t blk = t % blocks, sg = t / blocks, g = sg % G, seq = sg / G;
        const int64_t i0 = blk * kTriBlock, i1 = std::min(rows, i0 + kTriBlock);
        float* out = cb_all + sg * Qp * Qp + i0 * Qp;
        if (bf16_products) {
          const uint16_t* cg = bf.C + sg * bf.qp * n;  // [qp, n]
          const uint16_t* bg = bf.B + sg * bf.qp * n;
          Bf16Matmul({i1 - i0, i1, n, n, 1, 1, n, Qp, false}, cg + i0 * n, bg, out);
        } else {
          const int64_t row0 = seq * seq_len + c0;
          Sgemm('N', 'T', i1 - i0, i1, n, 1.0f, in.C.row(row0 + i0) + g * n, in.C.ld, in.B.row(row0) + g * n,
                in.B.ld, 0.0f, out, Qp);
        }
      }
    });
    pool.ParallelFor(n_seqs * dims.n_heads, [&](int64_t t0, int64_t t1) {
      thread_local ChunkScratch ws;
      const FlushDenormals ftz;
      ws.Reserve(Qp, dims.head_dim, n, bf16_products);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t seq = t / dims.n_heads, hh = t % dims.n_heads;
        const int64_t g = hh / (dims.n_heads / G);
        ChunkHead(sp, bf16_products ? &bf : nullptr, seq, hh, c0, q, cb_all + (seq * G + g) * Qp * Qp, Qp, ws);
      }
    });
  }
}

void SsmStep(ThreadPool& pool, const ScanInputs& in, const int32_t* slots, const MixerDims& dims,
             float* ssm_state, Mat y) {
  const int64_t rows = in.x.rows;
  CheckScanShapes(in, dims, rows, y);
  const int64_t p = dims.head_dim, n = dims.d_state, heads = dims.n_heads;
  const int64_t heads_per_group = heads / dims.n_groups;
  // Streaming the states is memory-bound: small pieces claimed dynamically keep both threads
  // busy to the end.
  const bool prefetch = PrefetchAhead();
  // A few rows of the [p, n] state on.
  constexpr int64_t kAheadFloats = kPrefetchAheadBytes / int64_t(sizeof(float));
  pool.ParallelForDynamic(
      rows * heads, 2,
      [&](int64_t t0, int64_t t1) {
        const FlushDenormals ftz;
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t i = t / heads, hh = t % heads, g = hh / heads_per_group;
          float* h = ssm_state + int64_t(slots[i]) * dims.ssm_state_size() + hh * p * n;  // [p, n]
          const float A = -std::exp(in.A_log.as<float>()[hh]);
          const float D = in.D.as<float>()[hh];
          const float dt = DtValue(in.dt.row(i)[hh], in.dt_bias.as<float>()[hh], in.dt_min, in.dt_max);
          const Vf decay = Set1(float(std::exp(double(dt) * double(A))));
          const float* B = in.B.row(i) + g * n;
          const float* C = in.C.row(i) + g * n;
          const float* x = in.x.row(i) + hh * p;
          float* yr = y.row(i) + hh * p;
          for (int64_t ip = 0; ip < p; ++ip) {
            const float xv = x[ip];
            const Vf dtx = Set1(dt * xv);
            float* hr = h + ip * n;
            if (prefetch) PrefetchLinesL2(hr + kAheadFloats, n * int64_t(sizeof(float)));
            Vf acc = Zero();
            int64_t k = 0;
            for (; k + kLanes <= n; k += kLanes) {
              const Vf hv = Fma(dtx, Load(B + k), decay * Load(hr + k));
              Store(hr + k, hv);
              acc = Fma(hv, Load(C + k), acc);
            }
            if (k < n) {
              const int r = int(n - k);
              const Vf hv = Fma(dtx, LoadN(B + k, r), decay * LoadN(hr + k, r));
              StoreN(hr + k, hv, r);
              acc = Fma(hv, LoadN(C + k, r), acc);
            }
            yr[ip] = ReduceAdd(acc) + D * xv;
          }
        }
      });
}

}  // namespace mamba2::cpu
