// The whole model on the CUDA backend against the same model on ref (the per-token oracle), on
// random checkpoints written by tests/support/random_model: lengths around chunk boundaries,
// prefill of everything and prefill(K) followed by decode steps, a batch of slots.
// fp32 mode must agree to 1e-5; bf16 mode within the stated kBf16ModelTol. The emulated
// backend runs the same kernels on the host, so these checks also run without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "backend/backend.h"
#include "cuda/emu_backend.h"
#include "model/mamba2_model.h"
#include "support/compare.h"
#include "support/model_run.h"
#include "support/random_model.h"
#if defined(MAMBA2_HAVE_CUDA)
#include "backend/cuda/cuda_backend.h"
#include "cuda/cuda_test_options.h"
#endif

namespace mamba2 {
namespace {

using testing::RandomIds;
using testing::RandomModelSpec;
using testing::RunLogits;

constexpr double kFp32ModelTol = 1e-5;
// bf16 GEMM operands (weights and activations, 8-bit mantissas) and bf16 intermediates (in_proj,
// conv and scan outputs stored in bf16) through a few layers: the emulated bf16 path measured
// 5.7e-3..8.9e-3 on these models (4.0e-3..6.5e-3 with fp32 intermediates); stated with margin.
constexpr double kBf16ModelTol = 2e-2;
// fp16 operands have 3 more mantissa bits than bf16: 8x smaller rounding, stated with the same margin.
constexpr double kFp16ModelTol = 4e-3;

// half: DType::F32 (fp32 mode), BF16 or F16 (the 16-bit GEMM modes).
std::unique_ptr<Backend> MakeCuda(DType half) {
#if defined(MAMBA2_HAVE_CUDA)
  CudaBackendOptions o = TestCudaOptions();
  o.matmul = half == DType::BF16 ? CudaMatMul::kBf16 : half == DType::F16 ? CudaMatMul::kFp16 : CudaMatMul::kFp32;
  return MakeCudaBackend(o);
#else
  return half == DType::F32 ? MakeCudaBackend() : nullptr;
#endif
}

// Which backend a parameterised run uses.
enum class Target { kCuda, kCudaBf16, kCudaFp16, kEmu, kEmuBf16, kEmuFp16 };

DType HalfOf(Target t) {
  if (t == Target::kCudaBf16 || t == Target::kEmuBf16) return DType::BF16;
  if (t == Target::kCudaFp16 || t == Target::kEmuFp16) return DType::F16;
  return DType::F32;
}
bool IsEmu(Target t) { return t == Target::kEmu || t == Target::kEmuBf16 || t == Target::kEmuFp16; }

std::unique_ptr<Backend> MakeTarget(Target t) {
  return IsEmu(t) ? testing::MakeEmuBackend(HalfOf(t)) : MakeCuda(HalfOf(t));
}

const char* TargetName(Target t) {
  switch (t) {
    case Target::kCuda: return "cuda";
    case Target::kCudaBf16: return "cuda_bf16";
    case Target::kCudaFp16: return "cuda_fp16";
    case Target::kEmu: return "emu";
    case Target::kEmuBf16: return "emu_bf16";
    case Target::kEmuFp16: return "emu_fp16";
  }
  return "?";
}

class CudaModelParity : public ::testing::TestWithParam<std::tuple<Target, testing::ModelCase>> {};

TEST_P(CudaModelParity, MatchesOracleAcrossChunkBoundaries) {
  const auto& [target, c] = GetParam();
  std::unique_ptr<Backend> backend = MakeTarget(target);
  if (!backend) GTEST_SKIP() << "no CUDA device";
  const RandomModelSpec& spec = c.spec;
  const std::string dir = testing::WriteRandomModel(spec);
  auto ref_backend = MakeRefBackend();
  auto ref = Mamba2Model::Load(dir, ref_backend.get());
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  auto dut = Mamba2Model::Load(dir, backend.get());
  ASSERT_TRUE(dut.ok()) << dut.status().message();
  const double tol = HalfOf(target) == DType::BF16 ? kBf16ModelTol
                     : HalfOf(target) == DType::F16 ? kFp16ModelTol
                                                    : kFp32ModelTol;
  const int64_t Q = spec.chunk_size;
  std::vector<int64_t> lengths = {1, Q - 1, Q, Q + 1, 3 * Q + 5};
  if (IsEmu(target)) lengths = {1, Q + 1, 3 * Q + 5};  // the emulator is slow; keep the boundaries
  double worst = 0.0;
  for (int64_t len : lengths) {
    const auto ids = RandomIds(len, spec.vocab_rows, uint64_t(len) * 7 + 3);
    const auto oracle = RunLogits(**ref, ids, len);
    const double e_all = testing::RelL2(RunLogits(**dut, ids, len), oracle);
    EXPECT_LE(e_all, tol) << TargetName(target) << " prefill, len " << len;
    const int64_t k = std::max<int64_t>(1, len / 2 + 1);
    const double e_split = testing::RelL2(RunLogits(**dut, ids, k), oracle);
    EXPECT_LE(e_split, tol) << TargetName(target) << " prefill(" << k << ")+steps, len " << len;
    worst = std::max({worst, e_all, e_split});
  }
  if (std::getenv("MAMBA2_TEST_VERBOSE"))
    std::printf("  %s %s: worst rel L2 %.3g (tol %.1g)\n", TargetName(target), c.name.c_str(), worst, tol);
  dut->reset();
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaModelParity,
                         ::testing::Combine(::testing::Values(Target::kCuda, Target::kCudaBf16, Target::kCudaFp16),
                                            ::testing::ValuesIn(testing::StandardModelCases())),
                         [](const auto& info) {
                           return std::string(TargetName(std::get<0>(info.param))) + "_" +
                                  std::get<1>(info.param).name;
                         });

// The emulator on two of the shapes (it takes seconds per model run).
INSTANTIATE_TEST_SUITE_P(Emulated, CudaModelParity,
                         ::testing::Combine(::testing::Values(Target::kEmu, Target::kEmuBf16, Target::kEmuFp16),
                                            ::testing::Values(testing::StandardModelCases()[1], testing::StandardModelCases()[5])),
                         [](const auto& info) {
                           return std::string(TargetName(std::get<0>(info.param))) + "_" +
                                  std::get<1>(info.param).name;
                         });

// Several slots at once: batched prefill (last logits) and batched steps agree with each
// sequence run alone on the same backend and with ref; pieces of prefill keep the state.
TEST(CudaModelBatch, BatchedPrefillStepsAndPiecesMatchRef) {
  std::unique_ptr<Backend> backend = MakeCuda(DType::F32);
  if (!backend) GTEST_SKIP() << "no CUDA device";
  RandomModelSpec spec;
  spec.n_groups = 2;
  const std::string dir = testing::WriteRandomModel(spec);
  ModelOptions opt;
  opt.max_slots = 6;
  opt.max_rows = spec.chunk_size + 3;  // prefill in several pieces, not on chunk boundaries
  auto m = Mamba2Model::Load(dir, backend.get(), opt);
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto ref_backend = MakeRefBackend();
  auto ref = Mamba2Model::Load(dir, ref_backend.get());
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  const int64_t V = spec.vocab_rows, L = 2 * spec.chunk_size + 3;
  const std::vector<int32_t> slots = {4, 1, 2};
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> flat;
  for (int s = 0; s < 3; ++s) {
    seqs.push_back(RandomIds(L + 4, V, 100 + uint64_t(s)));
    flat.insert(flat.end(), seqs.back().begin(), seqs.back().begin() + L);
  }
  for (int32_t slot : slots) (*m)->ResetSlot(slot);
  std::vector<float> last(size_t(3 * V));
  ASSERT_TRUE((*m)->Prefill(flat, slots, LogitsMode::kLast, last.data()).ok());
  std::vector<std::vector<float>> batched(3);
  for (int s = 0; s < 3; ++s) batched[size_t(s)].assign(last.begin() + s * V, last.begin() + (s + 1) * V);
  std::vector<float> step_logits(size_t(3 * V));
  for (int64_t t = L; t < L + 4; ++t) {
    std::vector<int32_t> toks = {seqs[0][size_t(t)], seqs[1][size_t(t)], seqs[2][size_t(t)]};
    ASSERT_TRUE((*m)->Step(toks, slots, step_logits.data()).ok());
    for (int s = 0; s < 3; ++s)
      batched[size_t(s)].insert(batched[size_t(s)].end(), step_logits.begin() + s * V,
                                step_logits.begin() + (s + 1) * V);
  }
  for (int s = 0; s < 3; ++s) {
    const auto all = RunLogits(**ref, seqs[size_t(s)], L);
    std::vector<float> expect(all.begin() + (L - 1) * V, all.end());
    EXPECT_LE(testing::RelL2(batched[size_t(s)], expect), kFp32ModelTol) << "sequence " << s;
  }
  // Snapshots: copying a slot and continuing from the copy equals continuing the original.
  std::vector<float> a(static_cast<size_t>(V)), b(static_cast<size_t>(V));
  (*m)->CopySlot(4, 0);
  const int32_t tok = seqs[0][0];
  const int32_t s4 = 4, s0 = 0;
  ASSERT_TRUE((*m)->Step({&tok, 1}, {&s4, 1}, a.data()).ok());
  ASSERT_TRUE((*m)->Step({&tok, 1}, {&s0, 1}, b.data()).ok());
  EXPECT_EQ(a, b);
  EXPECT_EQ((*m)->SaveSlot(4), (*m)->SaveSlot(0));
  m->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mamba2
