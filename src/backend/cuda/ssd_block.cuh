// Where a block of the chunked scan works, from blockIdx.x = seq * n_chunks + chunk and
// blockIdx.y = head: the same for the fp32 kernels (ssd.cuh) and the tensor-core ones (ssd_tc.cuh).
#pragma once

#include "backend/cuda/device_common.cuh"

namespace mamba2::M2_KERNEL_NS {

struct ScanChunk {
  int64_t s, c, hh, g;  // sequence, chunk, head and its group
  int64_t start, len;   // the chunk's first position in the sequence and its length
  int64_t sh;           // s * n_heads + hh: the (sequence, head) of the per-head scratch
  int64_t base;         // this chunk's first position in the per-position scratch (dt, acum)
  int64_t row0;         // this chunk's first row of x, B, C, y
};

M2_DEVICE ScanChunk LocateChunk(const cuda_args::ScanParams& p, int64_t chunk, int64_t n_chunks) {
  ScanChunk k;
  k.s = blockIdx.x / n_chunks;
  k.c = blockIdx.x - k.s * n_chunks;
  k.hh = blockIdx.y;
  k.g = k.hh / (p.n_heads / p.n_groups);
  k.start = k.c * chunk;
  k.len = Min64(chunk, p.seq_len - k.start);
  k.sh = k.s * p.n_heads + k.hh;
  k.base = k.sh * n_chunks * chunk + k.c * chunk;
  k.row0 = k.s * p.seq_len + k.start;
  return k;
}

// The weight of position k of a chunk in its chunk state: exp(acum_last - acum_k) dt_k (0 past len).
M2_DEVICE float ChunkStateWeight(const cuda_args::SsdScratch& sc, int64_t base, double last, int64_t k,
                                 int64_t len) {
  return k < len ? expf(float(last - sc.acum[base + k])) * sc.dt[base + k] : 0.0f;
}

// C_l . B_s scaled into the diagonal block's mixing weight (s <= l): times exp(acum_l - acum_s) dt_s.
// The exponent is never positive for s <= l (acum only decreases); the clamp is a guard.
M2_DEVICE float DiagWeight(float cb, double acum_l, double acum_s, float dt_s) {
  return cb * expf(float(fmin(acum_l - acum_s, 0.0))) * dt_s;
}

}  // namespace mamba2::M2_KERNEL_NS
