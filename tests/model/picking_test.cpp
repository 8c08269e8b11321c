// Decoding with the token picked on the backend, on the host backends (see
// tests/support/picking_checks.h), and the generator's choice between backend picking and the
// host Sampler.
#include <gtest/gtest.h>

#include <filesystem>

#include "backend/backend.h"
#include "engine/generator.h"
#include "support/picking_checks.h"
#include "support/random_model.h"

namespace mamba2 {
namespace {

class Picking : public ::testing::TestWithParam<std::string> {};

std::unique_ptr<Backend> Make(const std::string& name) {
  return name == "ref" ? MakeRefBackend() : MakeCpuBackend(2);
}

TEST_P(Picking, FollowsTheRuleOverEagerLogits) {
  testing::RandomModelSpec spec;
  spec.n_groups = 2;
  spec.vocab_rows = 200;
  const std::string dir = testing::WriteRandomModel(spec);
  auto backend = Make(GetParam());
  testing::RunPickingSuite(backend.get(), dir, 40);
  std::filesystem::remove_all(dir);
}

// Greedy generation gives the same tokens on both paths; sampled generation with the same seed
// gives the same tokens on ref and cpu (the rule is backend-independent).
TEST_P(Picking, GeneratorPathsAgree) {
  testing::RandomModelSpec spec;
  spec.vocab_rows = 150;
  const std::string dir = testing::WriteRandomModel(spec);
  auto backend = Make(GetParam());
  auto m = Mamba2Model::Load(dir, backend.get());
  ASSERT_TRUE(m.ok()) << m.status().message();
  const auto prompt = testing::RandomIds(9, spec.vocab_rows, 5);
  Generator gen(m->get(), nullptr);
  GenerateOptions o;
  o.max_tokens = 48;
  o.stop_at_eos = false;
  o.sampling.temperature = 0.0f;
  auto on_backend = gen.Generate(prompt, o, nullptr);
  ASSERT_TRUE(on_backend.ok()) << on_backend.status().message();
  EXPECT_TRUE(on_backend->picked_on_backend);
  o.pick_on_backend = false;
  auto on_host = gen.Generate(prompt, o, nullptr);
  ASSERT_TRUE(on_host.ok());
  EXPECT_FALSE(on_host->picked_on_backend);
  EXPECT_EQ(on_backend->tokens, on_host->tokens);
  EXPECT_EQ(int64_t(on_backend->tokens.size()), o.max_tokens);
  // A repetition penalty needs the history: the host Sampler takes over.
  o.pick_on_backend = true;
  o.sampling.repetition_penalty = 1.3f;
  auto penalised = gen.Generate(prompt, o, nullptr);
  ASSERT_TRUE(penalised.ok());
  EXPECT_FALSE(penalised->picked_on_backend);

  // Seeded sampling on the other host backend gives the same ids.
  o.sampling = SamplingParams{};
  o.sampling.temperature = 0.9f;
  o.sampling.top_k = 30;
  o.sampling.seed = 77;
  auto here = gen.Generate(prompt, o, nullptr);
  ASSERT_TRUE(here.ok());
  auto other_backend = Make(GetParam() == "ref" ? "cpu" : "ref");
  auto other = Mamba2Model::Load(dir, other_backend.get());
  ASSERT_TRUE(other.ok());
  Generator gen2(other->get(), nullptr);
  auto there = gen2.Generate(prompt, o, nullptr);
  ASSERT_TRUE(there.ok());
  EXPECT_EQ(here->tokens, there->tokens);
  m->reset();
  other->reset();
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Backends, Picking, ::testing::Values("ref", "cpu"));

}  // namespace
}  // namespace mamba2
