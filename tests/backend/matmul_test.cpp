// MatMul and Embed on every backend against ref, for f32, bf16 and f16 stored weights.
#include <tuple>

#include "backend/backend_test_util.h"
#include "backend/cpu/cpu_backend.h"

namespace mamba2::testing {
namespace {

// float accumulation against ref's double: rel L2 stays near 1e-7 for K up to a few thousand.
constexpr double kMatMulTol = 1e-6;

struct MatMulCase {
  int64_t rows, k, n;
  DType dtype;
};

std::string CaseName(const MatMulCase& c) {
  return "rows" + std::to_string(c.rows) + "_k" + std::to_string(c.k) + "_n" + std::to_string(c.n) + "_" +
         DTypeName(c.dtype);
}

class MatMulTest : public ::testing::TestWithParam<MatMulCase> {};

TEST_P(MatMulTest, MatchesRef) {
  const MatMulCase c = GetParam();
  Rng rng(uint64_t(c.rows * 1000003 + c.k * 1009 + c.n * 7 + int(c.dtype)));
  // x is a column slice of a wider activation; out is written into a wider buffer too.
  HostMat x = MakeHostMat(c.rows, c.k, 3, 5);
  rng.Fill(x, -1.0f, 1.0f);
  const float bound = 1.0f / std::sqrt(float(c.k));  // nn.Linear's init range
  StoredTensor w = Store(rng.UniformVec(size_t(c.n * c.k), -bound, bound), c.dtype, Shape{c.n, c.k});
  const HostMat out0 = MakeHostMat(c.rows, c.n, 2, 7);

  std::vector<float> want;
  {
    DeviceArena mem(Ref());
    Mat out = mem.Upload(out0);
    Ref().MatMul(mem.Upload(x), Ref().PrepareWeight(w.view, WeightKind::kMatrix), out);
    want = mem.Download(out, out0).Values();
  }
  for (auto& nb : BackendsUnderTest()) {
    DeviceArena mem(*nb.backend);
    Mat out = mem.Upload(out0);
    nb.backend->MatMul(mem.Upload(x), nb.backend->PrepareWeight(w.view, WeightKind::kMatrix), out);
    const HostMat got = mem.Download(out, out0);
    ExpectClose(got.Values(), want, kMatMulTol * nb.tol_scale, nb.name + " MatMul " + CaseName(c));
    ExpectPaddingIntact(got, nb.name + " MatMul out");
  }
}

std::vector<MatMulCase> MatMulCases() {
  std::vector<MatMulCase> cases;
  // Decode-sized (GEMV path), the boundary, and prefill-sized (BLAS path) row counts; K and N
  // that are and are not multiples of the SIMD width.
  for (int64_t rows : {1, 2, 3, 5, 8, 9, 17, 70})
    for (auto [k, n] : {std::pair<int64_t, int64_t>{16, 1}, {100, 37}, {256, 512}, {1000, 129}})
      for (DType dt : {DType::F32, DType::BF16, DType::F16}) cases.push_back({rows, k, n, dt});
  cases.push_back({130, 768, 1000, DType::BF16});
  cases.push_back({4, 2560, 300, DType::F32});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatMulTest, ::testing::ValuesIn(MatMulCases()),
                         [](const auto& info) { return CaseName(info.param); });

TEST(EmbedTest, MatchesRefForEveryTableDtype) {
  Rng rng(42);
  const int64_t vocab = 1000, d = 80;
  const std::vector<float> table_values = [&] {
    std::vector<float> v(size_t(vocab * d));
    for (auto& e : v) e = rng.Normal(0.0f, 0.02f);
    return v;
  }();
  const std::vector<int32_t> ids = {0, 999, 17, 17, 512, 3, 998, 1};
  const int64_t n = int64_t(ids.size());
  const HostMat out0 = MakeHostMat(n, d, 1, 3);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    StoredTensor table = Store(table_values, dtype, Shape{vocab, d});
    std::vector<float> want;
    {
      DeviceArena mem(Ref());
      Mat out = mem.Upload(out0);
      Ref().Embed(mem.Upload(ids), n, Ref().PrepareWeight(table.view, WeightKind::kMatrix), out);
      want = mem.Download(out, out0).Values();
    }
    for (auto& nb : BackendsUnderTest()) {
      DeviceArena mem(*nb.backend);
      Mat out = mem.Upload(out0);
      nb.backend->Embed(mem.Upload(ids), n, nb.backend->PrepareWeight(table.view, WeightKind::kMatrix), out);
      const HostMat got = mem.Download(out, out0);
      // A gather of exactly representable values: bit-exact.
      ExpectClose(got.Values(), want, 0.0 * nb.tol_scale, nb.name + " Embed " + DTypeName(dtype));
      ExpectPaddingIntact(got, nb.name + " Embed out");
    }
  }
}

// fp32 mode reads every matrix where it is stored (the mmapped file), whatever its dtype:
// f16/bf16 widen exactly in registers, so no fp32 copy of the model is made.
TEST(CpuPrepareTest, Fp32ModeUsesMatricesInPlace) {
  auto cpu = MakeCpuBackend(2);
  Rng rng(5);
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    StoredTensor t = Store(rng.UniformVec(64 * 32, -1, 1), dt, Shape{64, 32});
    const TensorView a = cpu->PrepareWeight(t.view, WeightKind::kMatrix);
    EXPECT_EQ(a.data, t.view.data) << DTypeName(dt);
    EXPECT_EQ(a.dtype, dt);
    EXPECT_EQ(a.shape, t.view.shape);
  }
}

// Tied embeddings: the model prepares the same stored tensor for Embed and for lm_head; bf16
// mode rounds an f32 matrix once and both uses share the copy.
TEST(CpuPrepareTest, Bf16ModeRoundsOnceAndSharesTheCopy) {
  CpuBackendOptions o;
  o.n_threads = 2;
  o.matmul = CpuMatMul::kBf16;
  auto cpu = MakeCpuBackend(o);
  Rng rng(6);
  const std::vector<float> v = rng.UniformVec(64 * 32, -1, 1);
  StoredTensor f = Store(v, DType::F32, Shape{64, 32});
  const TensorView a = cpu->PrepareWeight(f.view, WeightKind::kMatrix);
  const TensorView b = cpu->PrepareWeight(f.view, WeightKind::kMatrix);
  EXPECT_EQ(a.dtype, DType::BF16);
  EXPECT_EQ(a.data, b.data);
  EXPECT_NE(a.data, f.view.data);
  for (int64_t i = 0; i < 64 * 32; ++i) ASSERT_EQ(a.as<uint16_t>()[i], F32ToBF16(v[size_t(i)]));
  // bf16 matrices are already what the mode multiplies: used in place.
  StoredTensor bf = Store(v, DType::BF16, Shape{64, 32});
  EXPECT_EQ(cpu->PrepareWeight(bf.view, WeightKind::kMatrix).data, bf.view.data);
}

}  // namespace
}  // namespace mamba2::testing
