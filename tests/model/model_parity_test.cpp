// The whole model on each backend against the ref backend's per-token oracle, on random
// models across the shapes and lengths where chunked scans go wrong.
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>
#include <random>

#include "backend/backend.h"
#include "model/mamba2_model.h"
#include "support/compare.h"
#include "support/model_run.h"
#include "support/random_model.h"

namespace mamba2 {
namespace {

using testing::RandomIds;
using testing::RandomModelSpec;
using testing::RunLogits;

constexpr double kTol = 1e-5;  // fp32 compute vs double-accumulated oracle

class ModelParity : public ::testing::TestWithParam<testing::ModelCase> {};

TEST_P(ModelParity, CpuMatchesOracleAcrossChunkBoundaries) {
  const RandomModelSpec& spec = GetParam().spec;
  const std::string dir = testing::WriteRandomModel(spec);
  auto ref_backend = MakeRefBackend();
  auto cpu_backend = MakeCpuBackend(2);
  auto ref = Mamba2Model::Load(dir, ref_backend.get());
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  auto cpu = Mamba2Model::Load(dir, cpu_backend.get());
  ASSERT_TRUE(cpu.ok()) << cpu.status().message();
  const int64_t Q = spec.chunk_size;
  for (int64_t len : {int64_t(1), Q - 1, Q, Q + 1, 3 * Q + 5}) {
    const auto ids = RandomIds(len, spec.vocab_rows, uint64_t(len) * 7 + 3);
    const auto oracle = RunLogits(**ref, ids, len);
    const auto cpu_all = RunLogits(**cpu, ids, len);
    EXPECT_LE(testing::RelL2(cpu_all, oracle), kTol) << "cpu prefill, len " << len;
    const int64_t k = std::max<int64_t>(1, len / 2 + 1);
    EXPECT_LE(testing::RelL2(RunLogits(**cpu, ids, k), oracle), kTol) << "cpu prefill(" << k << ")+step, len " << len;
    if (len <= Q + 1) {
      EXPECT_LE(testing::RelL2(RunLogits(**ref, ids, 1), oracle), kTol) << "ref prefill(1)+step, len " << len;
    }
  }
  std::filesystem::remove_all(dir);
}

TEST_P(ModelParity, PrefillInPiecesMatchesWhole) {
  RandomModelSpec spec = GetParam().spec;
  const std::string dir = testing::WriteRandomModel(spec);
  auto backend = MakeCpuBackend(2);
  auto whole = Mamba2Model::Load(dir, backend.get());
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  ModelOptions small;
  small.max_rows = spec.chunk_size + 3;  // forces several pieces, not on chunk boundaries
  auto pieces = Mamba2Model::Load(dir, backend.get(), small);
  ASSERT_TRUE(pieces.ok());
  const auto ids = RandomIds(3 * spec.chunk_size + 5, spec.vocab_rows, 11);
  const auto a = RunLogits(**whole, ids, int64_t(ids.size()));
  const auto b = RunLogits(**pieces, ids, int64_t(ids.size()));
  EXPECT_LE(testing::RelL2(b, a), kTol);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Shapes, ModelParity, ::testing::ValuesIn(testing::StandardModelCases()),
                         [](const ::testing::TestParamInfo<testing::ModelCase>& i) { return i.param.name; });

TEST(ModelBatch, BatchedPrefillAndStepMatchSingleSequences) {
  RandomModelSpec spec;
  spec.n_groups = 2;
  const std::string dir = testing::WriteRandomModel(spec);
  auto backend = MakeCpuBackend(2);
  ModelOptions opt;
  opt.max_slots = 6;
  auto m = Mamba2Model::Load(dir, backend.get(), opt);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int64_t V = spec.vocab_rows, L = spec.chunk_size + 3;
  const std::vector<int32_t> slots = {4, 1, 2};
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> flat;
  for (int s = 0; s < 3; ++s) {
    seqs.push_back(RandomIds(L + 4, V, 100 + uint64_t(s)));
    flat.insert(flat.end(), seqs.back().begin(), seqs.back().begin() + L);
  }
  for (int32_t slot : slots) (*m)->ResetSlot(slot);
  std::vector<float> last(static_cast<size_t>(3 * V));
  ASSERT_TRUE((*m)->Prefill(flat, slots, LogitsMode::kLast, last.data()).ok());
  std::vector<std::vector<float>> batched(3);
  for (int s = 0; s < 3; ++s) batched[size_t(s)].assign(last.begin() + s * V, last.begin() + (s + 1) * V);
  std::vector<float> step_logits(static_cast<size_t>(3 * V));
  for (int64_t t = L; t < L + 4; ++t) {
    std::vector<int32_t> toks = {seqs[0][size_t(t)], seqs[1][size_t(t)], seqs[2][size_t(t)]};
    ASSERT_TRUE((*m)->Step(toks, slots, step_logits.data()).ok());
    for (int s = 0; s < 3; ++s)
      batched[size_t(s)].insert(batched[size_t(s)].end(), step_logits.begin() + s * V, step_logits.begin() + (s + 1) * V);
  }
  for (int s = 0; s < 3; ++s) {
    const auto all = RunLogits(**m, seqs[size_t(s)], L);
    std::vector<float> expect(all.begin() + (L - 1) * V, all.end());
    EXPECT_LE(testing::RelL2(batched[size_t(s)], expect), kTol) << "sequence " << s;
  }
  std::filesystem::remove_all(dir);
}

TEST(ModelInput, OutOfRangeTokenIsAnError) {
  RandomModelSpec spec;
  const std::string dir = testing::WriteRandomModel(spec);
  auto backend = MakeRefBackend();
  auto m = Mamba2Model::Load(dir, backend.get());
  ASSERT_TRUE(m.ok());
  const int32_t slot = 0;
  std::vector<int32_t> ids = {1, int32_t(spec.vocab_rows)};
  Status st = (*m)->Prefill(ids, {&slot, 1}, LogitsMode::kNone, nullptr);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("out of range"), std::string::npos) << st.message();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mamba2
