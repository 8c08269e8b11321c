// The cpu backend's bf16 matmul mode against the product it promises, computed here in double:
// prefill-sized matmuls multiply bf16(x) by bf16(w) with fp32 accumulation; decode-sized ones
// (the GEMV path) keep x in fp32 and read the bf16 weights.
#include "backend/backend_test_util.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_dnnl.h"

namespace mamba2::testing {
namespace {

// fp32 accumulation of exact bf16 products against a double sum.
constexpr double kTol = 2e-6;

struct Case {
  int64_t rows, k, n;
  DType dtype;
};

class CpuBf16MatMul : public ::testing::TestWithParam<Case> {};

TEST_P(CpuBf16MatMul, MatchesBf16RoundedProduct) {
  const Case c = GetParam();
  Rng rng(uint64_t(c.rows * 7919 + c.k * 31 + c.n + int(c.dtype)));
  HostMat x = MakeHostMat(c.rows, c.k, 2, 3);
  rng.Fill(x, -1.0f, 1.0f);
  const float bound = 1.0f / std::sqrt(float(c.k));
  StoredTensor w = Store(rng.UniformVec(size_t(c.n * c.k), -bound, bound), c.dtype, Shape{c.n, c.k});
  const bool gemm = c.rows > 8;  // the backend's GEMV / GEMM boundary (cpu_kernels.h kGemvMaxRows)

  std::vector<float> want(size_t(c.rows * c.n));
  for (int64_t r = 0; r < c.rows; ++r)
    for (int64_t j = 0; j < c.n; ++j) {
      double s = 0.0;
      for (int64_t i = 0; i < c.k; ++i) {
        const float wv = BF16ToF32(F32ToBF16(LoadAsF32(w.view.data, c.dtype, size_t(j * c.k + i))));
        const float xv = gemm ? BF16ToF32(F32ToBF16(x.at(r, i))) : x.at(r, i);
        s += double(xv) * double(wv);
      }
      want[size_t(r * c.n + j)] = float(s);
    }

  for (int threads : {1, 3}) {
    CpuBackendOptions o;
    o.n_threads = threads;
    o.matmul = CpuMatMul::kBf16;
    auto cpu = MakeCpuBackend(o);
    EXPECT_EQ(cpu->name(), "cpu-bf16");
    DeviceArena mem(*cpu);
    const HostMat out0 = MakeHostMat(c.rows, c.n, 1, 4);
    Mat out = mem.Upload(out0);
    cpu->MatMul(mem.Upload(x), cpu->PrepareWeight(w.view, WeightKind::kMatrix), out);
    const HostMat got = mem.Download(out, out0);
    const std::string what = "cpu" + std::to_string(threads) + "-bf16 rows " + std::to_string(c.rows) + " k " +
                             std::to_string(c.k) + " n " + std::to_string(c.n) + " " + DTypeName(c.dtype);
    ExpectClose(got.Values(), want, kTol, what);
    ExpectPaddingIntact(got, what);
  }
}

std::vector<Case> Cases() {
  std::vector<Case> v;
  for (int64_t rows : {1, 5, 8, 9, 33, 130})
    for (auto [k, n] : {std::pair<int64_t, int64_t>{100, 37}, {256, 512}, {768, 300}})
      for (DType dt : {DType::F32, DType::BF16, DType::F16}) v.push_back({rows, k, n, dt});
  // Enough rows that 3 threads split the rows first (whole output rows per tile), with a last
  // tile of another height.
  v.push_back({800, 256, 300, DType::BF16});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuBf16MatMul, ::testing::ValuesIn(Cases()), [](const auto& info) {
  const Case& c = info.param;
  return "rows" + std::to_string(c.rows) + "_k" + std::to_string(c.k) + "_n" + std::to_string(c.n) + "_" +
         DTypeName(c.dtype);
});

// The rounding really happens: a bf16-mode prefill product differs from the fp32 one by about
// bf16's precision, so a mode switch that silently did nothing would fail here.
TEST(CpuBf16MatMul, DiffersFromFp32ByBf16Rounding) {
  Rng rng(11);
  const int64_t rows = 64, k = 512, n = 256;
  HostMat x = MakeHostMat(rows, k);
  rng.Fill(x, -1.0f, 1.0f);
  StoredTensor w = Store(rng.UniformVec(size_t(n * k), -0.05f, 0.05f), DType::F32, Shape{n, k});
  auto run = [&](CpuMatMul mode) {
    CpuBackendOptions o;
    o.n_threads = 2;
    o.matmul = mode;
    auto cpu = MakeCpuBackend(o);
    DeviceArena mem(*cpu);
    const HostMat out0 = MakeHostMat(rows, n);
    Mat out = mem.Upload(out0);
    cpu->MatMul(mem.Upload(x), cpu->PrepareWeight(w.view, WeightKind::kMatrix), out);
    return mem.Download(out, out0).Values();
  };
  const double err = RelL2(run(CpuMatMul::kBf16), run(CpuMatMul::kFp32));
  EXPECT_GT(err, 1e-4);  // bf16 keeps 8 significant bits: ~2^-9 relative per operand
  EXPECT_LT(err, 1e-2);
}

// The primitive cache is bounded (the GEMM tiles' shapes follow the prompt lengths), and a shape
// evicted and built again computes the same product.
TEST(CpuBf16MatMul, PrimitiveCacheStaysBoundedAndRebuildsEvictedShapes) {
  if (!cpu::HaveBf16Gemm()) GTEST_SKIP() << "oneDNN has no bf16 matmul on this CPU";
  const int64_t k = 32, n = 16, m_max = int64_t(cpu::kBf16CacheCapacity) + 40;
  Rng rng(5);
  std::vector<uint16_t> a(size_t(m_max * k)), b(size_t(k * n));
  for (auto& v : a) v = F32ToBF16(rng.Uniform(-1.0f, 1.0f));
  for (auto& v : b) v = F32ToBF16(rng.Uniform(-1.0f, 1.0f));
  auto product = [&](int64_t m) {
    std::vector<float> out(size_t(m * n));
    cpu::Bf16Matmul({m, n, k, k, 1, n, 1, n, false}, a.data(), b.data(), out.data());
    return out;
  };
  const std::vector<float> first = product(7);
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double want = 0.0;
      for (int64_t t = 0; t < k; ++t) want += double(BF16ToF32(a[size_t(i * k + t)])) * BF16ToF32(b[size_t(t * n + j)]);
      EXPECT_NEAR(first[size_t(i * n + j)], want, 1e-5 * k) << i << "," << j;
    }
  for (int64_t m = 1; m <= m_max; ++m) {
    product(m);
    EXPECT_LE(cpu::Bf16CachedPrimitives(), cpu::kBf16CacheCapacity) << "after " << m << " shapes";
  }
  EXPECT_EQ(product(7), first);  // evicted long ago, built again
}

// bf16 mode rounds each norm's rows straight into its GEMM's bf16 operand: the same bits as the
// norm op and the MatMul op one after the other.
TEST(CpuBf16MatMul, FusedNormsEqualTheTwoOps) {
  for (int64_t rows : {12, 600}) {  // column tiles; row tiles on 2 threads
    Rng rng{uint64_t(rows)};
    const int64_t k = 96, n = 80, group = 48;
    HostMat x = MakeHostMat(rows, k, 1, 2), z = MakeHostMat(rows, k, 0, 3), out0 = MakeHostMat(rows, n, 2, 1);
    rng.Fill(x, -1.0f, 1.0f);
    rng.Fill(z, -2.0f, 2.0f);
    rng.Fill(out0, -1.0f, 1.0f);
    const StoredTensor w = Store(rng.UniformVec(size_t(n * k), -0.1f, 0.1f), DType::F32, Shape{n, k});
    const StoredTensor nw = Store(rng.UniformVec(size_t(k), 0.5f, 1.5f), DType::F32, Shape{k});
    CpuBackendOptions o;
    o.n_threads = 2;
    o.matmul = CpuMatMul::kBf16;
    auto cpu = MakeCpuBackend(o);
    DeviceArena mem(*cpu);
    const TensorView wp = cpu->PrepareWeight(w.view, WeightKind::kMatrix);
    const TensorView np = cpu->PrepareWeight(nw.view, WeightKind::kVector);
    const Mat xd = mem.Upload(x), zd = mem.Upload(z), normed = mem.Upload(MakeHostMat(rows, k));
    const std::string what = "rows " + std::to_string(rows);

    Mat fused = mem.Upload(out0), parts = mem.Upload(out0);
    cpu->RmsNormMatMul(xd, np, 1e-5f, normed, wp, fused);
    cpu->RmsNorm(xd, np, 1e-5f, normed);
    cpu->MatMul(normed, wp, parts);
    EXPECT_EQ(mem.Download(fused, out0).Values(), mem.Download(parts, out0).Values()) << what << " RmsNormMatMul";

    fused = mem.Upload(out0);
    parts = mem.Upload(out0);
    cpu->GatedRmsNormMatMulAdd(xd, zd, np, group, 1e-5f, normed, wp, fused);
    cpu->GatedRmsNorm(xd, zd, np, group, 1e-5f, normed);
    cpu->MatMul(normed, wp, parts, /*accumulate=*/true);
    EXPECT_EQ(mem.Download(fused, out0).Values(), mem.Download(parts, out0).Values())
        << what << " GatedRmsNormMatMulAdd";
  }
}

TEST(CpuBackendOptions, ParsesModes) {
  EXPECT_EQ(ParseCpuMatMul("f32").value(), CpuMatMul::kFp32);
  EXPECT_EQ(ParseCpuMatMul("fp32").value(), CpuMatMul::kFp32);
  EXPECT_EQ(ParseCpuMatMul("bf16").value(), CpuMatMul::kBf16);
  EXPECT_FALSE(ParseCpuMatMul("tf32").ok());
  EXPECT_EQ(MakeCpuBackend(1)->name(), "cpu");
}

}  // namespace
}  // namespace mamba2::testing
