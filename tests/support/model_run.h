// Shared by the model-level parity suites (every backend): random token streams, the
// prefill-then-step driver, and the list of random model shapes they all cover.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/mamba2_model.h"
#include "support/random_model.h"

namespace mamba2::testing {

inline std::vector<int32_t> RandomIds(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = int32_t(rng() % uint64_t(vocab));
  return ids;
}

// Logits of every position [n, vocab_rows]: the first k tokens by prefill, the rest by step.
inline std::vector<float> RunLogits(Mamba2Model& m, const std::vector<int32_t>& ids, int64_t k) {
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

struct ModelCase {
  std::string name;
  RandomModelSpec spec;
};

// n_groups 1/2/8, head_dim 16/64, d_state 16/128, f32/bf16/f16 weights, tied/untied,
// sharded, both embedding names, chunk sizes 8/16/32.
inline std::vector<ModelCase> StandardModelCases() {
  std::vector<ModelCase> cases;
  auto add = [&](std::string name, auto edit) {
    RandomModelSpec s;
    edit(s);
    cases.push_back({std::move(name), s});
  };
  add("g1_p16_n16_f32", [](RandomModelSpec&) {});
  add("g2_p16_n16_bf16_untied", [](RandomModelSpec& s) { s.n_groups = 2; s.dtype = DType::BF16; s.tied = false; });
  add("g8_p16_n16_f16", [](RandomModelSpec& s) { s.n_groups = 8; s.dtype = DType::F16; });
  add("g1_p64_n128_f32_chunk32", [](RandomModelSpec& s) { s.head_dim = 64; s.d_state = 128; s.chunk_size = 32; });
  add("g2_p64_n16_sharded", [](RandomModelSpec& s) { s.head_dim = 64; s.n_groups = 2; s.shards = 3; });
  add("g1_p16_n128_ssnames_chunk8", [](RandomModelSpec& s) { s.d_state = 128; s.ss_names = true; s.chunk_size = 8; });
  return cases;
}

}  // namespace mamba2::testing
