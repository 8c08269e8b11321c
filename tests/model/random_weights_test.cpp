// Random weights with checkpoint shapes: the shapes against spec 1.1's table, the value
// distributions against spec 4's initialisation, determinism, and a forward pass.
#include "model/random_weights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

#include "backend/backend.h"
#include "io/weight_store.h"
#include "model/mamba2_model.h"

namespace mamba2 {
namespace {

struct Row {
  const char* shape;
  int64_t d_model, n_layer, d_inner, n_heads, conv_dim, in_proj_rows, vocab_rows;
};
// Spec 1.1, typed from its table.
constexpr Row kTable[] = {
    {"130m", 768, 24, 1536, 24, 1792, 3352, 50288},   {"370m", 1024, 48, 2048, 32, 2304, 4384, 50288},
    {"780m", 1536, 48, 3072, 48, 3328, 6448, 50288},  {"1.3b", 2048, 48, 4096, 64, 4352, 8512, 50288},
    {"2.7b", 2560, 64, 5120, 80, 5376, 10576, 50288},
};

TEST(CheckpointShapes, MatchSpecTable) {
  ASSERT_EQ(CheckpointShapeNames().size(), std::size(kTable));
  for (const Row& r : kTable) {
    auto c = CheckpointShapeConfig(r.shape);
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(c->layout, "state-spaces");
    EXPECT_EQ(c->d_model, r.d_model) << r.shape;
    EXPECT_EQ(c->n_layer, r.n_layer) << r.shape;
    EXPECT_EQ(c->d_inner, r.d_inner) << r.shape;
    EXPECT_EQ(c->n_heads, r.n_heads) << r.shape;
    EXPECT_EQ(c->dims().conv_dim(), r.conv_dim) << r.shape;
    EXPECT_EQ(c->in_proj_rows(), r.in_proj_rows) << r.shape;
    EXPECT_EQ(c->vocab_rows, r.vocab_rows) << r.shape;
    EXPECT_EQ(c->vocab_size, 50277);
    EXPECT_EQ(c->d_state, 128);
    EXPECT_EQ(c->chunk_size, 256);
    EXPECT_TRUE(c->tie_embeddings);
  }
  EXPECT_FALSE(CheckpointShapeConfig("7b").ok());
}

// A small state-spaces config, so the statistics below have enough samples but stay fast.
ModelConfig SmallConfig() {
  auto c = ParseConfig(R"({"d_model": 256, "n_layer": 3, "vocab_size": 1000, "pad_vocab_size_multiple": 16,
                           "ssm_cfg": {"layer": "Mamba2", "d_state": 64, "headdim": 32}, "tie_embeddings": true})",
                       "small");
  CHECK_MSG(c.ok(), c.status().message());
  return *c;
}

std::vector<float> Values(const TensorSet& set, const std::string& name) {
  for (const StoredTensor& t : set.tensors)
    if (t.name == name) {
      std::vector<float> v(size_t(t.view.numel()));
      for (size_t i = 0; i < v.size(); ++i) v[i] = LoadAsF32(t.view.data, t.view.dtype, i);
      return v;
    }
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

void ExpectUniform(const std::vector<float>& v, double lo, double hi, const std::string& what) {
  double mean = 0, var = 0;
  for (float x : v) {
    ASSERT_GE(x, lo) << what;
    ASSERT_LE(x, hi) << what;
    mean += x;
  }
  mean /= double(v.size());
  for (float x : v) var += (x - mean) * (x - mean);
  var /= double(v.size());
  const double want_var = (hi - lo) * (hi - lo) / 12.0;
  // Standard errors: mean sd/sqrt(n); variance ~ var * sqrt(0.8/n) for a uniform.
  const double n = double(v.size());
  EXPECT_NEAR(mean, (lo + hi) / 2, 5 * std::sqrt(want_var / n)) << what;
  EXPECT_NEAR(var, want_var, 5 * want_var * std::sqrt(0.8 / n)) << what;
}

TEST(RandomWeights, FollowMambaSsmInitialisation) {
  const ModelConfig c = SmallConfig();
  RandomWeightsOptions o;
  o.seed = 7;
  auto set = MakeRandomWeights(c, o);
  ASSERT_TRUE(set.ok()) << set.status().message();

  const std::vector<float> emb = Values(*set, "backbone.embedding.weight");
  ASSERT_EQ(emb.size(), size_t(c.vocab_rows * c.d_model));
  double mean = 0, var = 0;
  for (float x : emb) mean += x;
  mean /= double(emb.size());
  for (float x : emb) var += (x - mean) * (x - mean);
  const double sd = std::sqrt(var / double(emb.size()));
  EXPECT_NEAR(mean, 0.0, 5 * 0.02 / std::sqrt(double(emb.size())));
  EXPECT_NEAR(sd, 0.02, 5 * 0.02 / std::sqrt(2.0 * double(emb.size())));

  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "backbone.layers." + std::to_string(l) + ".";
    const double a_in = 1.0 / std::sqrt(double(c.d_model));
    ExpectUniform(Values(*set, p + "mixer.in_proj.weight"), -a_in, a_in, p + "in_proj");
    const double a_out = 1.0 / std::sqrt(double(c.d_inner)) / std::sqrt(double(c.n_layer));
    ExpectUniform(Values(*set, p + "mixer.out_proj.weight"), -a_out, a_out, p + "out_proj");
    ExpectUniform(Values(*set, p + "mixer.conv1d.weight"), -0.5, 0.5, p + "conv1d.weight");
    ExpectUniform(Values(*set, p + "mixer.conv1d.bias"), -0.5, 0.5, p + "conv1d.bias");
    for (float a : Values(*set, p + "mixer.A_log")) {
      EXPECT_GE(std::exp(a), 1.0f - 1e-5f);
      EXPECT_LE(std::exp(a), 16.0f + 1e-4f);
    }
    for (float b : Values(*set, p + "mixer.dt_bias")) {
      const double dt = std::log1p(std::exp(double(b)));  // softplus undoes the inverse
      EXPECT_GE(dt, 1e-3 * (1 - 1e-5));
      EXPECT_LE(dt, 0.1 * (1 + 1e-5));
    }
    for (const char* ones : {"mixer.D", "mixer.norm.weight", "norm.weight"})
      for (float v : Values(*set, p + ones)) EXPECT_EQ(v, 1.0f) << p + ones;
  }
  for (float v : Values(*set, "backbone.norm_f.weight")) EXPECT_EQ(v, 1.0f);
}

TEST(RandomWeights, MambaTwo130mHasTheCheckpointsParameterCount) {
  auto c = CheckpointShapeConfig("130m");
  ASSERT_TRUE(c.ok());
  RandomWeightsOptions o;
  o.dtype = DType::BF16;
  o.n_threads = 2;
  auto set = MakeRandomWeights(*c, o);
  ASSERT_TRUE(set.ok());
  // The sum of spec 1.1's shapes; llama.cpp reports the same 128.99 M for the converted model.
  EXPECT_EQ(UniqueTensorBytes(*set), size_t(128989632) * 2);
  // lm_head is the embedding's bytes under a second name, as in the published pickles.
  const void *emb = nullptr, *head = nullptr;
  for (const StoredTensor& t : set->tensors) {
    if (t.name == "backbone.embedding.weight") emb = t.view.data;
    if (t.name == "lm_head.weight") head = t.view.data;
  }
  EXPECT_NE(emb, nullptr);
  EXPECT_EQ(emb, head);
}

TEST(RandomWeights, DependOnlyOnSeedAndDtype) {
  const ModelConfig c = SmallConfig();
  auto make = [&](uint64_t seed, int threads, DType dt) {
    RandomWeightsOptions o;
    o.seed = seed;
    o.n_threads = threads;
    o.dtype = dt;
    auto s = MakeRandomWeights(c, o);
    CHECK(s.ok());
    return std::move(s).value();
  };
  const TensorSet a = make(3, 1, DType::F32), b = make(3, 3, DType::F32), d = make(4, 1, DType::F32);
  const TensorSet h = make(3, 2, DType::BF16), f = make(3, 2, DType::F16);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  size_t differing = 0;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const TensorView& x = a.tensors[i].view;
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(std::memcmp(x.data, b.tensors[i].view.data, x.nbytes()), 0) << a.tensors[i].name;
    differing += std::memcmp(x.data, d.tensors[i].view.data, x.nbytes()) != 0;
    // bf16 / f16 weights are the f32 draws rounded to nearest even.
    for (int64_t j = 0; j < x.numel(); ++j) {
      const float v = x.as<const float>()[j];
      ASSERT_EQ(h.tensors[i].view.as<const uint16_t>()[j], F32ToBF16(v)) << a.tensors[i].name;
      ASSERT_EQ(f.tensors[i].view.as<const uint16_t>()[j], F32ToF16(v)) << a.tensors[i].name;
    }
  }
  EXPECT_GT(differing, a.tensors.size() / 2) << "another seed should change the random tensors";
}

TEST(RandomWeights, LoadIntoTheModelAndRun) {
  const ModelConfig c = SmallConfig();
  auto set = MakeRandomWeights(c, RandomWeightsOptions{});
  ASSERT_TRUE(set.ok());
  auto store = std::make_shared<const WeightStore>(WeightStore::FromTensorSet(std::move(set).value(), "random"));
  EXPECT_EQ(store->format(), "random");
  auto backend = MakeRefBackend();
  auto model = Mamba2Model::FromStore(c, store, backend.get());
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::vector<float> logits(size_t(c.vocab_rows));
  const int32_t slot = 0;
  const std::vector<int32_t> ids = {1, 2, 3, 500, 999};
  ASSERT_TRUE((*model)->Prefill(ids, {&slot, 1}, LogitsMode::kLast, logits.data()).ok());
  double norm = 0;
  for (float v : logits) {
    ASSERT_TRUE(std::isfinite(v));
    norm += double(v) * v;
  }
  EXPECT_GT(norm, 0.0);
}

TEST(RandomWeights, RejectsIntegerDtype) {
  RandomWeightsOptions o;
  o.dtype = DType::I32;
  EXPECT_FALSE(MakeRandomWeights(SmallConfig(), o).ok());
}

}  // namespace
}  // namespace mamba2
