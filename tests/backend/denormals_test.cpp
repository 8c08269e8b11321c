// FlushDenormals: subnormals flushed inside the scope, the caller's mode back after it; and the
// cpu scan, which uses it on the pool's threads and the caller's, leaves the caller's mode as it was.
#include <gtest/gtest.h>

#include "backend/cpu/denormals.h"
#include "backend/mixer_test_util.h"

namespace mamba2::testing {
namespace {

#if defined(__SSE__) || defined(__x86_64__)

// MXCSR's control bits (rounding, masks, FTZ, DAZ); bits 0-5 are sticky exception flags.
unsigned Control() { return _mm_getcsr() & ~0x3fu; }

float Product(float a, float b) {
  volatile float x = a, y = b;  // volatile: computed at run time, under the current MXCSR
  return x * y;
}

TEST(FlushDenormalsTest, FlushesSubnormalResultsAndOperandsInsideTheScopeOnly) {
  const unsigned before = Control();
  const float tiny = 1e-40f;  // subnormal
  ASSERT_GT(Product(1e-20f, 1e-20f), 0.0f);
  ASSERT_EQ(Product(tiny, 1.0f), tiny);
  {
    const cpu::FlushDenormals ftz;
    EXPECT_EQ(Product(1e-20f, 1e-20f), 0.0f);  // FTZ: a subnormal result is 0
    EXPECT_EQ(Product(tiny, 1.0f), 0.0f);      // DAZ: a subnormal operand reads as 0
    EXPECT_EQ(Product(1e-19f, 1e-19f), 1e-19f * 1e-19f);  // normal results untouched
  }
  EXPECT_EQ(Control(), before);
  EXPECT_GT(Product(1e-20f, 1e-20f), 0.0f);
}

TEST(FlushDenormalsTest, ScanLeavesTheCallersModeAsItWas) {
  // Strong decays: exp(dt*A) underflows, the case the flushing is for.
  const MixerData d = MakeMixerData({4, 64, 128, 2}, 2, 300, 5, true);
  const MixerData d1 = MakeMixerData({4, 64, 128, 2}, 3, 1, 6, true);
  for (const unsigned mode : {Control(), Control() | cpu::FlushDenormals::kFtzDaz}) {
    const unsigned saved = _mm_getcsr();
    _mm_setcsr(mode);
    for (int threads : {1, 2}) {
      const auto backend = MakeCpuBackend(threads);
      RunScan(*backend, d, true, 64);
      EXPECT_EQ(Control(), mode) << "after prefill, " << threads << " threads";
      RunScan(*backend, d1, false, 0);
      EXPECT_EQ(Control(), mode) << "after step, " << threads << " threads";
    }
    _mm_setcsr(saved);
  }
}

#endif

}  // namespace
}  // namespace mamba2::testing
