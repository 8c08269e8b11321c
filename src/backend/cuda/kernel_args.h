// Plain argument structs of the CUDA kernels, and the layout of the SSD scratch buffer.
// Deliberately free of project headers: nvcc compiles this (C++17) and so does the host-side
// kernel emulator in tests/cuda, so it must stay self-contained.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace mamba2::cuda_args {

// Element type codes of weight tables (and activations) as the kernels read them.
enum WDType : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

// A row-major activation matrix as the kernels see it: element (r, c) at data + (r*ld + c) of
// `type` (kF32, or kBF16 for the mixer's intermediates in bf16 mode). Loads widen to fp32,
// stores round to nearest even.
struct ActView {
  void* data = nullptr;
  int64_t ld = 0;
  int type = kF32;
};

// Causal conv over n_seqs sequences of seq_len rows (ConvStep: seq_len 1, one row per slot).
struct ConvParams {
  ActView xbc;  // [n_seqs*seq_len, conv_dim]
  ActView out;  // same shape
  const int32_t* slots = nullptr;  // [n_seqs] in device memory
  float* conv_state = nullptr;     // [n_slots, conv_dim, d_conv], oldest input first
  const float* weight = nullptr;   // [conv_dim, d_conv]
  const float* bias = nullptr;     // [conv_dim] or null
  int64_t n_seqs = 0, seq_len = 0, conv_dim = 0, d_conv = 0;
};

// The selective scan over n_seqs sequences of seq_len rows (SsmStep: seq_len 1).
struct ScanParams {
  ActView x;   // [rows, n_heads*head_dim]
  ActView B;   // [rows, n_groups*d_state]
  ActView C;   // [rows, n_groups*d_state]
  ActView dt;  // [rows, n_heads], before dt_bias and softplus
  const float* dt_bias = nullptr;  // [n_heads]
  const float* A_log = nullptr;    // [n_heads]
  const float* D = nullptr;        // [n_heads]
  float dt_min = 0.0f, dt_max = 0.0f;
  ActView y;  // [rows, n_heads*head_dim]
  const int32_t* slots = nullptr;  // [n_seqs] in device memory
  float* ssm_state = nullptr;      // [n_slots, n_heads, head_dim, d_state]
  int64_t n_seqs = 0, seq_len = 0, n_heads = 0, head_dim = 0, d_state = 0, n_groups = 0;
};

// Intermediates of the chunked scan, carved out of one buffer.
struct SsdScratch {
  float* dt = nullptr;           // [n_seqs, n_heads, n_chunks*chunk]  dt after softplus/clamp
  double* acum = nullptr;        // [n_seqs, n_heads, n_chunks*chunk]  cumsum of dt*A within the chunk
  double* chunk_acum = nullptr;  // [n_seqs, n_heads, n_chunks]        acum at the chunk's last row
  float* states = nullptr;       // [n_seqs, n_heads, n_chunks, head_dim, d_state] chunk states, then H_in
  float* cb = nullptr;           // [n_seqs, n_chunks, n_groups, chunk, chunk] C_l . B_s (tensor-core scan only)
};

// How the chunked scan multiplies: fp32 kernels (ssd.cuh), or tensor-core ones (ssd_tc.cuh) with
// TF32 or bf16 operands.
enum ScanProducts : int { kScanFp32 = 0, kScanTf32 = 1, kScanBf16 = 2 };

struct SsdLayout {
  int64_t chunk = 0, n_chunks = 0;
  int products = kScanFp32;
  bool tensor_cores = false;  // products other than kScanFp32: the kernels of ssd_tc.cuh
  size_t dt_off = 0, acum_off = 0, chunk_off = 0, states_off = 0, cb_off = 0, bytes = 0;
};

inline size_t AlignUp(size_t v, size_t a) { return (v + a - 1) / a * a; }

// The cumsum is kept in double: within a chunk of strongly decaying heads it reaches -1e4, and
// exp(acum_l - acum_s) of two such float values would lose every digit of the difference.
// Tensor-core products: room for the per-group C.B^T blocks those kernels share between the heads.
inline SsdLayout PlanSsdScratch(int64_t n_seqs, int64_t seq_len, int64_t n_heads, int64_t head_dim,
                                int64_t d_state, int64_t n_groups, int64_t chunk_hint, int products) {
  SsdLayout l;
  l.products = products;
  l.tensor_cores = products != kScanFp32;
  const bool tensor_cores = l.tensor_cores;
  l.chunk = chunk_hint > 0 ? chunk_hint : 256;
  l.n_chunks = (seq_len + l.chunk - 1) / l.chunk;
  const size_t per_pos = size_t(n_seqs * n_heads * l.n_chunks * l.chunk);
  size_t off = 0;
  l.dt_off = off;
  off = AlignUp(off + per_pos * sizeof(float), 256);
  l.acum_off = off;
  off = AlignUp(off + per_pos * sizeof(double), 256);
  l.chunk_off = off;
  off = AlignUp(off + size_t(n_seqs * n_heads * l.n_chunks) * sizeof(double), 256);
  l.states_off = off;
  off = AlignUp(off + size_t(n_seqs * n_heads * l.n_chunks * head_dim * d_state) * sizeof(float), 256);
  l.cb_off = off;
  if (tensor_cores) off = AlignUp(off + size_t(n_seqs * l.n_chunks * n_groups * l.chunk * l.chunk) * sizeof(float), 256);
  l.bytes = off;
  return l;
}

inline SsdScratch CarveSsdScratch(void* base, const SsdLayout& l) {
  char* b = static_cast<char*>(base);
  SsdScratch s;
  s.dt = reinterpret_cast<float*>(b + l.dt_off);
  s.acum = reinterpret_cast<double*>(b + l.acum_off);
  s.chunk_acum = reinterpret_cast<double*>(b + l.chunk_off);
  s.states = reinterpret_cast<float*>(b + l.states_off);
  s.cb = l.tensor_cores ? reinterpret_cast<float*>(b + l.cb_off) : nullptr;
  return s;
}

// The decode step's conv fused after the in_proj product (gemv.cuh): columns [begin, begin +
// conv.conv_dim) of the product are the conv inputs; conv.xbc is not read.
struct GemvConv {
  ConvParams conv;
  int64_t begin = 0;
};

// A norm computed by every block of the decode product (gemv.cuh) into shared memory ahead of
// its columns, in place of a norm kernel of its own: kind kRms normalises the fp32 rows x,
// kGated the gated rows y * silu(z) in groups of group_size. The grid is then what the device
// holds at once, each block taking several column groups, so the norm is computed a few hundred
// times, not once per eight columns.
enum GemvNormKind : int { kNoNorm = 0, kRms = 1, kGated = 2 };
struct GemvNorm {
  int kind = kNoNorm;
  const float* x = nullptr;  // kRms: [rows, K] fp32, row stride x_ld
  int64_t x_ld = 0;
  ActView y, z;              // kGated: [rows, K]
  const float* w = nullptr;  // [K]
  int64_t group_size = 0;
  float eps = 0.0f;
};
// The normalised rows live in shared memory: rows * K floats at most (47 KB: static shared memory
// stops at 48 KB per block, and the block sums need a little).
constexpr int64_t kGemvNormFloats = 12032;
inline bool GemvNormFits(int64_t rows, int64_t K) { return rows * K <= kGemvNormFloats; }

// Whether the decode product of gemv.cuh takes out = x w^T: at most kGemvMaxRows rows, K a whole
// number of 16-byte weight pieces, and rows of x and w starting on 16-byte boundaries.
constexpr int64_t kGemvMaxRows = 8;
inline bool GemvApplies(int64_t rows, int64_t K, const float* x, int64_t x_ld, const uint16_t* w) {
  return rows >= 1 && rows <= kGemvMaxRows && K > 0 && K % 8 == 0 && x_ld % 4 == 0 &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0;
}

// Launch-configuration checks: a violated one is a bug in the caller, so it aborts.
inline void KernelCheck(bool ok, const char* what, const char* file, int line) {
  if (ok) return;
  std::fprintf(stderr, "CUDA kernel precondition failed at %s:%d: %s\n", file, line, what);
  std::abort();
}
#define M2_KCHECK(cond) ::mamba2::cuda_args::KernelCheck((cond), #cond, __FILE__, __LINE__)

}  // namespace mamba2::cuda_args
