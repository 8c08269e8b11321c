// The selective scan on the GPU: the chunked SSD for prefill (spec 2.3) and the one-token
// recurrence for decode (spec 3). Included by ssd.cu (nvcc) and by the host emulator test.
//
// Prefill runs four kernels over the scratch of kernel_args.h:
//   1. dt and the within-chunk cumsum of dt*A              block per (seq*head, chunk)
//   2. chunk states S_c = sum_s decay(last, s) dt_s x_s B_s  block per (seq*chunk, head, p/n tile)
//   3. state passing H_in[c+1] = exp(acum_last) H_in[c] + S_c, from and back to the slot's state
//   4. y = diag (masked CB^T scaled, times x) + exp(acum_l) C_l H_in + D x   block per (seq*chunk, head, l/p tile)
// All fp32 with fp32 accumulation, except the cumsum (double, see PlanSsdScratch). A layout planned
// with tensor-core products runs stages 2 and 4 (and a shared C.B^T stage) on the tensor cores,
// TF32 or bf16 operands: ssd_tc.cuh.
#pragma once

#include "backend/cuda/device_common.cuh"
#include "backend/cuda/ssd_block.cuh"
#include "backend/cuda/ssd_tc.cuh"

namespace mamba2::M2_KERNEL_NS {

constexpr int kSsdTile = 64;   // l, s, p and n extent of the tiles; 256 threads as 16x16, 4x4 each
constexpr int kSsdK = 16;      // d_state slice held in shared memory by the output kernel
constexpr int kStateK = 32;    // positions per step of the chunk-state kernel
constexpr int kStepRows = kBlock / 32;  // head_dim rows per SsmStep block, a warp each

// acc[i][j] += sum_k cs[ty + 16i][k] * ks[tx + 16j][k] over one shared d_state slice: each of the
// 16x16 threads accumulates its 4x4 piece of a 64x64 tile product.
M2_DEVICE void TileSlabFma(const float (&cs)[kSsdTile][kSsdK + 1], const float (&ks)[kSsdTile][kSsdK + 1], int ty,
                           int tx, float (&acc)[4][4]) {
  M2_UNROLL
  for (int k = 0; k < kSsdK; ++k) {
    float a[4], b[4];
    M2_UNROLL
    for (int i = 0; i < 4; ++i) {
      a[i] = cs[ty + 16 * i][k];
      b[i] = ks[tx + 16 * i][k];
    }
    M2_UNROLL
    for (int i = 0; i < 4; ++i)
      M2_UNROLL
      for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
  }
}

__global__ void SsdDtKernel(cuda_args::ScanParams p, int64_t chunk, int64_t n_chunks, cuda_args::SsdScratch sc) {
  M2_GRID_DEPENDENCY();
  const int64_t sh = blockIdx.x, c = blockIdx.y;
  const int64_t s = sh / p.n_heads, hh = sh - s * p.n_heads;
  const int64_t start = c * chunk, len = Min64(chunk, p.seq_len - start);
  const int64_t base = sh * n_chunks * chunk + c * chunk;
  const double A = -exp(double(p.A_log[hh]));
  const float bias = p.dt_bias[hh];
  __shared__ double a[kBlock];
  double carry = 0.0;  // thread 0's running sum; a sequential sum keeps it exactly the recurrence's
  for (int64_t t0 = 0; t0 < len; t0 += kBlock) {
    const int64_t i = t0 + threadIdx.x;
    double av = 0.0;
    if (i < len) {
      const double dt = DtValue(Get(p.dt, s * p.seq_len + start + i, hh), bias, p.dt_min, p.dt_max);
      sc.dt[base + i] = float(dt);
      av = dt * A;
    }
    a[threadIdx.x] = av;
    __syncthreads();
    if (threadIdx.x == 0) {
      const int64_t n = Min64(kBlock, len - t0);
      for (int64_t k = 0; k < n; ++k) {
        carry += a[k];
        sc.acum[base + t0 + k] = carry;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) sc.chunk_acum[sh * n_chunks + c] = carry;
}

// S_c[p, n] = sum_s exp(acum_last - acum_s) dt_s x_s[p] B_s[n]: per (seq, chunk, head) a
// (head_dim x len)(len x d_state) product, in 64x64 output tiles.
__global__ void SsdChunkStateKernel(cuda_args::ScanParams p, int64_t chunk, int64_t n_chunks,
                                    cuda_args::SsdScratch sc) {
  M2_GRID_DEPENDENCY();
  const auto [s, c, hh, g, start, len, sh, base, row0] = LocateChunk(p, chunk, n_chunks);
  const int64_t P = p.head_dim, N = p.d_state;
  const int64_t p_tiles = CeilDiv(P, kSsdTile);
  const int64_t p0 = (blockIdx.z % p_tiles) * kSsdTile, n0 = (blockIdx.z / p_tiles) * kSsdTile;
  const double last = sc.chunk_acum[sh * n_chunks + c];
  __shared__ float xs[kStateK][kSsdTile + 1];
  __shared__ float bs[kStateK][kSsdTile + 1];
  __shared__ float wt[kStateK];
  const int tid = int(threadIdx.x), tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < len; k0 += kStateK) {
    if (tid < kStateK) {
      const int64_t k = k0 + tid;
      wt[tid] = ChunkStateWeight(sc, base, last, k, len);
    }
    __syncthreads();
    for (int e = tid; e < kStateK * kSsdTile; e += kBlock) {
      const int kk = e / kSsdTile, j = e % kSsdTile;
      const int64_t k = k0 + kk, row = row0 + k;
      xs[kk][j] = (k < len && p0 + j < P) ? Get(p.x, row, hh * P + p0 + j) * wt[kk] : 0.0f;
      bs[kk][j] = (k < len && n0 + j < N) ? Get(p.B, row, g * N + n0 + j) : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < kStateK; ++kk) {
      float a[4], b[4];
      M2_UNROLL
      for (int i = 0; i < 4; ++i) {
        a[i] = xs[kk][ty + 16 * i];
        b[i] = bs[kk][tx + 16 * i];
      }
      M2_UNROLL
      for (int i = 0; i < 4; ++i)
        M2_UNROLL
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
  float* out = sc.states + (sh * n_chunks + c) * P * N;
  M2_UNROLL
  for (int i = 0; i < 4; ++i)
    M2_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int64_t pp = p0 + ty + 16 * i, nn = n0 + tx + 16 * j;
      if (pp < P && nn < N) out[pp * N + nn] = acc[i][j];
    }
}

// Sequential over chunks, parallel over the head_dim x d_state elements of each (seq, head).
// Replaces each chunk state by the state entering that chunk, and leaves the final state in
// the slot.
__global__ void SsdStatePassKernel(cuda_args::ScanParams p, int64_t n_chunks, cuda_args::SsdScratch sc) {
  M2_GRID_DEPENDENCY();
  const int64_t sh = blockIdx.x;
  const int64_t s = sh / p.n_heads, hh = sh - s * p.n_heads;
  const int64_t pn = p.head_dim * p.d_state;
  const int64_t e = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (e >= pn) return;
  float* slot_state = p.ssm_state + (int64_t(p.slots[s]) * p.n_heads + hh) * pn + e;
  float* st = sc.states + sh * n_chunks * pn + e;
  float h = *slot_state;
  // Loads and decays of kPassBatch chunks first, then their serial updates: one memory latency
  // per batch instead of one per chunk (the chunks of a 4096-token prefill: 16).
  constexpr int kPassBatch = 8;
  for (int64_t c0 = 0; c0 < n_chunks; c0 += kPassBatch) {
    float chunk_state[kPassBatch] = {}, decay[kPassBatch] = {};
    M2_UNROLL
    for (int k = 0; k < kPassBatch; ++k) {
      if (c0 + k >= n_chunks) break;
      chunk_state[k] = st[(c0 + k) * pn];
      decay[k] = float(exp(sc.chunk_acum[sh * n_chunks + c0 + k]));
    }
    M2_UNROLL
    for (int k = 0; k < kPassBatch; ++k) {
      if (c0 + k >= n_chunks) break;
      st[(c0 + k) * pn] = h;
      h = decay[k] * h + chunk_state[k];
    }
  }
  *slot_state = h;
}

// y for a 64-row (l) x 64-column (p) tile of one (seq, chunk, head):
//   off-diagonal  exp(acum_l) * sum_n C_l[n] H_in[p][n]
//   diagonal      sum_{s<=l} (C_l . B_s) exp(acum_l - acum_s) dt_s x_s[p]
//   skip          D x_l[p]
__global__ void SsdOutputKernel(cuda_args::ScanParams p, int64_t chunk, int64_t n_chunks, cuda_args::SsdScratch sc) {
  M2_GRID_DEPENDENCY();
  const auto [s, c, hh, g, start, len, sh, base, row0] = LocateChunk(p, chunk, n_chunks);
  const int64_t l_tiles = CeilDiv(chunk, kSsdTile);
  const int64_t l0 = (blockIdx.z % l_tiles) * kSsdTile, p0 = (blockIdx.z / l_tiles) * kSsdTile;
  if (l0 >= len) return;  // the whole block: a tile past the end of a short last chunk
  const int64_t P = p.head_dim, N = p.d_state;
  const float* h_in = sc.states + (sh * n_chunks + c) * P * N;

  __shared__ float cs[kSsdTile][kSsdK + 1];  // C rows of the l tile, a d_state slice
  __shared__ float ks[kSsdTile][kSsdK + 1];  // H_in rows (p) or B rows (s), the same slice
  __shared__ float ms[kSsdTile][kSsdTile + 1];
  __shared__ float xs[kSsdTile][kSsdTile + 1];
  __shared__ double acum_l[kSsdTile];
  __shared__ double acum_s[kSsdTile];
  __shared__ float dt_s[kSsdTile];
  const int tid = int(threadIdx.x), tx = tid % 16, ty = tid / 16;

  if (tid < kSsdTile) acum_l[tid] = l0 + tid < len ? sc.acum[base + l0 + tid] : 0.0;

  float acc[4][4] = {};
  for (int64_t n0 = 0; n0 < N; n0 += kSsdK) {
    for (int e = tid; e < kSsdTile * kSsdK; e += kBlock) {
      const int r = e / kSsdK, k = e % kSsdK;
      const int64_t n = n0 + k;
      cs[r][k] = (l0 + r < len && n < N) ? Get(p.C, row0 + l0 + r, g * N + n) : 0.0f;
      ks[r][k] = (p0 + r < P && n < N) ? h_in[(p0 + r) * N + n] : 0.0f;
    }
    __syncthreads();
    TileSlabFma(cs, ks, ty, tx, acc);
    __syncthreads();
  }
  M2_UNROLL
  for (int i = 0; i < 4; ++i) {
    const float decay = float(exp(acum_l[ty + 16 * i]));
    M2_UNROLL
    for (int j = 0; j < 4; ++j) acc[i][j] *= decay;
  }

  const int64_t s_end = Min64(l0 + kSsdTile, len);
  for (int64_t s0 = 0; s0 < s_end; s0 += kSsdTile) {
    if (tid < kSsdTile) {
      const int64_t si = s0 + tid;
      acum_s[tid] = si < len ? sc.acum[base + si] : 0.0;
      dt_s[tid] = si < len ? sc.dt[base + si] : 0.0f;
    }
    float m[4][4] = {};  // (C_l . B_s) for l = ty + 16i, s = tx + 16j
    for (int64_t n0 = 0; n0 < N; n0 += kSsdK) {
      for (int e = tid; e < kSsdTile * kSsdK; e += kBlock) {
        const int r = e / kSsdK, k = e % kSsdK;
        const int64_t n = n0 + k;
        cs[r][k] = (l0 + r < len && n < N) ? Get(p.C, row0 + l0 + r, g * N + n) : 0.0f;
        ks[r][k] = (s0 + r < len && n < N) ? Get(p.B, row0 + s0 + r, g * N + n) : 0.0f;
      }
      __syncthreads();
      TileSlabFma(cs, ks, ty, tx, m);
      __syncthreads();
    }
    // Causal mask, decay and dt: the scaled CB^T block.
    M2_UNROLL
    for (int i = 0; i < 4; ++i)
      M2_UNROLL
      for (int j = 0; j < 4; ++j) {
        const int li = ty + 16 * i, sj = tx + 16 * j;
        const int64_t l = l0 + li, si = s0 + sj;
        ms[li][sj] = (si <= l && l < len)
                         ? DiagWeight(m[i][j], acum_l[li], acum_s[sj], dt_s[sj])
                         : 0.0f;
      }
    for (int e = tid; e < kSsdTile * kSsdTile; e += kBlock) {
      const int r = e / kSsdTile, j = e % kSsdTile;
      xs[r][j] = (s0 + r < len && p0 + j < P) ? Get(p.x, row0 + s0 + r, hh * P + p0 + j) : 0.0f;
    }
    __syncthreads();
    for (int k = 0; k < kSsdTile; ++k) {
      float a[4], b[4];
      M2_UNROLL
      for (int i = 0; i < 4; ++i) {
        a[i] = ms[ty + 16 * i][k];
        b[i] = xs[k][tx + 16 * i];
      }
      M2_UNROLL
      for (int i = 0; i < 4; ++i)
        M2_UNROLL
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }

  const float Dh = p.D[hh];
  M2_UNROLL
  for (int i = 0; i < 4; ++i)
    M2_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int64_t l = l0 + ty + 16 * i, pp = p0 + tx + 16 * j;
      if (l < len && pp < P) {
        const int64_t row = row0 + l;
        Put(p.y, row, hh * P + pp, acc[i][j] + Dh * Get(p.x, row, hh * P + pp));
      }
    }
}

// y must not overlap x, B or C (other blocks still read rows this block writes); the backend
// copies x aside when the caller aliases y onto it.
void LaunchSsdPrefill(const cuda_args::ScanParams& p, const cuda_args::SsdLayout& l,
                      const cuda_args::SsdScratch& sc, cudaStream_t stream) {
  if (p.n_seqs <= 0 || p.seq_len <= 0) return;
  M2_KCHECK(p.n_groups > 0 && p.n_heads % p.n_groups == 0);
  M2_KCHECK(p.n_heads <= 65535 && l.n_chunks <= 65535);
  const int64_t sh = p.n_seqs * p.n_heads;
  const unsigned p_tiles = CeilDiv(p.head_dim, kSsdTile), n_tiles = CeilDiv(p.d_state, kSsdTile);
  const unsigned l_tiles = CeilDiv(l.chunk, kSsdTile);
  M2_KCHECK(int64_t(p_tiles) * n_tiles <= 65535 && int64_t(l_tiles) * p_tiles <= 65535);
  M2_KCHECK(CeilDiv(p.head_dim * p.d_state, kBlock) <= 65535);
  M2_LAUNCH(SsdDtKernel, dim3(unsigned(sh), unsigned(l.n_chunks)), dim3(kBlock), stream, p, l.chunk, l.n_chunks,
            sc);
  const dim3 per_head(unsigned(p.n_seqs * l.n_chunks), unsigned(p.n_heads), p_tiles * n_tiles);
  const dim3 out_tiles(unsigned(p.n_seqs * l.n_chunks), unsigned(p.n_heads), l_tiles * p_tiles);
  const bool bf16 = l.products == cuda_args::kScanBf16;
  if (l.tensor_cores) {
    static_assert(kTcTile == kSsdTile, "both scans tile l and p alike");
    M2_KCHECK(sc.cb != nullptr && p.n_groups <= 65535 && int64_t(l_tiles) * l_tiles <= 65535);
    const dim3 cb_tiles(unsigned(p.n_seqs * l.n_chunks), unsigned(p.n_groups), l_tiles * l_tiles);
    if (bf16) {
      M2_LAUNCH(SsdCbKernel<TcBf16>, cb_tiles, dim3(kBlock), stream, p, l.chunk, l.n_chunks, sc);
      M2_LAUNCH(SsdChunkStateTcKernel<TcBf16>, per_head, dim3(kBlock), stream, p, l.chunk, l.n_chunks, sc);
    } else {
      M2_LAUNCH(SsdCbKernel<TcTf32>, cb_tiles, dim3(kBlock), stream, p, l.chunk, l.n_chunks, sc);
      M2_LAUNCH(SsdChunkStateTcKernel<TcTf32>, per_head, dim3(kBlock), stream, p, l.chunk, l.n_chunks, sc);
    }
  } else {
    M2_LAUNCH(SsdChunkStateKernel, per_head, dim3(kBlock), stream, p, l.chunk, l.n_chunks, sc);
  }
  M2_LAUNCH(SsdStatePassKernel, dim3(unsigned(sh), CeilDiv(p.head_dim * p.d_state, kBlock)), dim3(kBlock), stream,
            p, l.n_chunks, sc);
  if (l.tensor_cores && bf16)
    M2_LAUNCH(SsdOutputTcKernel<TcBf16>, out_tiles, dim3(kBlock), stream, p, l.chunk, l.n_chunks, sc);
  else if (l.tensor_cores)
    M2_LAUNCH(SsdOutputTcKernel<TcTf32>, out_tiles, dim3(kBlock), stream, p, l.chunk, l.n_chunks, sc);
  else
    M2_LAUNCH(SsdOutputKernel, out_tiles, dim3(kBlock), stream, p, l.chunk, l.n_chunks, sc);
}

// One token per sequence: block per (seq, head, 8 head_dim rows), a warp per row, lanes over
// d_state. The state is read, updated and written once; y uses the updated fp32 state. The
// head's dt and decay (double transcendentals) are computed once per block, not by every warp.
//
// A lane's state, B and C elements are loaded kStepBatch at a time before any is used or stored
// (the store could alias the next load, so the compiler would not hoist it): for d_state up to
// 32 * kStepBatch one memory round trip per warp, issued before the block waits for dt.
constexpr int kStepBatch = 4;

struct StepOperands {
  float h[kStepBatch], b[kStepBatch], c[kStepBatch];  // old state, B, C at n0 + 32k
};

M2_DEVICE void LoadStepOperands(const cuda_args::ScanParams& p, const float* st, int64_t i, int64_t bc0,
                                int64_t n0, StepOperands& o) {
  M2_UNROLL
  for (int k = 0; k < kStepBatch; ++k) {
    const int64_t n = n0 + 32 * k;
    if (n >= p.d_state) break;
    o.h[k] = st[n];
    o.b[k] = Get(p.B, i, bc0 + n);
    o.c[k] = Get(p.C, i, bc0 + n);
  }
}

__global__ void SsmStepKernel(cuda_args::ScanParams p) {
  M2_GRID_DEPENDENCY();
  const int64_t i = blockIdx.x / p.n_heads, hh = blockIdx.x - i * p.n_heads;
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
  const int64_t P = p.head_dim, N = p.d_state;
  const int64_t g = hh / (p.n_heads / p.n_groups);
  const int64_t pp = int64_t(blockIdx.y) * kStepRows + warp;
  const bool row = pp < P;
  float* st = p.ssm_state + ((int64_t(p.slots[i]) * p.n_heads + hh) * P + (row ? pp : 0)) * N;
  StepOperands o = {};
  float xv = 0.0f;
  if (row) {
    LoadStepOperands(p, st, i, g * N, lane, o);
    xv = Get(p.x, i, hh * P + pp);
  }
  __shared__ float head_dt, head_decay;
  if (threadIdx.x == 0) {
    const double dt = DtValue(Get(p.dt, i, hh), p.dt_bias[hh], p.dt_min, p.dt_max);
    head_dt = float(dt);
    head_decay = float(exp(dt * -exp(double(p.A_log[hh]))));
  }
  __syncthreads();
  if (!row) return;  // a whole warp; no block barriers follow
  const float decay = head_decay;
  const float dtx = head_dt * xv;
  float acc = 0.0f;
  for (int64_t n0 = lane; n0 < N; n0 += 32 * kStepBatch) {
    if (n0 != lane) LoadStepOperands(p, st, i, g * N, n0, o);
    M2_UNROLL
    for (int k = 0; k < kStepBatch; ++k) {
      const int64_t n = n0 + 32 * k;
      if (n >= N) break;
      const float h = decay * o.h[k] + dtx * o.b[k];
      st[n] = h;
      acc += h * o.c[k];
    }
  }
  acc = WarpSum(acc);  // also orders every lane's read of x before lane 0 writes y (y may alias x)
  if (lane == 0) Put(p.y, i, hh * P + pp, acc + p.D[hh] * xv);
}

void LaunchSsmStep(const cuda_args::ScanParams& p, cudaStream_t stream) {
  if (p.n_seqs <= 0) return;
  M2_KCHECK(p.n_groups > 0 && p.n_heads % p.n_groups == 0);
  M2_KCHECK(CeilDiv(p.head_dim, kStepRows) <= 65535);
  M2_LAUNCH(SsmStepKernel, dim3(unsigned(p.n_seqs * p.n_heads), CeilDiv(p.head_dim, kStepRows)), dim3(kBlock),
            stream, p);
}

}  // namespace mamba2::M2_KERNEL_NS
