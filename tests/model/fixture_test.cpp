// The engine against logits from the independent float64 Python reference (tools/mamba2_ref.py),
// on the committed fixture models of both layouts (tools/make_fixtures.py made them).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "io/npy.h"
#include "model/mamba2_model.h"
#include "support/compare.h"

namespace mamba2 {
namespace {

constexpr double kTol = 1e-5;

struct FixtureCase {
  std::string fixture;
  std::string backend;
};

class FixtureLogits : public ::testing::TestWithParam<FixtureCase> {};

TEST_P(FixtureLogits, MatchFloat64Reference) {
  const std::string dir = std::string(MAMBA2_TEST_DATA) + "/fixtures/" + GetParam().fixture;
  std::ifstream f(dir + "/ids.json");
  ASSERT_TRUE(f) << "missing fixture " << dir << "/ids.json (regenerate with tools/make_fixtures.py)";
  const nlohmann::json meta = nlohmann::json::parse(f);
  auto backend = GetParam().backend == "ref" ? MakeRefBackend() : MakeCpuBackend(2);
  auto model = Mamba2Model::Load(dir, backend.get());
  ASSERT_TRUE(model.ok()) << model.status().message();
  const int64_t V = (*model)->config().vocab_rows;
  ASSERT_EQ(V, meta["vocab_rows"].get<int64_t>());
  for (const auto& seq : meta["sequences"]) {
    const std::vector<int32_t> ids = seq["ids"].get<std::vector<int32_t>>();
    auto expected = ReadNpy(dir + "/" + seq["logits"].get<std::string>());
    ASSERT_TRUE(expected.ok()) << expected.status().message();
    ASSERT_EQ(expected->shape, (std::vector<int64_t>{int64_t(ids.size()), V}));
    std::vector<float> want(expected->data.begin(), expected->data.end());
    const int64_t n = int64_t(ids.size());
    // Whole prefill, and prefill of about half then step for the rest.
    for (int64_t k : {n, std::max<int64_t>(1, n / 2)}) {
      std::vector<float> got(static_cast<size_t>(n * V));
      const int32_t slot = 0;
      (*model)->ResetSlot(slot);
      ASSERT_TRUE((*model)->Prefill({ids.data(), size_t(k)}, {&slot, 1}, LogitsMode::kAll, got.data()).ok());
      for (int64_t i = k; i < n; ++i)
        ASSERT_TRUE((*model)->Step({ids.data() + i, 1}, {&slot, 1}, got.data() + i * V).ok());
      EXPECT_LE(testing::RelL2(got, want), kTol) << GetParam().fixture << " len " << n << " prefill " << k;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureLogits,
                         ::testing::Values(FixtureCase{"ss_tiny", "ref"}, FixtureCase{"ss_tiny", "cpu"},
                                           FixtureCase{"hf_tiny", "ref"}, FixtureCase{"hf_tiny", "cpu"},
                                           FixtureCase{"hf_sharded", "cpu"}),
                         [](const ::testing::TestParamInfo<FixtureCase>& i) {
                           return i.param.fixture + "_" + i.param.backend;
                         });

}  // namespace
}  // namespace mamba2
