// A decode step allocates nothing: after the first steps have sized every buffer, Step() on
// the cpu backend (fp32 and bf16 modes) makes no heap allocation. Counted by replacing the
// global operator new for this test binary (counting only inside the measured window) and by
// glibc's heap statistics for allocations that bypass operator new.
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <new>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "model/mamba2_model.h"
#include "support/random_model.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_news{0};

void* CountedAlloc(size_t n, size_t align) {
  if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(size_t n) { return CountedAlloc(n, 0); }
void* operator new[](size_t n) { return CountedAlloc(n, 0); }
void* operator new(size_t n, std::align_val_t a) { return CountedAlloc(n, size_t(a)); }
void* operator new[](size_t n, std::align_val_t a) { return CountedAlloc(n, size_t(a)); }
// The nothrow forms too (std::stable_sort's temporary buffer uses them): every operator new of
// the binary must pair with these deletes, or a sanitizer build reports new/free mismatches.
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try { return CountedAlloc(n, 0); } catch (...) { return nullptr; }
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  try { return CountedAlloc(n, 0); } catch (...) { return nullptr; }
}
void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return CountedAlloc(n, size_t(a)); } catch (...) { return nullptr; }
}
void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return CountedAlloc(n, size_t(a)); } catch (...) { return nullptr; }
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace mamba2 {
namespace {

class DecodeAlloc : public ::testing::TestWithParam<CpuMatMul> {};

TEST_P(DecodeAlloc, StepAllocatesNothing) {
  testing::RandomModelSpec spec;
  spec.d_model = 128;
  spec.n_layer = 3;
  spec.d_state = 32;
  spec.head_dim = 32;
  spec.vocab_rows = 512;
  spec.dtype = DType::BF16;
  const std::string dir = testing::WriteRandomModel(spec);
  CpuBackendOptions o;
  o.n_threads = 2;
  o.matmul = GetParam();
  auto backend = MakeCpuBackend(o);
  auto model = Mamba2Model::Load(dir, backend.get());
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::vector<float> logits(size_t(spec.vocab_rows));
  const int32_t slot = 0;
  const std::vector<int32_t> prompt = {5, 17, 300, 2, 99, 64, 1, 8, 200, 31, 7};
  ASSERT_TRUE((*model)->Prefill(prompt, {&slot, 1}, LogitsMode::kLast, logits.data()).ok());
  int32_t tok = 3;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE((*model)->Step({&tok, 1}, {&slot, 1}, logits.data()).ok());

  // The counter itself sees an allocation.
  g_news = 0;
  g_counting = true;
  std::vector<int32_t>* probe = new std::vector<int32_t>(100, 1);
  g_counting = false;
  EXPECT_GE(g_news.load(), 1);
  delete probe;

  const struct mallinfo2 before = mallinfo2();
  g_news = 0;
  g_counting = true;
  bool ok = true;
  for (int i = 0; i < 32; ++i) {
    tok = int32_t((tok * 31 + 7) % spec.vocab_rows);
    ok = ok && (*model)->Step({&tok, 1}, {&slot, 1}, logits.data()).ok();
  }
  g_counting = false;
  const struct mallinfo2 after = mallinfo2();
  EXPECT_TRUE(ok);
  EXPECT_EQ(g_news.load(), 0) << "operator new calls during 32 decode steps";
  EXPECT_EQ(after.uordblks, before.uordblks) << "heap bytes in use changed during decode";
  EXPECT_EQ(after.hblkhd, before.hblkhd) << "mmapped heap bytes changed during decode";
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Modes, DecodeAlloc, ::testing::Values(CpuMatMul::kFp32, CpuMatMul::kBf16),
                         [](const auto& info) { return std::string(CpuMatMulName(info.param)); });

}  // namespace
}  // namespace mamba2
