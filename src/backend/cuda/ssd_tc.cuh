// The chunked scan's three matrix-product stages on the tensor cores (fp32 sums), for the bf16 /
// fp16 / tf32 matmul modes: bf16 operands in bf16 mode (as mamba_ssm's bf16 kernels feed their
// dots: half the shared-memory bytes per product and twice the tensor rate of TF32), TF32 ones
// otherwise. fp32 mode keeps the fp32 kernels of ssd.cuh, which agree with the reference to ~1e-6.
// The cumsum and the state passing are shared with ssd.cuh.
//
// Where the fp32 kernels recompute C_l . B_s in every head's output block, here it is computed
// once per (seq, chunk, group) into scratch (SsdCbKernel) and read by all heads of the group:
// for the 2.7b shape (80 heads, one group) that was most of the scan's arithmetic.
//
// Every operand goes through shared memory, rounded to the operand format and zero-padded to
// whole tiles, so any head_dim, d_state and chunk works. A block is 8 warps over a 64x64 output
// tile, each warp two 16x16 accumulators (rows 16*(w%4), columns 32*(w/4) + {0, 16}).
#pragma once

#include <type_traits>

#include "backend/cuda/device_common.cuh"
#include "backend/cuda/ssd_block.cuh"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <mma.h>
namespace mamba2::M2_KERNEL_NS {
namespace wmma = nvcuda::wmma;
}
#endif

namespace mamba2::M2_KERNEL_NS {

constexpr int kTcTile = 64;              // rows and columns of an output tile and of a staged slab
constexpr int kStageLd = kTcTile + 4;    // the fp32 staging of a block's accumulator tile
// Blocks each SM must hold at once: a register cap of 85 (65536 / (3 * 256)). Uncapped, the
// kernels take 88-128 registers (their loads hoisted for overlap) and fit two blocks; each
// block's wait on memory is then covered by one other block only.
constexpr int kTcBlocksPerSm = 3;

M2_DEVICE float Tf32(float v) { return wmma::__float_to_tf32(v); }

// The operand formats. Strides are padded by 16 bytes (a multiple of 16 bytes, as wmma needs,
// and 32-byte aligned fragments at every 16th row and k step).
struct TcTf32 {
  using T = float;
  using Prec = wmma::precision::tf32;
  static constexpr int kK = 8;  // the fragment's k
  static constexpr int kLd = kTcTile + 4;
  M2_DEVICE static T From(float v) { return Tf32(v); }
};
struct TcBf16 {
  using T = __nv_bfloat16;
  using Prec = __nv_bfloat16;
  static constexpr int kK = 16;
  static constexpr int kLd = kTcTile + 8;
  M2_DEVICE static T From(float v) { return __float2bfloat16(v); }
};

template <typename Op>
using TcAcc = wmma::fragment<wmma::accumulator, 16, 16, Op::kK, float>;

// Shared memory of a kernel: two staged 64x64 operand slabs of Op, or the fp32 accumulator tile.
template <typename Op>
M2_HD constexpr int TcSmemBytes() {
  const int a = 2 * kTcTile * Op::kLd * int(sizeof(typename Op::T)), b = kTcTile * kStageLd * int(sizeof(float));
  return a > b ? a : b;
}

// A staged 64x64 slab is 512 pieces of 8 elements (a row's columns 8q .. 8q+7), two per thread.
// Per step a thread stages the operand that needs nothing else at once (StageRows), and holds
// its pieces of the other in registers while the few per-position values its staging needs
// (weights, decays) are loaded beside them: one memory latency per step. Staging an element at
// a time, with those values read first, took two latencies per step and several hundred
// instructions per warp for 32 wmma products per block.
constexpr int kPiecesPerRow = kTcTile / 8;
constexpr int kSlabPieces = kTcTile * kPiecesPerRow / kBlock;
static_assert(kTcTile * kPiecesPerRow == kSlabPieces * kBlock, "whole pieces per thread");
using SlabPieces = float[kSlabPieces][8];

M2_DEVICE int PieceRow(int q) { return (int(threadIdx.x) + q * kBlock) / kPiecesPerRow; }
M2_DEVICE int PieceCol(int q) { return 8 * ((int(threadIdx.x) + q * kBlock) % kPiecesPerRow); }

// This thread's pieces, each row r times scale(r) and rounded to the operand format, into a
// staged [64][Op::kLd] slab: one or two 16-byte stores per piece (the strides and the piece
// columns keep them aligned).
template <typename Op>
struct alignas(16) Ops8 {
  typename Op::T t[8];
};
struct NoScale {
  M2_DEVICE float operator()(int) const { return 1.0f; }
};
template <typename Op, typename Scale = NoScale>
M2_DEVICE void StagePieces(typename Op::T* slab, const SlabPieces& v, Scale scale = {}) {
  M2_UNROLL
  for (int q = 0; q < kSlabPieces; ++q) {
    const int r = PieceRow(q);
    const float f = scale(r);
    Ops8<Op> o;
    M2_UNROLL
    for (int k = 0; k < 8; ++k) o.t[k] = Op::From(v[q][k] * f);
    *reinterpret_cast<Ops8<Op>*>(slab + r * Op::kLd + PieceCol(q)) = o;
  }
}

// This thread's pieces of a slab: load(row, column, v) fills the 8 elements of a piece.
template <typename Load>
M2_DEVICE void LoadSlabPieces(SlabPieces& v, Load load) {
  M2_UNROLL
  for (int q = 0; q < kSlabPieces; ++q) load(PieceRow(q), PieceCol(q), v[q]);
}

// Loads this thread's pieces and stages them unscaled.
template <typename Op, typename Load>
M2_DEVICE void StageRows(typename Op::T* slab, Load load) {
  SlabPieces v;
  LoadSlabPieces(v, load);
  StagePieces<Op>(slab, v);
}

// Element (r, c) of a matrix in layout L (the layout tags are incomplete types: compared, not made).
template <typename L, typename E>
M2_DEVICE const E* TileAt(const E* m, int ld, int r, int c) {
  if constexpr (std::is_same<L, wmma::row_major>::value)
    return m + r * ld + c;
  else
    return m + c * ld + r;
}

// This warp's share of out[64 x 64] += A[64 x 64] B[64 x 64], operands in shared memory in the
// layouts LA, LB (element (r, c) of a row-major matrix at r*ld + c).
template <typename Op, typename LA, typename LB>
M2_DEVICE void WarpTileMma(const typename Op::T* a, const typename Op::T* b, TcAcc<Op> (&acc)[2]) {
  const int warp = int(threadIdx.x) / 32;
  const int row0 = 16 * (warp % 4), col0 = 32 * (warp / 4);
  wmma::fragment<wmma::matrix_a, 16, 16, Op::kK, typename Op::Prec, LA> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, Op::kK, typename Op::Prec, LB> fb;
  for (int k = 0; k < kTcTile; k += Op::kK) {
    wmma::load_matrix_sync(fa, TileAt<LA>(a, Op::kLd, row0, k), unsigned(Op::kLd));
    M2_UNROLL
    for (int j = 0; j < 2; ++j) {
      wmma::load_matrix_sync(fb, TileAt<LB>(b, Op::kLd, k, col0 + 16 * j), unsigned(Op::kLd));
      wmma::mma_sync(acc[j], fa, fb, acc[j]);
    }
  }
}

// Stores the block's 64x64 accumulator tile into `staging` [64][kStageLd] (row-major). The
// caller has synchronised so that no warp still reads what staging overlays.
template <typename Op>
M2_DEVICE void StoreTile(float* staging, const TcAcc<Op> (&acc)[2]) {
  const int warp = int(threadIdx.x) / 32;
  const int row0 = 16 * (warp % 4), col0 = 32 * (warp / 4);
  M2_UNROLL
  for (int j = 0; j < 2; ++j)
    wmma::store_matrix_sync(staging + row0 * kStageLd + col0 + 16 * j, acc[j], unsigned(kStageLd),
                            wmma::mem_row_major);
}

// Copies the staged 64x64 tile to dst (its origin, row stride ld), only the rows < rows and
// columns < cols that exist there.
M2_DEVICE void CopyOutTile(const float* staging, float* dst, int64_t ld, int64_t rows, int64_t cols) {
  for (int e = int(threadIdx.x); e < kTcTile * kPiecesPerRow; e += kBlock) {
    const int r = e / kPiecesPerRow, j = 8 * (e % kPiecesPerRow);
    if (r >= rows) continue;
    float v[8];
    LoadRow8(staging, cuda_args::kF32, r * kStageLd + j, 8, v);
    StoreRow8(dst, cuda_args::kF32, r * ld + j, cols - j, v);
  }
}

template <typename Op>
M2_DEVICE void ZeroAcc(TcAcc<Op> (&acc)[2]) {
  wmma::fill_fragment(acc[0], 0.0f);
  wmma::fill_fragment(acc[1], 0.0f);
}

// cb[l][s] = C_l . B_s for the 64x64 tile (l0, s0), s0 <= l0, of one (seq, chunk, group).
template <typename Op>
__global__ void M2_LAUNCH_BOUNDS(kBlock, kTcBlocksPerSm)
    SsdCbKernel(cuda_args::ScanParams p, int64_t chunk, int64_t n_chunks, cuda_args::SsdScratch sc) {
  M2_GRID_DEPENDENCY();
  using T = typename Op::T;
  const int64_t s = blockIdx.x / n_chunks, c = blockIdx.x - s * n_chunks, g = blockIdx.y;
  const int64_t tiles = CeilDiv(chunk, kTcTile);
  const int64_t lt = blockIdx.z / tiles, st = blockIdx.z - lt * tiles;
  const int64_t start = c * chunk, len = Min64(chunk, p.seq_len - start);
  const int64_t l0 = lt * kTcTile, s0 = st * kTcTile;
  if (st > lt || l0 >= len) return;  // the whole block: above the diagonal or past the end
  const int64_t N = p.d_state, row0 = s * p.seq_len + start;
  __shared__ __align__(32) unsigned char smem[TcSmemBytes<Op>()];
  T* cs = reinterpret_cast<T*>(smem);  // [64 l][64 n]
  T* bs = cs + kTcTile * Op::kLd;       // [64 s][64 n]
  TcAcc<Op> acc[2];
  ZeroAcc<Op>(acc);
  for (int64_t n0 = 0; n0 < N; n0 += kTcTile) {
    StageRows<Op>(cs, [&](int r, int k, float (&v)[8]) {
      GetRow8(p.C, row0 + l0 + r, g * N + n0 + k, l0 + r < len ? N - (n0 + k) : 0, v);
    });
    StageRows<Op>(bs, [&](int r, int k, float (&v)[8]) {
      GetRow8(p.B, row0 + s0 + r, g * N + n0 + k, s0 + r < len ? N - (n0 + k) : 0, v);
    });
    __syncthreads();
    WarpTileMma<Op, wmma::row_major, wmma::col_major>(cs, bs, acc);
    __syncthreads();
  }
  float* staging = reinterpret_cast<float*>(smem);
  StoreTile<Op>(staging, acc);
  __syncthreads();
  float* cb = sc.cb + ((s * n_chunks + c) * p.n_groups + g) * chunk * chunk;
  CopyOutTile(staging, cb + l0 * chunk + s0, chunk, len - l0, len - s0);
}

// S_c[p, n] = sum_s exp(acum_last - acum_s) dt_s x_s[p] B_s[n] for a 64x64 (p, n) tile of one
// (seq, chunk, head): the product of the weighted x^T [p x len] and B [len x n].
template <typename Op>
__global__ void M2_LAUNCH_BOUNDS(kBlock, kTcBlocksPerSm)
    SsdChunkStateTcKernel(cuda_args::ScanParams p, int64_t chunk, int64_t n_chunks, cuda_args::SsdScratch sc) {
  M2_GRID_DEPENDENCY();
  using T = typename Op::T;
  // Plain variables, not structured bindings: the staging lambdas capture them (C++17).
  const ScanChunk at = LocateChunk(p, chunk, n_chunks);
  const int64_t c = at.c, hh = at.hh, g = at.g, len = at.len, sh = at.sh, base = at.base, row0 = at.row0;
  const int64_t P = p.head_dim, N = p.d_state;
  const int64_t p_tiles = CeilDiv(P, kTcTile);
  const int64_t p0 = (blockIdx.z % p_tiles) * kTcTile, n0 = (blockIdx.z / p_tiles) * kTcTile;
  const double last = sc.chunk_acum[sh * n_chunks + c];
  __shared__ __align__(32) unsigned char smem[TcSmemBytes<Op>()];  // also the output staging
  __shared__ float wt[kTcTile];
  T* xs = reinterpret_cast<T*>(smem);  // [64 s][64 p]
  T* bs = xs + kTcTile * Op::kLd;       // [64 s][64 n]
  const int tid = int(threadIdx.x);
  TcAcc<Op> acc[2];
  ZeroAcc<Op>(acc);
  for (int64_t k0 = 0; k0 < len; k0 += kTcTile) {
    SlabPieces xv;
    LoadSlabPieces(xv, [&](int kk, int j, float (&v)[8]) {
      const int64_t k = k0 + kk;
      GetRow8(p.x, row0 + k, hh * P + p0 + j, k < len ? P - (p0 + j) : 0, v);
    });
    StageRows<Op>(bs, [&](int kk, int j, float (&v)[8]) {
      const int64_t k = k0 + kk;
      GetRow8(p.B, row0 + k, g * N + n0 + j, k < len ? N - (n0 + j) : 0, v);
    });
    if (tid < kTcTile) wt[tid] = ChunkStateWeight(sc, base, last, k0 + tid, len);
    __syncthreads();
    StagePieces<Op>(xs, xv, [&](int kk) { return wt[kk]; });
    __syncthreads();
    WarpTileMma<Op, wmma::col_major, wmma::row_major>(xs, bs, acc);
    __syncthreads();
  }
  float* staging = reinterpret_cast<float*>(smem);
  StoreTile<Op>(staging, acc);
  __syncthreads();
  float* out = sc.states + (sh * n_chunks + c) * P * N;
  CopyOutTile(staging, out + p0 * N + n0, N, P - p0, N - n0);
}

// y for a 64-row (l) x 64-column (p) tile of one (seq, chunk, head), as SsdOutputKernel:
//   exp(acum_l) C_l . H_in[p]  +  sum_{s<=l} cb[l][s] exp(acum_l - acum_s) dt_s x_s[p]  +  D x_l[p]
// the first a product over d_state, the second over the chunk's positions.
template <typename Op>
__global__ void M2_LAUNCH_BOUNDS(kBlock, kTcBlocksPerSm)
    SsdOutputTcKernel(cuda_args::ScanParams p, int64_t chunk, int64_t n_chunks, cuda_args::SsdScratch sc) {
  M2_GRID_DEPENDENCY();
  using T = typename Op::T;
  // Plain variables, not structured bindings: the staging lambdas capture them (C++17).
  const ScanChunk at = LocateChunk(p, chunk, n_chunks);
  const int64_t s = at.s, c = at.c, hh = at.hh, g = at.g, len = at.len, sh = at.sh, base = at.base, row0 = at.row0;
  const int64_t l_tiles = CeilDiv(chunk, kTcTile);
  const int64_t l0 = (blockIdx.z % l_tiles) * kTcTile, p0 = (blockIdx.z / l_tiles) * kTcTile;
  if (l0 >= len) return;  // the whole block: a tile past the end of a short last chunk
  const int64_t P = p.head_dim, N = p.d_state;
  const float* h_in = sc.states + (sh * n_chunks + c) * P * N;
  const float* cb = sc.cb + ((s * n_chunks + c) * p.n_groups + g) * chunk * chunk;

  __shared__ __align__(32) unsigned char smem[TcSmemBytes<Op>()];
  __shared__ double acum_l[kTcTile];
  __shared__ double acum_s[kTcTile];
  __shared__ float decay_l[kTcTile];
  __shared__ float dt_s[kTcTile];
  const int tid = int(threadIdx.x);
  TcAcc<Op> acc[2];
  ZeroAcc<Op>(acc);

  // Off-diagonal: (exp(acum_l) C_l) [64 x d_state] times H_in^T [d_state x 64].
  T* cs = reinterpret_cast<T*>(smem);  // [64 l][64 n]
  T* hs = cs + kTcTile * Op::kLd;       // [64 p][64 n]
  for (int64_t n0 = 0; n0 < N; n0 += kTcTile) {
    SlabPieces cv;
    LoadSlabPieces(cv, [&](int r, int k, float (&v)[8]) {
      GetRow8(p.C, row0 + l0 + r, g * N + n0 + k, l0 + r < len ? N - (n0 + k) : 0, v);
    });
    StageRows<Op>(hs, [&](int r, int k, float (&v)[8]) {
      LoadRow8(h_in, cuda_args::kF32, (p0 + r) * N + n0 + k, p0 + r < P ? N - (n0 + k) : 0, v);
    });
    if (n0 == 0 && tid < kTcTile) {  // the rows' decays, with the first slab's loads in flight
      acum_l[tid] = l0 + tid < len ? sc.acum[base + l0 + tid] : 0.0;
      decay_l[tid] = float(exp(acum_l[tid]));
    }
    __syncthreads();
    StagePieces<Op>(cs, cv, [&](int r) { return decay_l[r]; });
    __syncthreads();
    WarpTileMma<Op, wmma::row_major, wmma::col_major>(cs, hs, acc);
    __syncthreads();
  }

  // Diagonal blocks: the masked, decayed, dt-scaled cb [64 l x 64 s] times x [64 s x 64 p].
  T* ms = reinterpret_cast<T*>(smem);  // [64 l][64 s]
  T* xs = ms + kTcTile * Op::kLd;       // [64 s][64 p]
  const int64_t s_end = Min64(l0 + kTcTile, len);
  for (int64_t s0 = 0; s0 < s_end; s0 += kTcTile) {
    SlabPieces mv;
    LoadSlabPieces(mv, [&](int r, int j, float (&v)[8]) {
      // The causal mask: positions s <= l of row l (all < len when l is).
      const int64_t l = l0 + r, si = s0 + j;
      LoadRow8(cb, cuda_args::kF32, l * chunk + si, l < len ? l - si + 1 : 0, v);
    });
    StageRows<Op>(xs, [&](int r, int j, float (&v)[8]) {
      GetRow8(p.x, row0 + s0 + r, hh * P + p0 + j, s0 + r < len ? P - (p0 + j) : 0, v);
    });
    if (tid < kTcTile) {
      const int64_t si = s0 + tid;
      acum_s[tid] = si < len ? sc.acum[base + si] : 0.0;
      dt_s[tid] = si < len ? sc.dt[base + si] : 0.0f;
    }
    __syncthreads();
    M2_UNROLL
    for (int q = 0; q < kSlabPieces; ++q) {
      const int r = PieceRow(q), j = PieceCol(q);
      const int64_t l = l0 + r, causal = l < len ? l - (s0 + j) + 1 : 0;
      M2_UNROLL
      for (int k = 0; k < 8; ++k)
        if (k < causal) mv[q][k] = DiagWeight(mv[q][k], acum_l[r], acum_s[j + k], dt_s[j + k]);
    }
    StagePieces<Op>(ms, mv);
    __syncthreads();
    WarpTileMma<Op, wmma::row_major, wmma::row_major>(ms, xs, acc);
    __syncthreads();
  }

  float* staging = reinterpret_cast<float*>(smem);
  StoreTile<Op>(staging, acc);
  __syncthreads();
  const float Dh = p.D[hh];
  for (int e = tid; e < kTcTile * kPiecesPerRow; e += kBlock) {
    const int r = e / kPiecesPerRow, j = 8 * (e % kPiecesPerRow);
    const int64_t l = l0 + r, pp = p0 + j, row = row0 + l;
    const int64_t count = l < len ? P - pp : 0;
    if (count <= 0) continue;
    float xv[8], yv[8];
    GetRow8(p.x, row, hh * P + pp, count, xv);
    M2_UNROLL
    for (int k = 0; k < 8; ++k) yv[k] = staging[r * kStageLd + j + k] + Dh * xv[k];
    PutRow8(p.y, row, hh * P + pp, count, yv);
  }
}

}  // namespace mamba2::M2_KERNEL_NS
