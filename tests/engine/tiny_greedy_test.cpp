// The bundled model through the engine: tokenizer ids and 64 greedy tokens must equal those of
// the training code's own float64 forward pass (tools/train_tiny.py --greedy-only wrote them).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "engine/generator.h"
#include "model/mamba2_model.h"
#include "tokenizer/tokenizer.h"

namespace mamba2 {
namespace {

class TinyGreedy : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyGreedy, MatchesTrainingCodeForward) {
  const std::string dir = std::string(MAMBA2_SOURCE_DIR) + "/models/tiny-shakespeare";
  std::ifstream f(std::string(MAMBA2_TEST_DATA) + "/tiny_greedy.json");
  ASSERT_TRUE(f) << "missing tests/data/tiny_greedy.json";
  const nlohmann::json meta = nlohmann::json::parse(f);
  auto tok = Tokenizer::Load(dir + "/tokenizer.json");
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  auto backend = GetParam() == "ref" ? MakeRefBackend() : MakeCpuBackend(2);
  auto model = Mamba2Model::Load(dir, backend.get());
  ASSERT_TRUE(model.ok()) << model.status().message();
  ASSERT_EQ(meta["cases"].size(), 3u);
  for (const auto& c : meta["cases"]) {
    const auto prompt_ids = c["prompt_ids"].get<std::vector<int32_t>>();
    auto ids = tok->Encode(c["prompt"].get<std::string>());
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*ids, prompt_ids) << "tokenizer differs on " << c["prompt"];
    GenerateOptions o;
    o.max_tokens = int64_t(c["greedy_ids"].size());
    o.sampling.temperature = 0.0f;
    o.stop_at_eos = false;
    Generator gen(model->get(), &*tok);
    auto r = gen.Generate(prompt_ids, o, nullptr);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->tokens, c["greedy_ids"].get<std::vector<int32_t>>()) << "prompt " << c["prompt"];
    EXPECT_EQ(r->text, c["text"].get<std::string>());
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, TinyGreedy, ::testing::Values("cpu", "ref"));

}  // namespace
}  // namespace mamba2
