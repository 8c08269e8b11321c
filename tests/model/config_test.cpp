// Config parsing for both published layouts, checked against the derived sizes the
// specification tabulates for the real checkpoints.
#include <gtest/gtest.h>

#include <cmath>

#include "model/config.h"

namespace mamba2 {
namespace {

std::string StateSpacesConfig(int d_model, int n_layer) {
  return "{\"d_model\": " + std::to_string(d_model) + ", \"d_intermediate\": 0, \"n_layer\": " +
         std::to_string(n_layer) +
         ", \"vocab_size\": 50277, \"ssm_cfg\": {\"layer\": \"Mamba2\"}, \"attn_layer_idx\": [], \"attn_cfg\": {}, "
         "\"rms_norm\": true, \"residual_in_fp32\": true, \"fused_add_norm\": true, \"pad_vocab_size_multiple\": 16, "
         "\"tie_embeddings\": true}";
}

TEST(Config, StateSpacesCheckpointsDeriveThePublishedSizes) {
  struct Row { int d_model, n_layer, d_inner, n_heads, conv_dim, in_proj; };
  // From the specification's table (section 1.1).
  for (Row r : {Row{768, 24, 1536, 24, 1792, 3352}, Row{1024, 48, 2048, 32, 2304, 4384},
                Row{1536, 48, 3072, 48, 3328, 6448}, Row{2048, 48, 4096, 64, 4352, 8512},
                Row{2560, 64, 5120, 80, 5376, 10576}}) {
    auto c = ParseConfig(StateSpacesConfig(r.d_model, r.n_layer), "config.json");
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(c->layout, "state-spaces");
    EXPECT_EQ(c->d_inner, r.d_inner);
    EXPECT_EQ(c->n_heads, r.n_heads);
    EXPECT_EQ(c->dims().conv_dim(), r.conv_dim);
    EXPECT_EQ(c->in_proj_rows(), r.in_proj);
    EXPECT_EQ(c->vocab_rows, 50288);
    EXPECT_EQ(c->d_state, 128);
    EXPECT_EQ(c->chunk_size, 256);
    EXPECT_TRUE(c->tie_embeddings);
  }
}

TEST(Config, TransformersCodestralLayout) {
  const char* text = R"({"model_type": "mamba2", "hidden_size": 4096, "num_hidden_layers": 64, "num_heads": 128,
    "head_dim": 64, "state_size": 128, "n_groups": 8, "expand": 2, "conv_kernel": 4, "chunk_size": 256,
    "vocab_size": 32768, "layer_norm_epsilon": 1e-5, "use_bias": false, "use_conv_bias": true,
    "time_step_limit": [0.0, Infinity], "tie_word_embeddings": false, "norm_before_gate": true,
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0})";
  auto c = ParseConfig(text, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->d_inner, 8192);
  EXPECT_EQ(c->dims().conv_dim(), 10240);
  EXPECT_EQ(c->in_proj_rows(), 18560);
  EXPECT_EQ(c->n_groups, 8);
  EXPECT_FALSE(c->tie_embeddings);
  EXPECT_TRUE(std::isinf(c->dt_limit_max));
  EXPECT_EQ(c->eos_id, 2);
}

TEST(Config, InfinityInTransformers5Form) {
  auto c = ParseConfig(R"({"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100, "head_dim": 16,
    "time_step_limit": [0.0, {"__float__": "Infinity"}]})", "c.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(std::isinf(c->dt_limit_max));
  EXPECT_EQ(c->dt_limit_min, 0.0f);
}

TEST(Config, InfinityInsideStringsIsLeftAlone) {
  EXPECT_EQ(QuoteNonFiniteJsonNumbers(R"({"a": "Infinity", "b": [-Infinity, NaN]})"),
            R"({"a": "Infinity", "b": ["-Infinity", "NaN"]})");
}

TEST(Config, RefusesWhatTheEngineDoesNotImplement) {
  auto expect_refused = [](const std::string& text, const std::string& needle) {
    auto c = ParseConfig(text, "config.json");
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_NE(c.status().message().find(needle), std::string::npos) << c.status().message();
    EXPECT_NE(c.status().message().find("config.json"), std::string::npos);
  };
  std::string base = StateSpacesConfig(768, 24);
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = base;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  expect_refused(with("\"d_intermediate\": 0", "\"d_intermediate\": 512"), "d_intermediate");
  expect_refused(with("\"attn_layer_idx\": []", "\"attn_layer_idx\": [3]"), "attention");
  expect_refused(with("\"rms_norm\": true", "\"rms_norm\": false"), "LayerNorm");
  expect_refused(with("\"layer\": \"Mamba2\"", "\"layer\": \"Mamba1\""), "Mamba1");
  expect_refused(with("\"layer\": \"Mamba2\"", "\"layer\": \"Mamba2\", \"norm_before_gate\": true"), "norm_before_gate");
  expect_refused(R"({"model_type": "mamba", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 10})", "mamba");
  expect_refused(R"({"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 10, "head_dim": 48})", "head_dim");
  expect_refused("{not json", "not valid JSON");
  expect_refused(R"({"foo": 1})", "neither");
  expect_refused(R"({"hidden_size": "64", "num_hidden_layers": 2, "vocab_size": 10})", "wrong type");
}

}  // namespace
}  // namespace mamba2
