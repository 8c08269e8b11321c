// The whole model on each backend against the ref backend's per-token oracle, on random
// models across the shapes and lengths where chunked scans go wrong.
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>
#include <random>

#include "backend/backend.h"
#include "model/mamba2_model.h"
#include "support/compare.h"
#include "support/random_model.h"

namespace mamba2 {
namespace {

using testing::RandomModelSpec;

constexpr double kTol = 1e-5;  // fp32 compute vs double-accumulated oracle

struct Case {
  std::string name;
  RandomModelSpec spec;
};

std::vector<int32_t> RandomIds(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = int32_t(rng() % uint64_t(vocab));
  return ids;
}

// Logits of every position: the first k tokens by prefill, the rest by step.
std::vector<float> RunLogits(Mamba2Model& m, const std::vector<int32_t>& ids, int64_t k) {
  const int64_t V = m.config().vocab_rows, n = int64_t(ids.size());
  std::vector<float> logits(static_cast<size_t>(n * V));
  const int32_t slot = 0;
  m.ResetSlot(slot);
  Status st = m.Prefill({ids.data(), size_t(k)}, {&slot, 1}, LogitsMode::kAll, logits.data());
  EXPECT_TRUE(st.ok()) << st.message();
  for (int64_t i = k; i < n; ++i) {
    st = m.Step({ids.data() + i, 1}, {&slot, 1}, logits.data() + i * V);
    EXPECT_TRUE(st.ok()) << st.message();
  }
  return logits;
}

class ModelParity : public ::testing::TestWithParam<Case> {};

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

std::vector<Case> Cases() {
  std::vector<Case> cases;
  auto add = [&](std::string name, auto edit) {
    RandomModelSpec s;
    edit(s);
    cases.push_back({std::move(name), s});
  };
  add("g1_p16_n16_f32", [](RandomModelSpec&) {});
  add("g2_p16_n16_bf16_untied", [](RandomModelSpec& s) { s.n_groups = 2; s.dtype = DType::BF16; s.tied = false; });
  add("g8_p16_n16_f16", [](RandomModelSpec& s) { s.n_groups = 8; s.dtype = DType::F16; });
  add("g1_p64_n128_f32", [](RandomModelSpec& s) { s.head_dim = 64; s.d_state = 128; s.chunk_size = 32; });
  add("g2_p64_n16_sharded", [](RandomModelSpec& s) { s.head_dim = 64; s.n_groups = 2; s.shards = 3; });
  add("g1_p16_n128_ssnames_chunk8", [](RandomModelSpec& s) { s.d_state = 128; s.ss_names = true; s.chunk_size = 8; });
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, ModelParity, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

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
