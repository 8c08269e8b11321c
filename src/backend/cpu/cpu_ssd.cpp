// The selective scan on the cpu: the chunked SSD algorithm for prefill (spec 2.3) and the
// one-token recurrence for decode (spec 3). All inner loops are "y += coeff[s] * row_s" over
// contiguous rows (see AccumRows), i.e. small matmuls written so that they vectorise.
#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"

namespace mamba2::cpu {
namespace {

// Larger chunk hints are capped: the intra-chunk work grows with Q^2 and gains nothing.
constexpr int64_t kMaxChunk = 512;

// Accumulator registers a tile may use: half the vector register file.
constexpr int kAccRegs = kLanes >= 16 ? 16 : 8;
// Rows of y updated together; each loaded X vector then feeds kMaxRows FMAs.
constexpr int kMaxRows = 4;

// For r < R: y[r][0..NV*kLanes) += sum_s coeff[r][s] * X[s*ldx + ...]; the last vector holds
// `tail` lanes.
template <int R, int NV, bool kFull>
void AccumTile(const float* const* coeff, int64_t count, const float* X, int64_t ldx, float* const* y, int tail) {
  Vf acc[R][NV];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV - 1; ++v) acc[r][v] = Load(y[r] + v * kLanes);
    acc[r][NV - 1] = kFull ? Load(y[r] + (NV - 1) * kLanes) : LoadN(y[r] + (NV - 1) * kLanes, tail);
  }
  for (int64_t s = 0; s < count; ++s) {
    const float* xs = X + s * ldx;
    Vf xv[NV];
    for (int v = 0; v < NV - 1; ++v) xv[v] = Load(xs + v * kLanes);
    xv[NV - 1] = kFull ? Load(xs + (NV - 1) * kLanes) : LoadN(xs + (NV - 1) * kLanes, tail);
    for (int r = 0; r < R; ++r) {
      const Vf c = Set1(coeff[r][s]);
      for (int v = 0; v < NV; ++v) acc[r][v] = Fma(c, xv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV - 1; ++v) Store(y[r] + v * kLanes, acc[r][v]);
    if (kFull)
      Store(y[r] + (NV - 1) * kLanes, acc[r][NV - 1]);
    else
      StoreN(y[r] + (NV - 1) * kLanes, acc[r][NV - 1], tail);
  }
}

using AccumFn = void (*)(const float* const*, int64_t, const float*, int64_t, float* const*, int);

template <int R>
constexpr int MaxVecs() {
  return std::min(8, kAccRegs / R);
}

// [0, MaxVecs) full tiles of nv = i + 1 vectors, then [MaxVecs, 2 MaxVecs) partial ones.
template <int R, int... I>
constexpr std::array<AccumFn, 2 * sizeof...(I)> TileTable(std::integer_sequence<int, I...>) {
  return {&AccumTile<R, I + 1, true>..., &AccumTile<R, I + 1, false>...};
}

template <int R>
void AccumRowsR(const float* const* coeff, int64_t count, const float* X, int64_t ldx, int64_t width,
                float* const* y) {
  constexpr int kNv = MaxVecs<R>();
  static constexpr auto kTable = TileTable<R>(std::make_integer_sequence<int, kNv>{});
  constexpr int64_t kTile = kNv * kLanes;
  float* yt[R];
  for (int64_t j0 = 0; j0 < width; j0 += kTile) {
    const int64_t w = std::min(kTile, width - j0);
    const int nv = int((w + kLanes - 1) / kLanes);
    const int tail = int(w - (nv - 1) * kLanes);
    for (int r = 0; r < R; ++r) yt[r] = y[r] + j0;
    kTable[size_t((tail == kLanes ? 0 : kNv) + nv - 1)](coeff, count, X + j0, ldx, yt, tail);
  }
}

// For r < rows (1..kMaxRows): y[r][0..width) += sum_{s < count} coeff[r][s] * X[s*ldx + 0..width),
// i.e. a few rows of a small matmul against a row-major X, register-blocked over rows and width.
void AccumRows(int rows, const float* const* coeff, int64_t count, const float* X, int64_t ldx, int64_t width,
               float* const* y) {
  switch (rows) {
    case 1: return AccumRowsR<1>(coeff, count, X, ldx, width, y);
    case 2: return AccumRowsR<2>(coeff, count, X, ldx, width, y);
    case 3: return AccumRowsR<3>(coeff, count, X, ldx, width, y);
    case 4: return AccumRowsR<4>(coeff, count, X, ldx, width, y);
    default: CHECK_MSG(false, "AccumRows: 1..4 rows");
  }
}

void Scale(float* x, float s, int64_t n) {
  const Vf sv = Set1(s);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) Store(x + i, Load(x + i) * sv);
  if (i < n) StoreN(x + i, LoadN(x + i, int(n - i)) * sv, int(n - i));
}

// Per-thread buffers, grown on first use and then reused.
struct ChunkScratch {
  std::vector<double> acum;             // [Q] cumulative dt*A within the chunk
  std::vector<float> acum_hi, acum_lo;  // [Q] acum split into two floats (see DiagCoeffs)
  std::vector<float> dt;                // [Q]
  std::vector<float> coeff;             // [kMaxRows, max(Q, n)] coefficients of a block of rows
  std::vector<float> y;                 // [Q, p]
  std::vector<float> ht;                // [n, p] the incoming state, transposed
  std::vector<float> xw;                // [p, Q] decay- and dt-weighted x, transposed

  void Reserve(int64_t q, int64_t p, int64_t n) {
    auto grow = [](auto& v, int64_t size) {
      if (int64_t(v.size()) < size) v.resize(size_t(size));
    };
    grow(acum, q);
    grow(acum_hi, q);
    grow(acum_lo, q);
    grow(dt, q);
    grow(coeff, kMaxRows * std::max(q, n));
    grow(y, q * p);
    grow(ht, n * p);
    grow(xw, p * q);
  }
};

// coeff[s] = CB[l][s] * exp(min(Acum_l - Acum_s, 0)) * dt[s] for s <= l. The cumsum can reach
// |Acum| ~ 1e4 within a chunk, where a single float loses ~1e-3 absolute; carrying it as
// hi + lo keeps the difference accurate to float precision of the difference itself.
void DiagCoeffs(const float* cb_row, const float* hi, const float* lo, const float* dt, int64_t l, float* coeff) {
  const Vf hl = Set1(hi[l]), ll = Set1(lo[l]), zero = Zero();
  const int64_t count = l + 1;
  int64_t s = 0;
  for (; s + kLanes <= count; s += kLanes) {
    const Vf d = (hl - Load(hi + s)) + (ll - Load(lo + s));
    Store(coeff + s, Load(cb_row + s) * Exp(Min(d, zero)) * Load(dt + s));
  }
  if (s < count) {
    const int t = int(count - s);
    const Vf d = (hl - LoadN(hi + s, t)) + (ll - LoadN(lo + s, t));
    StoreN(coeff + s, LoadN(cb_row + s, t) * Exp(Min(d, zero)) * LoadN(dt + s, t), t);
  }
}

struct ScanParams {
  const ScanInputs* in;
  const MixerDims* dims;
  int64_t seq_len;
  const int32_t* slots;
  float* ssm_state;
  Mat y;
};

// One chunk [c0, c0+q) of one head of one sequence: y of the chunk and the state after it.
// cb: [q, Q] C_l . B_s of this chunk for the head's group (lower triangle used).
void ChunkHead(const ScanParams& sp, int64_t seq, int64_t hh, int64_t c0, int64_t q, const float* cb,
               int64_t ldcb, ChunkScratch& ws) {
  const ScanInputs& in = *sp.in;
  const MixerDims& dims = *sp.dims;
  const int64_t p = dims.head_dim, n = dims.d_state;
  const int64_t g = hh / (dims.n_heads / dims.n_groups);
  const int64_t row0 = seq * sp.seq_len + c0;
  float* h = sp.ssm_state + int64_t(sp.slots[seq]) * dims.ssm_state_size() + hh * p * n;  // [p, n]
  const float A = -std::exp(in.A_log.as<float>()[hh]);
  const float D = in.D.as<float>()[hh];
  const float bias = in.dt_bias.as<float>()[hh];

  double acc = 0.0;
  for (int64_t l = 0; l < q; ++l) {
    ws.dt[l] = DtValue(in.dt.row(row0 + l)[hh], bias, in.dt_min, in.dt_max);
    acc += double(ws.dt[l]) * double(A);
    ws.acum[l] = acc;
    ws.acum_hi[l] = float(acc);
    ws.acum_lo[l] = float(acc - double(ws.acum_hi[l]));
  }

  const float* x0 = in.x.row(row0) + hh * p;  // row s of the chunk's x at x0 + s * in.x.ld
  const float* b0 = in.B.row(row0) + g * n;
  float* y = ws.y.data();  // [q, p]

  // Skip term, then the contribution of the incoming state: exp(Acum_l) * (H . C_l).
  for (int64_t i = 0; i < p; ++i)
    for (int64_t k = 0; k < n; ++k) ws.ht[k * p + i] = h[i * n + k];
  const int64_t ldc = std::max(q, n);  // row stride of ws.coeff
  const float* coeff[kMaxRows];
  float* rows[kMaxRows];
  for (int r = 0; r < kMaxRows; ++r) coeff[r] = ws.coeff.data() + r * ldc;
  for (int64_t l0 = 0; l0 < q; l0 += kMaxRows) {
    const int nr = int(std::min<int64_t>(kMaxRows, q - l0));
    for (int r = 0; r < nr; ++r) {
      const int64_t l = l0 + r;
      const float* xl = x0 + l * in.x.ld;
      rows[r] = y + l * p;
      for (int64_t i = 0; i < p; ++i) rows[r][i] = D * xl[i];
      const float decay = float(std::exp(ws.acum[l]));
      const float* cl = in.C.row(row0 + l) + g * n;
      float* cr = ws.coeff.data() + r * ldc;
      for (int64_t k = 0; k < n; ++k) cr[k] = decay * cl[k];
    }
    AccumRows(nr, coeff, n, ws.ht.data(), p, p, rows);
  }

  // Intra-chunk term: the decay-masked CB^T times dt*x. A block of rows runs to the last row's
  // diagonal; the earlier rows' coefficients past their own diagonal are zero.
  for (int64_t l0 = 0; l0 < q; l0 += kMaxRows) {
    const int nr = int(std::min<int64_t>(kMaxRows, q - l0));
    const int64_t count = l0 + nr;
    for (int r = 0; r < nr; ++r) {
      const int64_t l = l0 + r;
      float* cr = ws.coeff.data() + r * ldc;
      DiagCoeffs(cb + l * ldcb, ws.acum_hi.data(), ws.acum_lo.data(), ws.dt.data(), l, cr);
      std::fill(cr + l + 1, cr + count, 0.0f);
      rows[r] = y + l * p;
    }
    AccumRows(nr, coeff, count, x0, in.x.ld, p, rows);
  }

  // State after the chunk: H = exp(Acum_last) H + sum_s exp(Acum_last - Acum_s) dt_s x_s (x) B_s.
  const double last = ws.acum[q - 1];
  for (int64_t s = 0; s < q; ++s) {
    const float w = float(std::exp(last - ws.acum[s])) * ws.dt[s];
    const float* xs = x0 + s * in.x.ld;
    for (int64_t i = 0; i < p; ++i) ws.xw[i * q + s] = w * xs[i];
  }
  const float decay_last = float(std::exp(last));
  Scale(h, decay_last, p * n);
  for (int64_t i0 = 0; i0 < p; i0 += kMaxRows) {
    const int nr = int(std::min<int64_t>(kMaxRows, p - i0));
    const float* xw[kMaxRows];
    for (int r = 0; r < nr; ++r) {
      xw[r] = ws.xw.data() + (i0 + r) * q;
      rows[r] = h + (i0 + r) * n;
    }
    AccumRows(nr, xw, q, b0, in.B.ld, n, rows);
  }

  // Written last, after every read of this chunk's x, so y may alias x.
  for (int64_t l = 0; l < q; ++l) std::copy(y + l * p, y + (l + 1) * p, sp.y.row(row0 + l) + hh * p);
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
                const MixerDims& dims, int64_t chunk_size, float* ssm_state, Mat y,
                std::vector<float>& cb_scratch) {
  CheckScanShapes(in, dims, n_seqs * seq_len, y);
  CHECK(chunk_size >= 1);
  if (n_seqs == 0 || seq_len == 0) return;
  const int64_t Q = std::min({chunk_size, seq_len, kMaxChunk});
  const int64_t G = dims.n_groups, n = dims.d_state;
  const int64_t cb_size = n_seqs * G * Q * Q;
  if (int64_t(cb_scratch.size()) < cb_size) cb_scratch.resize(size_t(cb_size));
  float* cb_all = cb_scratch.data();  // [n_seqs, G, Q, Q]
  const ScanParams sp{&in, &dims, seq_len, slots, ssm_state, y};

  // Chunks run in order (the state passes from one to the next); within a chunk, first the
  // group-shared C.B^T products, then every (sequence, head) in parallel.
  for (int64_t c0 = 0; c0 < seq_len; c0 += Q) {
    const int64_t q = std::min(Q, seq_len - c0);
    pool.ParallelFor(
        n_seqs * G * q,
        [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t l = t % q, sg = t / q, g = sg % G, seq = sg / G;
            const int64_t row0 = seq * seq_len + c0;
            const float* cl = in.C.row(row0 + l) + g * n;
            float* out = cb_all + sg * Q * Q + l * Q;
            for (int64_t s = 0; s <= l; ++s) out[s] = Dot(cl, in.B.row(row0 + s) + g * n, n);
          }
        },
        8);
    pool.ParallelFor(n_seqs * dims.n_heads, [&](int64_t t0, int64_t t1) {
      thread_local ChunkScratch ws;
      ws.Reserve(Q, dims.head_dim, n);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t seq = t / dims.n_heads, hh = t % dims.n_heads;
        const int64_t g = hh / (dims.n_heads / G);
        ChunkHead(sp, seq, hh, c0, q, cb_all + (seq * G + g) * Q * Q, Q, ws);
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
  pool.ParallelFor(
      rows * heads,
      [&](int64_t t0, int64_t t1) {
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
      },
      4);
}

}  // namespace mamba2::cpu
