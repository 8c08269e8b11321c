// Accuracy of the cpu backend's bf16 matmul mode against its fp32 mode on a trained model: the
// bundled tiny-shakespeare model over 2048 held-out tokens of its corpus. Bounds stated in
// BENCHMARKS.md: logits relative L2 <= 5e-3, perplexity within 0.1% (measured: 1.5e-3, -0.012%).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "backend/cpu/cpu_backend.h"
#include "model/mamba2_model.h"
#include "support/compare.h"
#include "tokenizer/tokenizer.h"

namespace mamba2 {
namespace {

constexpr double kLogitsRelL2 = 5e-3;
constexpr double kPplRelDiff = 1e-3;

// Perplexity of ids[1..] given the logits of each previous position.
double Perplexity(const std::vector<float>& logits, const std::vector<int32_t>& ids, int64_t vocab) {
  double nll = 0;
  for (size_t t = 0; t + 1 < ids.size(); ++t) {
    const float* row = logits.data() + t * size_t(vocab);
    double mx = row[0];
    for (int64_t v = 1; v < vocab; ++v) mx = std::max(mx, double(row[v]));
    double z = 0;
    for (int64_t v = 0; v < vocab; ++v) z += std::exp(double(row[v]) - mx);
    nll += mx + std::log(z) - double(row[ids[t + 1]]);
  }
  return std::exp(nll / double(ids.size() - 1));
}

TEST(Bf16Mode, TinyShakespeareLogitsAndPerplexityCloseToFp32) {
  const std::string dir = std::string(MAMBA2_SOURCE_DIR) + "/models/tiny-shakespeare";
  std::ifstream f(std::string(MAMBA2_SHARED_DATA) + "/tinyshakespeare.txt", std::ios::binary);
  if (!f) GTEST_SKIP() << "no shared data tinyshakespeare.txt";
  std::stringstream ss;
  ss << f.rdbuf();
  // The training script's held-out part: the last 10% of the text, from char 1003856.
  const std::string text = ss.str().substr(1003856);
  auto tok = Tokenizer::Load(dir + "/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  auto all = tok->Encode(text);
  ASSERT_TRUE(all.ok());
  ASSERT_GE(all->size(), 2048u);
  const std::vector<int32_t> ids(all->begin(), all->begin() + 2048);

  auto run = [&](CpuMatMul mode) {
    CpuBackendOptions o;
    o.n_threads = 2;
    o.matmul = mode;
    auto backend = MakeCpuBackend(o);
    auto model = Mamba2Model::Load(dir, backend.get());
    CHECK_MSG(model.ok(), model.status().message());
    std::vector<float> logits(ids.size() * size_t((*model)->config().vocab_rows));
    const int32_t slot = 0;
    const Status st = (*model)->Prefill(ids, {&slot, 1}, LogitsMode::kAll, logits.data());
    CHECK_MSG(st.ok(), st.message());
    return logits;
  };
  const std::vector<float> f32 = run(CpuMatMul::kFp32), bf16 = run(CpuMatMul::kBf16);
  const int64_t V = int64_t(f32.size() / ids.size());
  const double rel = testing::RelL2(bf16, f32);
  const double ppl32 = Perplexity(f32, ids, V), ppl16 = Perplexity(bf16, ids, V);
  std::printf("tiny-shakespeare, 2048 held-out tokens: logits rel L2 %.3g; ppl fp32 %.4f, bf16 %.4f (%+.3f%%)\n", rel,
              ppl32, ppl16, 100.0 * (ppl16 / ppl32 - 1.0));
  EXPECT_LE(rel, kLogitsRelL2);
  EXPECT_GT(rel, 1e-5) << "bf16 mode should differ from fp32 by bf16 rounding";
  EXPECT_LE(std::abs(ppl16 / ppl32 - 1.0), kPplRelDiff);
  // The model is a trained one: held-out perplexity near the training log's 49.
  EXPECT_LT(ppl32, 80.0);
}

}  // namespace
}  // namespace mamba2
