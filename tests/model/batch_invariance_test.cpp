// A decode step of several sequences gives each one exactly the logits it gets when stepped
// alone (bitwise, not just within rounding): the server batches whatever sequences are running,
// and a response should not depend on what else was running. Batches up to 8 rows on the cpu
// backend (its GEMV path; more rows go to the library GEMM, which rounds per tile), in both
// matmul modes, and up to 16 on the ref oracle; f32 and bf16 weights.
#include <gtest/gtest.h>

#include <filesystem>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "model/mamba2_model.h"
#include "support/model_run.h"
#include "support/random_model.h"

namespace mamba2 {
namespace {

struct InvarianceCase {
  std::string name;
  std::string backend;  // "cpu" | "cpu-bf16" | "ref"
  DType dtype;
};

class BatchInvariance : public ::testing::TestWithParam<InvarianceCase> {};

std::unique_ptr<Backend> Make(const std::string& name) {
  if (name == "ref") return MakeRefBackend();
  CpuBackendOptions o;
  o.n_threads = 2;
  o.matmul = name == "cpu-bf16" ? CpuMatMul::kBf16 : CpuMatMul::kFp32;
  return MakeCpuBackend(o);
}

TEST_P(BatchInvariance, BatchedStepEqualsEachSequenceAlone) {
  const InvarianceCase& c = GetParam();
  testing::RandomModelSpec spec;
  spec.n_groups = 2;
  spec.d_model = 80;  // k = 80 and 160: GEMV tails of 16-lane vectors are exercised
  spec.vocab_rows = 300;
  spec.dtype = c.dtype;
  const std::string dir = testing::WriteRandomModel(spec);
  auto backend = Make(c.backend);
  ModelOptions opt;
  opt.max_slots = 16;
  auto batched = Mamba2Model::Load(dir, backend.get(), opt);
  auto alone = Mamba2Model::Load(dir, backend.get(), opt);
  ASSERT_TRUE(batched.ok() && alone.ok());
  const int64_t V = spec.vocab_rows;
  std::vector<int> sizes = {2, 3, 5, 8};
  if (c.backend == "ref") sizes.insert(sizes.end(), {13, 16});
  for (int n : sizes) {
    std::vector<int32_t> slots, tokens;
    for (int s = 0; s < n; ++s) {
      const int32_t slot = int32_t((s * 7 + n) % 16);  // not in order
      slots.push_back(slot);
      const auto prompt = testing::RandomIds(3 + s, V, uint64_t(100 * n + s));
      for (Mamba2Model* m : {batched->get(), alone->get()}) {
        m->ResetSlot(slot);
        ASSERT_TRUE(m->Prefill(prompt, {&slot, 1}, LogitsMode::kNone, nullptr).ok());
      }
      tokens.push_back(int32_t((s * 31 + 5) % V));
    }
    for (int step = 0; step < 3; ++step) {
      std::vector<float> all(size_t(n * V));
      ASSERT_TRUE((*batched)->Step(tokens, slots, all.data()).ok());
      for (int s = 0; s < n; ++s) {
        std::vector<float> one(static_cast<size_t>(V));
        ASSERT_TRUE((*alone)->Step({&tokens[size_t(s)], 1}, {&slots[size_t(s)], 1}, one.data()).ok());
        const std::vector<float> row(all.begin() + s * V, all.begin() + (s + 1) * V);
        ASSERT_EQ(row, one) << c.name << ": batch of " << n << ", sequence " << s << ", step " << step;
      }
      for (int s = 0; s < n; ++s) tokens[size_t(s)] = int32_t((tokens[size_t(s)] * 13 + step + 1) % V);
    }
  }
  batched->reset();
  alone->reset();
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Backends, BatchInvariance,
                         ::testing::Values(InvarianceCase{"cpu_f32", "cpu", DType::F32},
                                           InvarianceCase{"cpu_bf16_weights", "cpu", DType::BF16},
                                           InvarianceCase{"cpu_bf16_mode", "cpu-bf16", DType::BF16},
                                           InvarianceCase{"ref_f32", "ref", DType::F32}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace mamba2
