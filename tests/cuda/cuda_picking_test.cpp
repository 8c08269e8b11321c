// Decoding with the token picked on the device: the recorded step (a CUDA graph) and the pick
// kernel against the rule's host reference over the same backend's eager logits (see
// tests/support/picking_checks.h), and, on the bundled model, 64 greedy tokens of the CUDA
// backend in fp32 mode equal to the cpu backend's. The emulated backend runs the same kernel
// text without a GPU (its Record re-issues the ops: graphs are not emulated).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cuda/emu_backend.h"
#include "engine/generator.h"
#include "support/picking_checks.h"
#include "support/random_model.h"
#include "tokenizer/tokenizer.h"
#if defined(MAMBA2_HAVE_CUDA)
#include "backend/cuda/cuda_backend.h"
#endif

namespace mamba2 {
namespace {

std::unique_ptr<Backend> MakeCudaFp32() {
#if defined(MAMBA2_HAVE_CUDA)
  return MakeCudaBackend(CudaBackendOptions{});
#else
  return nullptr;
#endif
}

std::string RandomDir() {
  testing::RandomModelSpec spec;
  spec.n_groups = 2;
  spec.vocab_rows = 200;
  return testing::WriteRandomModel(spec);
}

TEST(CudaPicking, DeviceFollowsTheRuleOverEagerLogits) {
  auto backend = MakeCudaFp32();
  if (!backend) GTEST_SKIP() << "no CUDA device";
  const std::string dir = RandomDir();
  testing::RunPickingSuite(backend.get(), dir, 64);
  std::filesystem::remove_all(dir);
}

TEST(CudaPickingEmulated, KernelTextFollowsTheRuleOverEagerLogits) {
  auto backend = testing::MakeEmuBackend(false);
  const std::string dir = RandomDir();
  testing::RunPickingSuite(backend.get(), dir, 12);
  std::filesystem::remove_all(dir);
}

// The checkout the test binary reads the bundled model from: a binary built elsewhere and
// carried to the GPU machine is told the copy there by MAMBA2_SOURCE_DIR.
std::string SourceDir() {
  const char* env = std::getenv("MAMBA2_SOURCE_DIR");
  return env && *env ? env : MAMBA2_SOURCE_DIR;
}

// The acceptance: 64 greedy tokens in fp32 mode equal to the CPU backend's.
void ExpectGreedyEqualsCpu(Backend* dut, size_t n_prompts, int64_t n_tokens) {
  const std::string dir = SourceDir() + "/models/tiny-shakespeare";
  auto tok = Tokenizer::Load(dir + "/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  auto cpu_backend = MakeCpuBackend(2);
  auto cpu = Mamba2Model::Load(dir, cpu_backend.get());
  ASSERT_TRUE(cpu.ok()) << cpu.status().message();
  auto model = Mamba2Model::Load(dir, dut);
  ASSERT_TRUE(model.ok()) << model.status().message();
  GenerateOptions o;
  o.max_tokens = n_tokens;
  o.sampling.temperature = 0.0f;
  o.stop_at_eos = false;
  const std::vector<std::string> prompts = {"ROMEO:\n", "First Citizen:\nBefore we proceed", "KING HENRY VI:\nO God!"};
  for (size_t i = 0; i < n_prompts && i < prompts.size(); ++i) {
    const std::string& prompt = prompts[i];
    auto ids = tok->Encode(prompt);
    ASSERT_TRUE(ids.ok());
    auto want = Generator(cpu->get(), &*tok).Generate(*ids, o, nullptr);
    auto got = Generator(model->get(), &*tok).Generate(*ids, o, nullptr);
    ASSERT_TRUE(want.ok() && got.ok());
    EXPECT_TRUE(got->picked_on_backend);
    EXPECT_EQ(got->tokens, want->tokens) << "prompt " << prompt;
    EXPECT_EQ(got->text, want->text);
  }
}

TEST(CudaPicking, GreedyTokensEqualCpu) {
  auto backend = MakeCudaFp32();
  if (!backend) GTEST_SKIP() << "no CUDA device";
  ExpectGreedyEqualsCpu(backend.get(), 3, 64);
}

// The emulator runs the kernels at ~1/1000 of the speed: one prompt, 16 tokens.
TEST(CudaPickingEmulated, GreedyTokensEqualCpu) {
  auto backend = testing::MakeEmuBackend(false);
  ExpectGreedyEqualsCpu(backend.get(), 1, 16);
}

}  // namespace
}  // namespace mamba2
