// Subnormal floats flushed to zero for the span of a scope, on the calling thread only.
//
// The scan's decays exp(dt*A) and exp(Acum_l - Acum_s) underflow into the subnormal range over
// a chunk, and so do recurrent states left to decay. Intel cores take a microcode assist on
// every instruction that reads or writes a subnormal: on a Xeon (Sapphire Rapids) the 130m
// prefill's SSD scan ran 3.7x slower with them (BENCHMARKS.md). Values below 1.2e-38 change
// no logit at float precision, so the cpu backend's scan and state update run with
// flush-to-zero (FTZ: results) and denormals-are-zero (DAZ: operands). The previous mode is
// restored on exit, so the caller's threads keep whatever mode they had.
#pragma once

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace mamba2::cpu {

class FlushDenormals {
 public:
#if defined(__SSE__) || defined(__x86_64__)
  static constexpr unsigned kFtzDaz = 0x8040;  // MXCSR bit 15 (FTZ) | bit 6 (DAZ)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtzDaz); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#else
  FlushDenormals() {}  // other CPUs: subnormals kept (arm64 handles them at full speed)
#endif

 public:
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;
};

}  // namespace mamba2::cpu
