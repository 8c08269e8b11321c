// Decoding with the token picked on the device: the recorded step (a CUDA graph) and the pick
// kernel against the rule's host reference over the same backend's eager logits (see
// tests/support/picking_checks.h), and, on the bundled model, 64 greedy tokens of the CUDA
// backend in fp32 mode equal to the cpu backend's. The emulated backend runs the same kernel
// text without a GPU (its Record re-issues the ops: graphs are not emulated).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cuda/cuda_test_options.h"
#include "cuda/emu_backend.h"
#include "engine/generator.h"
#include "support/picking_checks.h"
#include "support/random_model.h"
#include "tokenizer/tokenizer.h"
#if defined(MAMBA2_HAVE_CUDA)
#include "backend/cuda/cuda_backend.h"
#endif
#if defined(M2_FAKE_CUDA_RUNTIME)
#include "fake_cuda/fake_device.h"
#endif

namespace mamba2 {
namespace {

std::unique_ptr<Backend> MakeCudaFp32() {
#if defined(MAMBA2_HAVE_CUDA)
  return MakeCudaBackend(TestCudaOptions());
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
  auto backend = testing::MakeEmuBackend();
  const std::string dir = RandomDir();
  testing::RunPickingSuite(backend.get(), dir, 12);
  std::filesystem::remove_all(dir);
}

// The kernel on full-vocabulary rows (50,280 wide, GPT-NeoX's padded vocab) against the host
// reference, and its time per row for the settings a user picks (printed, not asserted).
TEST(CudaPicking, KernelRowsMatchReference) {
  auto backend = MakeCudaFp32();
  if (!backend) GTEST_SKIP() << "no CUDA device";
  const int64_t V = 50280, rows = 8;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  std::vector<float> host(size_t(rows * V));
  for (float& v : host) v = normal(rng);
  auto* logits = static_cast<float*>(backend->Alloc(host.size() * sizeof(float)));
  auto* draw = static_cast<uint64_t*>(backend->Alloc(sizeof(uint64_t)));
  auto* ids = static_cast<int32_t*>(backend->Alloc(size_t(rows) * sizeof(int32_t)));
  backend->CopyToDevice(logits, host.data(), host.size() * sizeof(float));
  struct Setting {
    const char* name;
    float temperature;
    int top_k;
    float top_p;
    float min_p;
  };
  const Setting settings[] = {{"greedy", 0.0f, 0, 1.0f, 0.0f},
                              {"temperature 0.8", 0.8f, 0, 1.0f, 0.0f},
                              {"top-k 40 + top-p 0.95", 0.8f, 40, 0.95f, 0.0f},
                              {"top-p 0.9", 1.0f, 0, 0.9f, 0.0f},
                              {"min-p 0.05", 1.0f, 0, 1.0f, 0.05f}};
  for (const Setting& st : settings) {
    PickParams p;
    p.temperature = st.temperature;
    p.top_k = st.top_k;
    p.top_p = st.top_p;
    p.min_p = st.min_p;
    p.n_valid = int32_t(V - 3);
    p.seed = 42;
    const uint64_t zero = 0;
    backend->CopyToDevice(draw, &zero, sizeof zero);
    int mismatches = 0, near = 0;
    for (uint64_t d = 0; d < 20; ++d) {
      backend->PickTokens(logits, rows, V, p, draw, ids);
      std::vector<int32_t> got(static_cast<size_t>(rows));
      backend->CopyToHost(got.data(), ids, got.size() * sizeof(int32_t));
      for (int64_t r = 0; r < rows; ++r) {
        double margin = 1.0;
        const int32_t want = PickReference(host.data() + r * V, p, PickUniform(p.seed, d, uint64_t(r)), &margin);
        if (got[size_t(r)] != want) (margin < 1e-12 ? near : mismatches)++;
      }
    }
    EXPECT_EQ(mismatches, 0) << st.name;
    EXPECT_LE(near, 1) << st.name;
    // Time: 200 launches of one row (the fake device's emulator would take minutes: 2).
    const int timed = kFakeDevice ? 2 : 200;
    backend->Sync();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < timed; ++i) backend->PickTokens(logits, 1, V, p, draw, ids);
    backend->Sync();
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / timed;
    std::printf("pick kernel, %s: %.1f us per 50280-wide row (launches included)\n", st.name, us);
  }
  backend->Free(logits);
  backend->Free(draw);
  backend->Free(ids);
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
#if defined(M2_FAKE_CUDA_RUNTIME)
  const fake_cuda::Counters before = fake_cuda::GetCounters();
#endif
  ExpectGreedyEqualsCpu(backend.get(), 3, 64);
#if defined(M2_FAKE_CUDA_RUNTIME)
  // On the fake device: the decode steps ran as captured graphs (unless the options say not to).
  const fake_cuda::Counters after = fake_cuda::GetCounters();
  if (TestCudaOptions().graphs) {
    EXPECT_GE(after.captures, before.captures + 1);
    EXPECT_GE(after.graph_launches, before.graph_launches + 3 * 60);
  }
#endif
}

// The emulator runs the kernels at ~1/1000 of the speed: one prompt, 16 tokens.
TEST(CudaPickingEmulated, GreedyTokensEqualCpu) {
  auto backend = testing::MakeEmuBackend();
  ExpectGreedyEqualsCpu(backend.get(), 1, 16);
}

}  // namespace
}  // namespace mamba2
