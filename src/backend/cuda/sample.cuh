// The on-device token pick (the rule of sample/pick_rule.h) and its launcher: one block per
// logits row, the picked id written to device memory, so a decode step hands only ids to the
// host and can be captured into a CUDA graph. Included by sample.cu (nvcc) and by the host
// emulator test; see device_common.cuh.
//
// Structure of one block (one row, n = n_valid candidates):
//  1. Max: one pass, block argmax of the logit keys (lowest id on ties). Greedy ends here.
//  2. Thresholds without sorting. Dividing by the temperature is monotone, so every "keep
//     x >= t" set is also a "keep logit >= t'" set: the searches run on logit keys (no division
//     per element) and only the weights need x. A search finds the largest key c with
//     G(c) = sum of v over keys >= c reaching a goal (v = 1: the top_k-th largest; v = w: the
//     top-p cut). A row pass splits the window [lo, hi) holding c into 8 sub-windows (the first
//     pass by distance from the max, later ones evenly in key space), sums v per sub-window with
//     block reductions and keeps the one holding c; weights (double exp) are computed only for
//     keys inside the window. Once the window holds <= kPickPool elements they are compacted
//     into shared memory, split further there, and the last <= kPickRank are ranked directly.
//  3. Pick: kept = key >= the cut (and w >= min_p). Each warp sums the kept weights of a
//     contiguous id chunk (coalesced, lane-strided); a sequential scan over the warps' sums finds
//     the chunk where u * S falls; the whole block then splits that chunk into contiguous
//     per-thread ranges, scans their sums, and the thread whose range crosses the target walks
//     it. Candidates from all threads are resolved by a block min, so rounding between the two
//     levels can never lose the pick (the fallback is the chunk's last nonzero kept id).
// Expected cost on an H100/H200 for a 50,280-wide row (512 threads, row L1/L2-resident): one
// pass without exp ~1.5 us; the top-p search's first pass computes n double exps (~10 us);
// a top-k search pass ~4 us; pool steps ~0.3 us each; the pick pass computes exps only for kept
// ids. Plain temperature sampling ~10 us, top-k + top-p ~15 us, top-p alone ~20 us.
#pragma once

#include "backend/cuda/device_common.cuh"
#include "sample/pick_rule.h"

namespace mamba2::M2_KERNEL_NS {

constexpr int kPickThreads = 512;  // threads per row on the device
constexpr int kPickMaxWarps = 32;  // shared arrays are sized for blocks of up to 1024 threads
constexpr int kPickSplits = 8;     // sub-windows per search pass (a power of two)
constexpr int kPickPool = 2048;    // window elements compacted into shared memory
constexpr int kPickRank = 64;      // window elements ranked directly

// ---- block primitives ------------------------------------------------------------------------

// Reduction over the block, every thread gets the result; the warps' partials are combined in
// warp order, so sums are deterministic. Every thread of the block must call it.
template <typename T, typename Op>
M2_DEVICE T BlockAllReduce(T v, Op op) {
  __shared__ T partial[kPickMaxWarps];
  __shared__ T result;
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  v = WarpAllReduce(v, op);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    T r = partial[0];
    for (int w = 1; w < n_warps; ++w) r = op(r, partial[w]);
    result = r;
  }
  __syncthreads();
  return result;
}

// Exclusive prefix sum over the threads in index order, plus the total: each warp's values
// are summed sequentially by its lane 0, then the warp totals by thread 0.
template <typename T>
M2_DEVICE T BlockExclusiveScan(T v, T& total) {
  __shared__ T vals[kPickMaxWarps * 32];
  __shared__ T base[kPickMaxWarps + 1];
  const int t = int(threadIdx.x), lane = t & 31, warp = t >> 5, n_warps = int(blockDim.x) >> 5;
  vals[t] = v;
  __syncthreads();
  if (lane == 0) {
    T acc = T(0);
    for (int l = 0; l < 32; ++l) {
      const T x = vals[t + l];
      vals[t + l] = acc;
      acc = acc + x;
    }
    base[warp] = acc;
  }
  __syncthreads();
  if (t == 0) {
    T acc = T(0);
    for (int w = 0; w < n_warps; ++w) {
      const T x = base[w];
      base[w] = acc;
      acc = acc + x;
    }
    base[n_warps] = acc;
  }
  __syncthreads();
  total = base[n_warps];
  return base[warp] + vals[t];
}

// One exchange of the warp reduce-scatter below: lanes with bit `kOff` set keep the upper half
// of the kCount values they carry and send the lower half, their partners the reverse. Written
// as a template recursion so that every array index is a constant (registers, not local memory).
template <int kCount, int kOff, int N>
M2_DEVICE void PickReduceScatter(double (&v)[N], int lane) {
  if constexpr (kOff > 0) {
    if constexpr (kCount >= 2) {
      constexpr int kHalf = kCount / 2;
      const bool upper = (lane & kOff) != 0;
      M2_UNROLL
      for (int i = 0; i < kHalf; ++i) {
        const double send = upper ? v[i] : v[i + kHalf];
        const double keep = upper ? v[i + kHalf] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, kOff);
      }
      PickReduceScatter<kHalf, kOff / 2>(v, lane);
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], kOff);
      PickReduceScatter<1, kOff / 2>(v, lane);
    }
  }
}

// Sums v[0, N) over the block (N a power of two <= 32) and returns the totals (in shared
// memory: valid until the next call). The warp step is a reduce-scatter (N shuffles in all
// instead of 5N): lane l ends with the warp's total of value l / (32 / N). Warp totals are
// added in warp order, so the sums are deterministic. v is clobbered.
template <int N>
M2_DEVICE const double* BlockSumVec(double (&v)[N]) {
  static_assert(N >= 2 && N <= 32 && (N & (N - 1)) == 0, "N must be a power of two in [2, 32]");
  __shared__ double partial[kPickMaxWarps][N];
  __shared__ double sum[N];
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, n_warps = int(blockDim.x) >> 5;
  PickReduceScatter<N, 16>(v, lane);
  constexpr int kLanesPerValue = 32 / N;
  if (lane % kLanesPerValue == 0) partial[warp][lane / kLanesPerValue] = v[0];
  __syncthreads();
  if (int(threadIdx.x) < N) {
    double s = 0.0;
    for (int w = 0; w < n_warps; ++w) s += partial[w][threadIdx.x];
    sum[threadIdx.x] = s;
  }
  __syncthreads();
  return sum;
}

// a[j] for a runtime j without indexing a register array (which would go to local memory).
template <typename T, int N>
M2_DEVICE T PickAt(const T (&a)[N], int j) {
  T r = a[0];
  M2_UNROLL
  for (int i = 1; i < N; ++i)
    if (i == j) r = a[i];
  return r;
}

// ---- one row ---------------------------------------------------------------------------------

struct PickRow {
  const float* logits;
  int n;
  float temperature;
  float m;  // max x

  M2_DEVICE uint32_t Key(int i) const { return PickKey(logits[i]); }
  M2_DEVICE float X(float logit) const {
    const float x = logit / temperature;
    return x != x ? BitsToF32(0xff800000u) : x;  // NaN -> -inf
  }
  M2_DEVICE double Weight(int i) const { return exp(double(X(logits[i])) - double(m)); }
};

// The x key of the logit with key c.
M2_DEVICE uint32_t PickXKey(uint32_t c, float temperature) { return PickKey(PickKeyValue(c) / temperature); }

// The smallest logit key c in [kPickKeyNegInf, hi] with pred(c), for a pred that is monotone
// (false ... false true ... true) and true at hi. A scalar binary search over key values, not
// elements: it turns a threshold on x into one on logit keys, ties created by the division
// included.
template <typename Pred>
M2_DEVICE uint32_t PickLowestKey(uint32_t hi, Pred pred) {
  uint32_t lo = kPickKeyNegInf;
  if (pred(lo)) return lo;
  while (hi - lo > 1) {  // pred(lo) false, pred(hi) true
    const uint32_t mid = lo + (hi - lo) / 2;
    if (pred(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

struct PickXAtLeast {
  float temperature;
  uint32_t x_key;
  M2_DEVICE bool operator()(uint32_t c) const { return PickXKey(c, temperature) >= x_key; }
};

struct PickLogWeightAtLeast {
  float temperature, m;
  double log_w;
  M2_DEVICE bool operator()(uint32_t c) const {
    return double(PickKeyValue(c) / temperature) - double(m) >= log_w;
  }
};

// Sub-window boundaries b[0] = lo <= b[1] <= ... < hi. Duplicates are harmless (an empty
// sub-window is never chosen), which keeps the arrays free of runtime indexing.
M2_DEVICE void PickEvenSplits(uint32_t lo, uint32_t hi, uint32_t (&b)[kPickSplits]) {
  M2_UNROLL
  for (int j = 0; j < kPickSplits; ++j) b[j] = lo + uint32_t((uint64_t(hi - lo) * uint64_t(j)) / kPickSplits);
}

// First pass of a search: logits cluster far below the max, so split by distance from it in
// units of the temperature (x = logit / T), where top-k/top-p cuts usually fall.
M2_DEVICE void PickMaxSplits(float l_max, float temperature, uint32_t lo, uint32_t hi,
                             uint32_t (&b)[kPickSplits]) {
  const float dist[kPickSplits - 1] = {32.0f, 16.0f, 10.0f, 7.0f, 5.0f, 3.0f, 1.5f};
  b[0] = lo;
  M2_UNROLL
  for (int j = 1; j < kPickSplits; ++j) {
    uint32_t k = PickKey(l_max - dist[j - 1] * temperature);
    k = k < b[j - 1] ? b[j - 1] : k;
    b[j] = k > hi ? hi : k;
  }
}

// One pass over the row: for keys in [lo, hi), v = 1 (kMass false) or the weight, summed per
// sub-window boundary (sums over keys >= b[j]) and counted. Returns the block totals: [0, S)
// the sums, [S, 2S) the counts; my_count gets this thread's counts.
template <bool kMass>
M2_DEVICE const double* PickRowPass(const PickRow& r, uint32_t lo, uint32_t hi, const uint32_t (&b)[kPickSplits],
                                    int (&my_count)[kPickSplits]) {
  double acc[2 * kPickSplits];
  M2_UNROLL
  for (int j = 0; j < kPickSplits; ++j) {
    acc[j] = 0.0;
    my_count[j] = 0;
  }
  for (int i = int(threadIdx.x); i < r.n; i += int(blockDim.x)) {
    const uint32_t key = r.Key(i);
    if (key < lo || key >= hi) continue;
    const double w = kMass ? r.Weight(i) : 0.0;
    M2_UNROLL
    for (int j = 0; j < kPickSplits; ++j)
      if (key >= b[j]) {
        if (kMass) acc[j] += w;  // counts need no double adds: taken from my_count below
        ++my_count[j];
      }
  }
  M2_UNROLL
  for (int j = 0; j < kPickSplits; ++j) {
    acc[kPickSplits + j] = double(my_count[j]);
    if (!kMass) acc[j] = acc[kPickSplits + j];
  }
  return BlockSumVec<2 * kPickSplits>(acc);
}

// The same over the pool's elements (all of them, stale ones outside [lo, hi) are skipped).
template <bool kMass>
M2_DEVICE const double* PickPoolPass(const uint32_t* pool_key, const double* pool_w, int n_pool, uint32_t lo,
                                     uint32_t hi, const uint32_t (&b)[kPickSplits]) {
  double acc[2 * kPickSplits];
  M2_UNROLL
  for (int j = 0; j < 2 * kPickSplits; ++j) acc[j] = 0.0;
  for (int e = int(threadIdx.x); e < n_pool; e += int(blockDim.x)) {
    const uint32_t key = pool_key[e];
    if (key < lo || key >= hi) continue;
    const double v = kMass ? pool_w[e] : 1.0;
    M2_UNROLL
    for (int j = 0; j < kPickSplits; ++j)
      if (key >= b[j]) {
        acc[j] += v;
        acc[kPickSplits + j] += 1.0;
      }
  }
  return BlockSumVec<2 * kPickSplits>(acc);
}

// The search state: the answer c lies in [lo, hi); `above` is the sum of v over keys >= hi.
struct PickWindow {
  uint32_t lo, hi;
  double above;
  double count;  // elements in [lo, hi)
  int split;     // the sub-window taken
};

// The largest boundary j with above + sum(keys >= b[j]) >= goal (0 if none: rounding), and the
// window it leaves. Identical in every thread (the sums come from shared memory).
M2_DEVICE PickWindow PickChoose(const double* tot, const uint32_t (&b)[kPickSplits], uint32_t hi, double above,
                                double goal) {
  int j = 0;
  for (int s = 1; s < kPickSplits; ++s)
    if (above + tot[s] >= goal) j = s;
  PickWindow w;
  w.split = j;
  w.lo = PickAt(b, j);
  const bool last = j + 1 >= kPickSplits;
  w.hi = last ? hi : PickAt(b, j + 1);
  w.above = above + (last ? 0.0 : tot[j + 1]);
  w.count = tot[kPickSplits + j] - (last ? 0.0 : tot[kPickSplits + j + 1]);
  return w;
}

// Writes the row's elements with keys in [lo, hi) (and their weights) into the pool, in a
// deterministic order. my_count: how many of them this thread's ids hold.
template <bool kMass>
M2_DEVICE void PickCompact(const PickRow& r, uint32_t lo, uint32_t hi, int my_count, uint32_t* pool_key,
                           double* pool_w) {
  int total;
  int pos = BlockExclusiveScan<int>(my_count, total);
  for (int i = int(threadIdx.x); i < r.n; i += int(blockDim.x)) {
    const uint32_t key = r.Key(i);
    if (key < lo || key >= hi) continue;
    pool_key[pos] = key;
    if (kMass) pool_w[pos] = r.Weight(i);
    ++pos;
  }
  __syncthreads();
}

// Ranks the <= kPickRank pool elements in [lo, hi) directly: each computes G(its key), the
// answer is the largest qualifying key (lo when none does).
template <bool kMass>
M2_DEVICE uint32_t PickRankFinish(const uint32_t* pool_key, const double* pool_w, int n_pool, uint32_t lo,
                                  uint32_t hi, double above, double goal) {
  __shared__ uint32_t rank_key[kPickRank];
  __shared__ double rank_w[kPickRank];
  int mine = 0;
  for (int e = int(threadIdx.x); e < n_pool; e += int(blockDim.x)) mine += pool_key[e] >= lo && pool_key[e] < hi;
  int n_rank;
  int pos = BlockExclusiveScan<int>(mine, n_rank);
  for (int e = int(threadIdx.x); e < n_pool; e += int(blockDim.x)) {
    const uint32_t key = pool_key[e];
    if (key < lo || key >= hi) continue;
    if (pos < kPickRank) {
      rank_key[pos] = key;
      rank_w[pos] = kMass ? pool_w[e] : 1.0;
    }
    ++pos;
  }
  __syncthreads();
  if (n_rank > kPickRank) n_rank = kPickRank;  // cannot happen: the caller counted them
  uint32_t best = lo;
  for (int e = int(threadIdx.x); e < n_rank; e += int(blockDim.x)) {
    const uint32_t c = rank_key[e];
    double g = above;
    for (int f = 0; f < n_rank; ++f)
      if (rank_key[f] >= c) g += rank_w[f];
    if (g >= goal && c > best) best = c;
  }
  return BlockAllReduce(best, MaxOp());
}

// The largest key c in [lo, hi) with G(c) >= goal. kMass false: G counts the keys >= c and
// goal_or_scale is the goal; kMass true: G is their mass and the goal is goal_or_scale times the
// mass of all keys >= lo (the first pass computes it).
template <bool kMass>
M2_DEVICE uint32_t PickSearch(const PickRow& r, float l_max, uint32_t lo, uint32_t hi, double goal_or_scale,
                              uint32_t* pool_key, double* pool_w) {
  double above = 0.0, goal = kMass ? 0.0 : goal_or_scale;
  bool first = true;
  while (hi - lo > 1) {
    uint32_t b[kPickSplits];
    if (first) PickMaxSplits(l_max, r.temperature, lo, hi, b);
    else PickEvenSplits(lo, hi, b);
    int my_count[kPickSplits];
    const double* tot = PickRowPass<kMass>(r, lo, hi, b, my_count);
    if (kMass && first) goal = goal_or_scale * tot[0];
    const PickWindow w = PickChoose(tot, b, hi, above, goal);
    const bool progress = w.lo != lo || w.hi != hi;
    first = false;
    if (!progress) continue;  // the max-relative splits missed the window: split it evenly
    const int mine = PickAt(my_count, w.split) - (w.split + 1 < kPickSplits ? PickAt(my_count, w.split + 1) : 0);
    lo = w.lo;
    hi = w.hi;
    above = w.above;
    if (hi - lo <= 1 || w.count > kPickPool) continue;

    // The window fits in shared memory: finish there.
    const int n_pool = int(w.count);
    PickCompact<kMass>(r, lo, hi, mine, pool_key, pool_w);
    double count = w.count;
    while (hi - lo > 1 && count > kPickRank) {
      PickEvenSplits(lo, hi, b);
      const double* ptot = PickPoolPass<kMass>(pool_key, pool_w, n_pool, lo, hi, b);
      const PickWindow pw = PickChoose(ptot, b, hi, above, goal);
      lo = pw.lo;
      hi = pw.hi;
      above = pw.above;
      count = pw.count;
    }
    if (hi - lo <= 1) return lo;
    return PickRankFinish<kMass>(pool_key, pool_w, n_pool, lo, hi, above, goal);
  }
  return lo;
}

// The weight an id contributes to the pick: 0 unless kept (key >= key_min and w >= min_p).
struct PickKept {
  const PickRow* r;
  uint32_t key_min;  // kept needs key >= key_min
  double min_p;
  M2_DEVICE double Weight(int i) const {
    if (r->Key(i) < key_min) return 0.0;
    const double w = r->Weight(i);
    return w >= min_p ? w : 0.0;
  }
};

__global__ void PickKernel(const float* logits, int64_t ld, PickParams p, const uint64_t* draw, int32_t* out_ids) {
  M2_GRID_DEPENDENCY();
  __shared__ uint32_t pool_key[kPickPool];
  __shared__ double pool_w[kPickPool];
  __shared__ double warp_mass[kPickMaxWarps];
  __shared__ int warp_last[kPickMaxWarps];

  const int n = p.n_valid;
  const float* row = logits + int64_t(blockIdx.x) * ld;
  const int t = int(threadIdx.x), lane = t & 31, warp = t >> 5, n_warps = int(blockDim.x) >> 5;

  // 1. argmax of the logit keys, lowest id on ties: (key << 32) | ~id is largest there.
  uint64_t best = 0;
  for (int i = t; i < n; i += int(blockDim.x)) {
    const uint64_t v = (uint64_t(PickKey(row[i])) << 32) | uint64_t(~uint32_t(i));
    best = v > best ? v : best;
  }
  best = BlockAllReduce(best, MaxOp());
  const uint32_t key_max = uint32_t(best >> 32);
  const int id_max = int(~uint32_t(best));
  const float temperature = p.temperature;
  if (temperature == 0.0f) {
    if (t == 0) out_ids[blockIdx.x] = id_max;
    return;
  }
  const float l_max = PickKeyValue(key_max);
  const float m_raw = l_max / temperature;
  const uint32_t m_key = PickKey(m_raw);
  if (m_key == kPickKeyNegInf || m_key == kPickKeyPosInf) {
    // No proper distribution: the lowest id with x == m (m = -inf: every x is -inf, id 0).
    int first = m_key == kPickKeyNegInf ? 0 : n;
    if (m_key == kPickKeyPosInf) {
      const uint32_t lowest = PickLowestKey(key_max, PickXAtLeast{temperature, kPickKeyPosInf});
      for (int i = t; i < n; i += int(blockDim.x))
        if (PickKey(row[i]) >= lowest && i < first) first = i;
      first = BlockAllReduce(first, MinOp());
    }
    if (t == 0) out_ids[blockIdx.x] = first;
    return;
  }
  const PickRow r{row, n, temperature, m_raw};

  // 2. thresholds, as logit keys: kept = key >= cut.
  uint32_t cut = 0;
  if (p.top_k > 0 && p.top_k < n) {
    const uint32_t c = PickSearch<false>(r, l_max, 0, key_max + 1, double(p.top_k), pool_key, pool_w);
    cut = PickLowestKey(c, PickXAtLeast{temperature, PickXKey(c, temperature)});  // whole tie in x
  }
  if (p.top_p < 1.0f) {
    const uint32_t c = PickSearch<true>(r, l_max, cut, key_max + 1, double(p.top_p), pool_key, pool_w);
    cut = PickLowestKey(c, PickXAtLeast{temperature, PickXKey(c, temperature)});
  }
  const double min_p = p.min_p;
  if (min_p > 0.0) {
    // w < min_p for sure below this key (exp and log are within an ulp or so; the slack is 1e-6),
    // so the exps there can be skipped.
    const uint32_t k = PickLowestKey(key_max, PickLogWeightAtLeast{temperature, m_raw, log(min_p) - 1e-6});
    cut = k > cut ? k : cut;
  }
  const PickKept kept{&r, cut, min_p};

  // 3a. each warp: kept mass of its chunk and its last kept id of nonzero weight.
  const int chunk = int(((int64_t(n) + n_warps - 1) / n_warps + 31) / 32 * 32);
  {
    const int begin = warp * chunk, end = begin + chunk < n ? begin + chunk : n;
    double mass = 0.0;
    int last = -1;
    for (int i = begin + lane; i < end; i += 32) {
      const double w = kept.Weight(i);
      if (w > 0.0) {
        mass += w;
        last = i;
      }
    }
    mass = WarpAllReduce(mass, SumOp());
    last = WarpAllReduce(last, MaxOp());
    if (lane == 0) {
      warp_mass[warp] = mass;
      warp_last[warp] = last;
    }
  }
  __syncthreads();
  double total = 0.0;
  int last_all = -1;
  for (int w = 0; w < n_warps; ++w) {
    total += warp_mass[w];
    last_all = warp_last[w] > last_all ? warp_last[w] : last_all;
  }
  const double u = PickUniform(p.seed, *draw, blockIdx.x);
  const double target = u * total;
  int owner = -1;
  double owner_base = 0.0;
  {
    double base = 0.0;
    for (int w = 0; w < n_warps && owner < 0; ++w) {
      const double next = base + warp_mass[w];
      if (warp_mass[w] > 0.0 && target < next) {
        owner = w;
        owner_base = base;
      }
      base = next;
    }
  }
  if (owner < 0) {  // u * total rounded up to total
    if (t == 0) out_ids[blockIdx.x] = last_all;
    return;
  }

  // 3b. the owner's chunk, split into contiguous per-thread ranges.
  const int cbegin = owner * chunk, cend = cbegin + chunk < n ? cbegin + chunk : n;
  const int per = (cend - cbegin + int(blockDim.x) - 1) / int(blockDim.x);
  const int begin = cbegin + t * per, end = begin + per < cend ? begin + per : cend;
  double mine = 0.0;
  int my_first = n;
  for (int i = begin; i < end; ++i) {
    const double w = kept.Weight(i);
    if (w > 0.0) {
      mine += w;
      my_first = i < my_first ? i : my_first;
    }
  }
  double chunk_total;
  const double base = owner_base + BlockExclusiveScan(mine, chunk_total);
  int cand = n;
  if (mine > 0.0) {
    if (base > target) {
      cand = my_first;
    } else if (base + mine > target) {
      double c = 0.0;
      for (int i = begin; i < end; ++i) {
        const double w = kept.Weight(i);
        if (w <= 0.0) continue;
        c += w;
        if (base + c > target) {
          cand = i;
          break;
        }
      }
    }
  }
  cand = BlockAllReduce(cand, MinOp());
  if (t == 0) out_ids[blockIdx.x] = cand < n ? cand : warp_last[owner];
}

__global__ void PickAdvanceKernel(uint64_t* draw) {
  M2_GRID_DEPENDENCY();
  ++*draw;
}

// Block size is a parameter for the emulator test (small blocks run faster there).
inline void LaunchPickWith(int threads, const float* logits, int64_t ld, int64_t n_rows, const PickParams& p,
                           uint64_t* draw, int32_t* out_ids, cudaStream_t stream) {
  M2_KCHECK(threads >= 32 && threads <= 32 * kPickMaxWarps && threads % 32 == 0);
  M2_KCHECK(p.n_valid > 0 && n_rows >= 0 && n_rows <= 0x7fffffff);
  if (n_rows > 0)
    M2_LAUNCH(PickKernel, dim3(unsigned(n_rows)), dim3(unsigned(threads)), stream, logits, ld, p,
              static_cast<const uint64_t*>(draw), out_ids);
  M2_LAUNCH(PickAdvanceKernel, dim3(1), dim3(1), stream, draw);
}

void LaunchPick(const float* logits, int64_t ld, int64_t n_rows, const PickParams& p, uint64_t* draw,
                int32_t* out_ids, cudaStream_t stream) {
  LaunchPickWith(kPickThreads, logits, ld, n_rows, p, draw, out_ids, stream);
}

}  // namespace mamba2::M2_KERNEL_NS
