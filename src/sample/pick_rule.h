// The token-pick rule that runs on the device (backend/cuda/sample.cuh) so that a decode step
// only hands a token id to the host: its parameters, its random numbers, and a plain host
// reference (pick_rule.cpp) the kernel is tested against. The inline helpers here are compiled
// by nvcc (C++17, host and device) as well as by the host compiler.
//
// The rule, over candidates ids [0, n_valid) of one logits row, for one uniform u in [0, 1):
//  - temperature == 0: argmax of the logits, lowest id on ties, NaN counting as -inf (all
//    -inf/NaN: id 0).
//  - else x_i = logit_i / temperature in float, NaN -> -inf; m = max x. If m is not finite
//    (all -inf, or an x of +inf) the pick is the lowest id with x == m. Else the weights are
//    w_i = exp(double(x_i) - double(m)) in double (host std::exp and CUDA's double exp agree to
//    about an ulp; float expf would not), and these steps narrow the kept set, in this order:
//  - top-k (0 < top_k < n_valid): keep x_i >= the top_k-th largest x; every tie at that value
//    is kept, so more than top_k ids can survive.
//  - top-p (top_p < 1): with K the kept mass, keep x_i >= t for the largest t such that the kept
//    mass with x >= t is >= top_p * K: the shortest prefix of the kept ids sorted by x that
//    reaches top_p of the mass, extended to every tie of its last value.
//  - min-p (min_p > 0): keep w_i >= min_p (w of the max is 1).
//  - pick: S = kept mass (double), target = u * S; walking the kept ids in ASCENDING ID order and
//    accumulating w, the first id whose cumulative sum exceeds target; if rounding leaves none,
//    the last kept id of nonzero weight.
// The steps follow the host Sampler's chain (steps.h: temperature, top_k, top_p, min_p), with
// these differences: the host's top-k and top-p cut ties by id (exactly top_k ids; the nucleus
// as a prefix of the (logit desc, id asc) order) where this rule keeps the whole tie; the host
// walks the kept candidates in rank order where this rule walks ids in ascending order (same
// distribution, different id for the same u); the host draws u from a mt19937_64 stream where
// this rule takes PickUniform(seed, draw, row); repetition penalty has no counterpart (the
// device keeps no history). With distinct logits the kept sets are the same.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/float_bits.h"

#if !defined(__CUDACC__)
#include "core/status.h"
#include "sample/sampler.h"
#endif

namespace mamba2 {

// Trivially copyable: passed by value into the kernel.
struct PickParams {
  float temperature = 1.0f;  // 0 -> greedy argmax
  int32_t top_k = 0;         // 0 -> off
  float top_p = 1.0f;        // 1 -> off
  float min_p = 0.0f;        // 0 -> off
  int32_t n_valid = 0;       // candidates are ids [0, n_valid); rows may be longer (padded vocab)
  uint64_t seed = 0;
};

// splitmix64's finaliser: a bijection of 64-bit words with good avalanche.
M2_HOST_DEVICE uint64_t PickMix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 53 random bits for draw number `draw` of row `row`. Counter-based (no
// state to carry), integer-only, so host and device give bit-identical values. Each stage is a
// bijection of its input, so for one seed distinct draws give distinct intermediate words.
M2_HOST_DEVICE double PickUniform(uint64_t seed, uint64_t draw, uint64_t row) {
  uint64_t h = PickMix64(seed + 0x9e3779b97f4a7c15ull);
  h = PickMix64(h ^ (draw + 0x6a09e667f3bcc909ull));
  h = PickMix64(h ^ (row + 0xbb67ae8584caa73bull));
  return double(h >> 11) * 0x1.0p-53;
}

// Order-preserving uint32 key of a float: a < b <=> key(a) < key(b), -0 and +0 share the key of
// +0 (they compare equal), NaN gets the key of -inf.
M2_HOST_DEVICE uint32_t PickKey(float x) {
  uint32_t u = F32ToBits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) u = 0xff800000u;  // NaN -> -inf
  if (u == 0x80000000u) u = 0u;                          // -0 -> +0
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The float of a key (inverse of PickKey on the keys it produces).
M2_HOST_DEVICE float PickKeyValue(uint32_t k) { return BitsToF32((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k); }

constexpr uint32_t kPickKeyNegInf = 0x007fffffu;  // PickKey(-inf)
constexpr uint32_t kPickKeyPosInf = 0xff800000u;  // PickKey(+inf)

#if !defined(__CUDACC__)

// The generator's SamplingParams as PickParams: an error if they are invalid
// (ValidateSamplingParams) or ask for a repetition penalty (the device rule keeps no history;
// a penalty with repeat_last_n == 0 is off in the Sampler too and is accepted), or if
// n_valid <= 0. SamplingParams::n_valid is not used (it may be -1 = all rows): the caller
// passes the row's candidate count.
Result<PickParams> PickParamsFrom(const SamplingParams& s, int32_t n_valid);

// The host reference: the id the rule picks from logits[0, p.n_valid) for uniform u. Written
// with a sort and plain loops, independently of the kernel's search. `margin` (optional): how
// close any of the rule's floating-point decisions came to going the other way, relative to
// the quantity compared: the top-p cut (|prefix mass - top_p*K| / K on either side of the cut),
// min-p (|w - min_p| / min_p over the ids it judged), and the pick (distance of target to the
// cumulative sums around the picked id, / S). A different summation order (the kernel's) can
// only change the pick where margin is tiny (~1e-13 or less); +inf when no such decision was
// made (greedy, a non-finite max).
int32_t PickReference(const float* logits, const PickParams& p, double u, double* margin = nullptr);

#endif

}  // namespace mamba2
