// Causal depthwise conv over the sequence (spec 2.2.3 and 3): vectorised across channels,
// parallel over (sequence, channel block). A per-block ring of the last d_conv raw rows makes
// the op safe when out aliases xbc and yields the new conv state directly.
#include <algorithm>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"

namespace mamba2::cpu {
namespace {

constexpr int64_t kBlock = 64;   // channels per task piece, a multiple of every kLanes
constexpr int64_t kMaxConv = 8;  // d_conv is 4 in every checkpoint
// A block reads and writes 64 channels of each row: one row per page, where the hardware
// prefetchers do not follow, so each row was a cache miss waited for in turn (the conv took 77 ms
// of a 2048-token 130m prefill on a Xeon). Rows kAhead ahead are touched first.
constexpr int64_t kAhead = 16;

void ConvBlock(const Mat& xbc, int64_t row0, int64_t seq_len, int64_t c0, int64_t nc, int64_t W, float* state,
               const float* w, const float* bias, const Mat& out) {
  // ring[(pos mod W)][c]: raw input of position pos (negative positions come from the state).
  float ring[kMaxConv][kBlock];
  float wt[kMaxConv][kBlock];  // [k][c]: transposed so the channel loop is contiguous
  float b[kBlock];
  for (int64_t c = 0; c < nc; ++c) {
    for (int64_t k = 0; k < W; ++k) {
      wt[k][c] = w[(c0 + c) * W + k];
      ring[k][c] = state[(c0 + c) * W + k];  // position k - W, and (k - W) mod W == k
    }
    b[c] = bias ? bias[c0 + c] : 0.0f;
  }
  for (int64_t t = 0; t < seq_len; ++t) {
    if (t + kAhead < seq_len) {
      PrefetchSpan(xbc.row(row0 + t + kAhead) + c0, nc);
      PrefetchSpan(out.row(row0 + t + kAhead) + c0, nc);
    }
    const float* src = xbc.row(row0 + t) + c0;
    float* ring_t = ring[t % W];
    std::copy(src, src + nc, ring_t);
    const float* win[kMaxConv];  // win[k]: position t - W + 1 + k
    for (int64_t k = 0; k < W; ++k) win[k] = ring[(t + 1 + k) % W];
    float* dst = out.row(row0 + t) + c0;
    // Whole vectors with plain loads and stores, the tail masked: masked ones on every vector
    // (vmaskmovps, slow on AMD) made this loop ~2.7x slower on an AVX2 Zen 3 (130m shape,
    // 2048-token prefill: 153-183 ms of convs, 53-75 ms with plain ones).
    int64_t c = 0;
    for (; c + kLanes <= nc; c += kLanes) {
      Vf acc = Load(b + c);
      for (int64_t k = 0; k < W; ++k) acc = Fma(Load(wt[k] + c), Load(win[k] + c), acc);
      Store(dst + c, Silu(acc));
    }
    if (c < nc) {
      const int n = int(nc - c);
      Vf acc = LoadN(b + c, n);
      for (int64_t k = 0; k < W; ++k) acc = Fma(LoadN(wt[k] + c, n), LoadN(win[k] + c, n), acc);
      StoreN(dst + c, Silu(acc), n);
    }
  }
  // The new state is the last W positions, seq_len - W .. seq_len - 1, oldest first.
  for (int64_t k = 0; k < W; ++k) {
    const float* r = ring[(seq_len + k) % W];
    for (int64_t c = 0; c < nc; ++c) state[(c0 + c) * W + k] = r[c];
  }
}

}  // namespace

void CausalConv(ThreadPool& pool, Mat xbc, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                const MixerDims& dims, float* conv_state, const float* w, const float* bias, Mat out) {
  const int64_t W = dims.d_conv, conv_dim = dims.conv_dim();
  CHECK_MSG(W >= 1 && W <= kMaxConv, "d_conv out of the supported range 1..8");
  CHECK(xbc.cols == conv_dim && out.cols == conv_dim);
  CHECK(xbc.rows == n_seqs * seq_len && out.rows == xbc.rows);
  if (n_seqs == 0 || seq_len == 0) return;
  const int64_t n_blocks = (conv_dim + kBlock - 1) / kBlock;
  // Pieces of at least ~64K multiply-adds: a decode step (seq_len 1) of a few sequences runs
  // inline, since waking the other threads would cost more than the work.
  const int64_t min_chunk = std::max<int64_t>(1, 65536 / (kBlock * W * std::max<int64_t>(1, seq_len)));
  pool.ParallelFor(
      n_seqs * n_blocks,
      [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t s = t / n_blocks, blk = t % n_blocks;
          const int64_t c0 = blk * kBlock, nc = std::min(kBlock, conv_dim - c0);
          float* state = conv_state + int64_t(slots[s]) * dims.conv_state_size();
          ConvBlock(xbc, s * seq_len, seq_len, c0, nc, W, state, w, bias, out);
        }
      },
      min_chunk);
}

}  // namespace mamba2::cpu
