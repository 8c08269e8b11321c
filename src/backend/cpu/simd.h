// The few fp32 SIMD operations the cpu kernels need, over the widest vector the build targets
// (the cpu backend is compiled with -march=native): AVX-512, AVX2+FMA, or scalar.
// Kernels are written once against Vf and kLanes.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

#if defined(__AVX512F__) || defined(__AVX2__)
// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized on their own _mm512_undefined_* values
// (GCC bug 105593); the warning is attributed to the header's lines, so silence it there only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace mamba2::cpu {

#if defined(__AVX512F__)

constexpr int kLanes = 16;
struct Vf {
  __m512 v;
};
inline Vf Zero() { return {_mm512_setzero_ps()}; }
inline Vf Set1(float a) { return {_mm512_set1_ps(a)}; }
inline Vf Load(const float* p) { return {_mm512_loadu_ps(p)}; }
inline void Store(float* p, Vf a) { _mm512_storeu_ps(p, a.v); }
inline __mmask16 TailMask(int n) { return __mmask16((1u << n) - 1u); }
// n < kLanes elements; the rest read as 0 and are not written.
inline Vf LoadN(const float* p, int n) { return {_mm512_maskz_loadu_ps(TailMask(n), p)}; }
inline void StoreN(float* p, Vf a, int n) { _mm512_mask_storeu_ps(p, TailMask(n), a.v); }
inline Vf operator+(Vf a, Vf b) { return {_mm512_add_ps(a.v, b.v)}; }
inline Vf operator-(Vf a, Vf b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline Vf operator*(Vf a, Vf b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline Vf operator/(Vf a, Vf b) { return {_mm512_div_ps(a.v, b.v)}; }
inline Vf Fma(Vf a, Vf b, Vf c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }  // a*b + c
inline Vf Min(Vf a, Vf b) { return {_mm512_min_ps(a.v, b.v)}; }
inline Vf Max(Vf a, Vf b) { return {_mm512_max_ps(a.v, b.v)}; }
// (Not _mm512_reduce_add_ps: GCC 12 warns spuriously about it in every caller.)
inline float ReduceAdd(Vf a) {
  __m512 t = _mm512_add_ps(a.v, _mm512_shuffle_f32x4(a.v, a.v, _MM_SHUFFLE(1, 0, 3, 2)));
  t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(2, 3, 0, 1)));
  __m128 s = _mm512_castps512_ps128(t);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x, about 1 ulp; scalef gives correct underflow to 0 and overflow to inf.
inline Vf Exp(Vf x) {
  const __m512 xc = _mm512_max_ps(_mm512_min_ps(x.v, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return {_mm512_scalef_ps(p, n)};
}

// 16 bf16 / f16 values widened to f32 (exact).
inline Vf LoadBf16(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))};
}
inline Vf LoadF16(const uint16_t* p) {
  return {_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)))};
}
// 2 kLanes bf16 values widened to f32 (exact): the even-indexed ones (0, 2, ...) and the odd ones.
inline void LoadBf16EvenOdd(const uint16_t* p, Vf& even, Vf& odd) {
  const __m512i w = _mm512_loadu_si512(p);
  even = {_mm512_castsi512_ps(_mm512_slli_epi32(w, 16))};
  odd = {_mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(int(0xFFFF0000u))))};
}
// 16 f32 rounded to bf16, nearest even.
inline void StoreBf16(uint16_t* p, Vf a) {
#if defined(__AVX512BF16__)
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(a.v)));
#else
  __m512i u = _mm512_castps_si512(a.v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  u = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
#endif
}

#elif defined(__AVX2__) && defined(__FMA__)

constexpr int kLanes = 8;
struct Vf {
  __m256 v;
};
inline Vf Zero() { return {_mm256_setzero_ps()}; }
inline Vf Set1(float a) { return {_mm256_set1_ps(a)}; }
inline Vf Load(const float* p) { return {_mm256_loadu_ps(p)}; }
inline void Store(float* p, Vf a) { _mm256_storeu_ps(p, a.v); }
inline __m256i TailMask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline Vf LoadN(const float* p, int n) { return {_mm256_maskload_ps(p, TailMask(n))}; }
inline void StoreN(float* p, Vf a, int n) { _mm256_maskstore_ps(p, TailMask(n), a.v); }
inline Vf operator+(Vf a, Vf b) { return {_mm256_add_ps(a.v, b.v)}; }
inline Vf operator-(Vf a, Vf b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline Vf operator*(Vf a, Vf b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline Vf operator/(Vf a, Vf b) { return {_mm256_div_ps(a.v, b.v)}; }
inline Vf Fma(Vf a, Vf b, Vf c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline Vf Min(Vf a, Vf b) { return {_mm256_min_ps(a.v, b.v)}; }
inline Vf Max(Vf a, Vf b) { return {_mm256_max_ps(a.v, b.v)}; }
inline float ReduceAdd(Vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x, about 1 ulp for x in [-87.3, 88.7]; 0 below (true values there are subnormal).
inline Vf Exp(Vf x) {
  const __m256 xc = _mm256_max_ps(_mm256_min_ps(x.v, _mm256_set1_ps(88.3f)), _mm256_set1_ps(-87.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 res = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  res = _mm256_blendv_ps(res, _mm256_setzero_ps(), _mm256_cmp_ps(x.v, _mm256_set1_ps(-87.3f), _CMP_LT_OQ));
  res = _mm256_blendv_ps(res, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x.v, _mm256_set1_ps(88.3f), _CMP_GT_OQ));
  return {res};
}

inline Vf LoadBf16(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))};
}
inline void LoadBf16EvenOdd(const uint16_t* p, Vf& even, Vf& odd) {
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  even = {_mm256_castsi256_ps(_mm256_slli_epi32(w, 16))};
  odd = {_mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32(int(0xFFFF0000u))))};
}
#if defined(__F16C__)
inline Vf LoadF16(const uint16_t* p) { return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))}; }
#else
inline Vf LoadF16(const uint16_t* p) {
  alignas(32) float f[8];
  for (int i = 0; i < 8; ++i) f[i] = F16ToF32(p[i]);
  return {_mm256_load_ps(f)};
}
#endif
inline void StoreBf16(uint16_t* p, Vf a) {
  __m256i u = _mm256_castps_si256(a.v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  u = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
  // packus works within 128-bit lanes: pack, then gather the two lanes' low halves.
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(u, u), 0x08);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
}

#else

constexpr int kLanes = 1;
struct Vf {
  float v;
};
inline Vf Zero() { return {0.0f}; }
inline Vf Set1(float a) { return {a}; }
inline Vf Load(const float* p) { return {*p}; }
inline void Store(float* p, Vf a) { *p = a.v; }
inline Vf LoadN(const float* p, int n) { return {n > 0 ? *p : 0.0f}; }
inline void StoreN(float* p, Vf a, int n) {
  if (n > 0) *p = a.v;
}
inline Vf operator+(Vf a, Vf b) { return {a.v + b.v}; }
inline Vf operator-(Vf a, Vf b) { return {a.v - b.v}; }
inline Vf operator*(Vf a, Vf b) { return {a.v * b.v}; }
inline Vf operator/(Vf a, Vf b) { return {a.v / b.v}; }
inline Vf Fma(Vf a, Vf b, Vf c) { return {std::fma(a.v, b.v, c.v)}; }
inline Vf Min(Vf a, Vf b) { return {a.v < b.v ? a.v : b.v}; }
inline Vf Max(Vf a, Vf b) { return {a.v > b.v ? a.v : b.v}; }
inline float ReduceAdd(Vf a) { return a.v; }
inline Vf Exp(Vf x) { return {std::exp(x.v)}; }
inline Vf LoadBf16(const uint16_t* p) { return {BF16ToF32(*p)}; }
inline void LoadBf16EvenOdd(const uint16_t* p, Vf& even, Vf& odd) {
  even = {BF16ToF32(p[0])};
  odd = {BF16ToF32(p[1])};
}
inline Vf LoadF16(const uint16_t* p) { return {F16ToF32(*p)}; }
inline void StoreBf16(uint16_t* p, Vf a) { *p = F32ToBF16(a.v); }

#endif

// A hint to bring the cache line holding p into all cache levels; never faults.
inline void Prefetch(const void* p) {
#if defined(__SSE__)
  _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
#else
  __builtin_prefetch(p);
#endif
}

// A hint to bring the cache line holding p into L2 (and L3), not L1; never faults.
inline void PrefetchL2(const void* p) {
#if defined(__SSE__)
  _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T1);
#else
  __builtin_prefetch(p, 0, 2);
#endif
}

// Prefetch into L2 of the 64-byte lines at p, p + 64, ... below p + bytes.
inline void PrefetchLinesL2(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) PrefetchL2(c + b);
}

// Whether streaming kernels (the GEMV's weights, the decode step's states) prefetch in software
// as well. On the Intel Xeon (AMX, 2 threads) a prefetch into L1 1 KB ahead first lifted 130m
// decode from 64.2-64.6 to 69.2-72.4 tok/s in bf16 (three alternated runs); prefetching into L2
// only, 4 KB ahead, lifted 2.7b bf16 decode again from 4.45-4.57 to 5.45-5.65 tok/s (65-67% ->
// 79-81% of the read bandwidth; f16 alike, f32 +2-4%): the L2's queue keeps more lines in flight
// than L1's fill buffers, and 1 KB was too close to cover the VM's memory latency (into L2, 4-16 KB
// ahead measured within 2% of each other; into L1, 2 KB ahead was 10% slower and 512 B 33% slower).
// On the AMD Zen 4 where the GEMV was first tuned, L1 prefetches 1 KB ahead measured ~25% slower,
// so other CPUs leave it to the hardware. The SSM decode step's states, 4 KB ahead into L2: 2.7b
// bf16, 12 steps, 92.7-97.4 -> 74.5-78.0 ms (three alternated runs; ~1% of the step). A pure hint:
// the results are the same bits either way.
// How far ahead those prefetches reach, in bytes.
constexpr int64_t kPrefetchAheadBytes = 4096;
inline bool PrefetchAhead() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool intel = __builtin_cpu_is("intel");
  return intel;
#else
  return false;
#endif
}

// Prefetch of every cache line of p[0, n), n >= 1.
inline void PrefetchSpan(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 64 / int64_t(sizeof(float))) Prefetch(p + i);
  Prefetch(p + n - 1);
}

// x * sigmoid(x), written so that large |x| gives x or -0 instead of NaN.
inline Vf Silu(Vf x) { return x / (Set1(1.0f) + Exp(Set1(0.0f) - x)); }

// Sum over i < n of a[i]*b[i], with four vector accumulators.
inline float Dot(const float* a, const float* b, int64_t n) {
  Vf s0 = Zero(), s1 = Zero(), s2 = Zero(), s3 = Zero();
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    s0 = Fma(Load(a + i), Load(b + i), s0);
    s1 = Fma(Load(a + i + kLanes), Load(b + i + kLanes), s1);
    s2 = Fma(Load(a + i + 2 * kLanes), Load(b + i + 2 * kLanes), s2);
    s3 = Fma(Load(a + i + 3 * kLanes), Load(b + i + 3 * kLanes), s3);
  }
  for (; i + kLanes <= n; i += kLanes) s0 = Fma(Load(a + i), Load(b + i), s0);
  if (i < n) s1 = Fma(LoadN(a + i, int(n - i)), LoadN(b + i, int(n - i)), s1);
  return ReduceAdd((s0 + s1) + (s2 + s3));
}

// y[i] += alpha * x[i]
inline void Axpy(float alpha, const float* x, float* y, int64_t n) {
  const Vf a = Set1(alpha);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) Store(y + i, Fma(a, Load(x + i), Load(y + i)));
  if (i < n) StoreN(y + i, Fma(a, LoadN(x + i, int(n - i)), LoadN(y + i, int(n - i))), int(n - i));
}

// Scalar e^x with the same kernel as the vector one (so a tail element matches its neighbours).
inline float ExpScalar(float x) {
  float tmp[kLanes] = {};
  tmp[0] = x;
  Store(tmp, Exp(Load(tmp)));
  return tmp[0];
}

// The first n < kLanes elements of a half-precision vector (the rest read as 0).
inline Vf LoadNBf16(const uint16_t* p, int n) {
  uint16_t tmp[kLanes] = {};
  std::memcpy(tmp, p, size_t(n) * sizeof(uint16_t));
  return LoadBf16(tmp);
}
inline Vf LoadNF16(const uint16_t* p, int n) {
  uint16_t tmp[kLanes] = {};
  std::memcpy(tmp, p, size_t(n) * sizeof(uint16_t));
  return LoadF16(tmp);
}
inline void StoreNBf16(uint16_t* p, Vf a, int n) {
  uint16_t tmp[kLanes];
  StoreBf16(tmp, a);
  std::memcpy(p, tmp, size_t(n) * sizeof(uint16_t));
}

// dst[i] = src[i] rounded to bf16 (nearest even), i < n.
inline void RoundToBf16(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) StoreBf16(dst + i, Load(src + i));
  if (i < n) StoreNBf16(dst + i, LoadN(src + i, int(n - i)), int(n - i));
}

}  // namespace mamba2::cpu
