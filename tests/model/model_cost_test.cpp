// The bench's cost model (bench/lib/model_cost.h) against what the engine does: the matmul
// FLOPs of a prefill as a profiling backend counts them call by call, and the decode bytes as the
// sum over the model's own tensors.
#include "lib/model_cost.h"

#include <gtest/gtest.h>

#include <set>

#include "backend/backend.h"
#include "io/weight_store.h"
#include "lib/profiling_backend.h"
#include "model/mamba2_model.h"
#include "model/random_weights.h"

namespace mamba2 {
namespace {

ModelConfig Small() {
  auto c = ParseConfig(R"({"d_model": 128, "n_layer": 2, "vocab_size": 500, "pad_vocab_size_multiple": 16,
                           "ssm_cfg": {"layer": "Mamba2", "d_state": 32, "headdim": 32, "chunk_size": 64}})",
                       "small");
  CHECK(c.ok());
  return *c;
}

TEST(ModelCost, ProjectionAndLmHeadFlopsMatchTheMatmulsThePrefillRuns) {
  const ModelConfig c = Small();
  auto set = MakeRandomWeights(c, RandomWeightsOptions{});
  ASSERT_TRUE(set.ok());
  auto store = std::make_shared<const WeightStore>(WeightStore::FromTensorSet(std::move(set).value(), "random"));
  auto cpu = MakeCpuBackend(1);
  bench::ProfilingBackend prof(cpu.get());
  auto model = Mamba2Model::FromStore(c, store, &prof);
  ASSERT_TRUE(model.ok()) << model.status().message();
  for (int64_t len : {1, 37, 64, 200}) {
    std::vector<int32_t> ids(static_cast<size_t>(len));
    for (int64_t i = 0; i < len; ++i) ids[size_t(i)] = int32_t((i * 13) % 500);
    std::vector<float> logits(size_t(c.vocab_rows));
    const int32_t slot = 0;
    (*model)->ResetSlot(slot);
    prof.Reset();
    ASSERT_TRUE((*model)->Prefill(ids, {&slot, 1}, LogitsMode::kLast, logits.data()).ok());
    double matmul = 0;
    for (const auto& [name, t] : prof.times()) matmul += t.flops;
    const bench::PrefillFlops f = bench::CountPrefillFlops(c, len, (*model)->chunk_size());
    EXPECT_DOUBLE_EQ(f.projections + f.lm_head, matmul) << "len " << len;
    EXPECT_GT(f.ssd, 0.0);
  }
}

TEST(ModelCost, SsdCountsTheBlockTriangularProducts) {
  ModelConfig c = Small();  // d_state 32, 8 heads of 32, 1 group
  // One chunk of q <= 64 tokens is a single block: T(q) = q * q.
  const double q = 40;
  const double per_chunk = 32 * q * q + 8 * 32 * q * q + 2.0 * 8 * 32 * 32 * q;
  EXPECT_DOUBLE_EQ(bench::CountPrefillFlops(c, 40, 64).ssd, 2.0 * c.n_layer * per_chunk);
  // A 256-token chunk: blocks of 64 rows reach columns 64, 128, 192, 256: T = 64 * 640 = 40960.
  const double t256 = 40960, per256 = 32 * t256 + 8 * 32 * t256 + 2.0 * 8 * 32 * 32 * 256;
  EXPECT_DOUBLE_EQ(bench::CountPrefillFlops(c, 512, 256).ssd, 2.0 * c.n_layer * 2 * per256);
}

TEST(ModelCost, DecodeBytesAreTheModelsTensorsPlusItsState) {
  const ModelConfig c = Small();
  RandomWeightsOptions o;
  o.dtype = DType::BF16;
  auto set = MakeRandomWeights(c, o);
  ASSERT_TRUE(set.ok());
  double matrices = 0, vectors = 0;
  std::set<const void*> seen;
  for (const StoredTensor& t : set->tensors) {
    if (!seen.insert(t.view.data).second) continue;  // the tied lm_head is read once, as lm_head
    const bool matrix = t.name.find("in_proj") != std::string::npos || t.name.find("out_proj") != std::string::npos ||
                        t.name.find("embedding") != std::string::npos;
    if (matrix) matrices += double(t.view.nbytes());
    else vectors += double(t.view.numel()) * 4.0;  // vectors are prepared as fp32
  }
  matrices += double(c.d_model) * 2.0;  // the embedding row of the token
  const bench::DecodeBytes b = bench::CountDecodeBytes(c, DType::BF16);
  EXPECT_DOUBLE_EQ(b.weights, matrices + vectors);
  auto cpu = MakeCpuBackend(1);
  auto store = std::make_shared<const WeightStore>(WeightStore::FromTensorSet(std::move(set).value(), "random"));
  auto model = Mamba2Model::FromStore(c, store, cpu.get());
  ASSERT_TRUE(model.ok());
  EXPECT_DOUBLE_EQ(b.state, double((*model)->state_bytes_per_slot()));
}

}  // namespace
}  // namespace mamba2
