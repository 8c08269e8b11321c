#include "support/random_model.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace mamba2::testing {
namespace {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

void WriteSafetensors(const std::string& path, const std::map<std::string, Tensor>& tensors, DType dtype) {
  nlohmann::json header = nlohmann::json::object();
  std::string blob;
  const size_t esize = DTypeSize(dtype);
  for (const auto& [name, t] : tensors) {
    const size_t begin = blob.size();
    for (float v : t.values) {
      if (dtype == DType::F32) {
        blob.append(reinterpret_cast<const char*>(&v), 4);
      } else {
        const uint16_t h = dtype == DType::BF16 ? F32ToBF16(v) : F32ToF16(v);
        blob.append(reinterpret_cast<const char*>(&h), 2);
      }
    }
    header[name] = {{"dtype", dtype == DType::F32 ? "F32" : dtype == DType::BF16 ? "BF16" : "F16"},
                    {"shape", t.shape},
                    {"data_offsets", {begin, begin + t.values.size() * esize}}};
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  const uint64_t n = h.size();
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(h.data(), std::streamsize(h.size()));
  f.write(blob.data(), std::streamsize(blob.size()));
  CHECK_MSG(bool(f), "cannot write " + path);
}

}  // namespace

std::string MakeTempDir() {
  std::string tmpl = (std::getenv("TMPDIR") ? std::string(std::getenv("TMPDIR")) : std::string("/tmp")) +
                     "/mamba2-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  CHECK(mkdtemp(buf.data()) != nullptr);
  return std::string(buf.data());
}

std::string WriteRandomModel(const RandomModelSpec& s) {
  std::mt19937_64 rng(s.seed);
  auto uniform = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
  auto normal = [&](double sd) { return std::normal_distribution<double>(0.0, sd)(rng); };
  const int64_t d_inner = s.expand * s.d_model, n_heads = d_inner / s.head_dim;
  const int64_t conv_dim = d_inner + 2 * s.n_groups * s.d_state;
  const int64_t in_rows = 2 * d_inner + 2 * s.n_groups * s.d_state + n_heads;
  auto fill = [](std::vector<int64_t> shape, auto gen) {
    Tensor t{shape, {}};
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    for (int64_t i = 0; i < n; ++i) t.values.push_back(float(gen()));
    return t;
  };
  std::map<std::string, Tensor> w;
  w[s.ss_names ? "backbone.embedding.weight" : "backbone.embeddings.weight"] =
      fill({s.vocab_rows, s.d_model}, [&] { return normal(0.02); });
  if (!s.tied) w["lm_head.weight"] = fill({s.vocab_rows, s.d_model}, [&] { return normal(0.02); });
  // Norm weights and D are 1 at init; perturb them so the tests see them used.
  w["backbone.norm_f.weight"] = fill({s.d_model}, [&] { return 1.0 + 0.1 * normal(1.0); });
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "backbone.layers." + std::to_string(l) + ".";
    w[p + "norm.weight"] = fill({s.d_model}, [&] { return 1.0 + 0.1 * normal(1.0); });
    const double a = 1.0 / std::sqrt(double(s.d_model));
    w[p + "mixer.in_proj.weight"] = fill({in_rows, s.d_model}, [&] { return uniform(-a, a); });
    w[p + "mixer.conv1d.weight"] = fill({conv_dim, 1, s.d_conv}, [&] { return uniform(-0.5, 0.5); });
    w[p + "mixer.conv1d.bias"] = fill({conv_dim}, [&] { return uniform(-0.5, 0.5); });
    w[p + "mixer.dt_bias"] = fill({n_heads}, [&] {
      double dt = std::exp(uniform(0, 1) * (std::log(0.1) - std::log(0.001)) + std::log(0.001));
      dt = std::max(dt, 1e-4);
      return dt + std::log(-std::expm1(-dt));
    });
    w[p + "mixer.A_log"] = fill({n_heads}, [&] { return std::log(uniform(1.0, 16.0)); });
    w[p + "mixer.D"] = fill({n_heads}, [&] { return 1.0 + 0.1 * normal(1.0); });
    w[p + "mixer.norm.weight"] = fill({d_inner}, [&] { return 1.0 + 0.1 * normal(1.0); });
    const double b = 1.0 / std::sqrt(double(d_inner)) / std::sqrt(double(s.n_layer));
    w[p + "mixer.out_proj.weight"] = fill({s.d_model, d_inner}, [&] { return uniform(-b, b); });
  }

  const std::string dir = MakeTempDir();
  nlohmann::json cfg = {{"model_type", "mamba2"},
                        {"architectures", {"Mamba2ForCausalLM"}},
                        {"hidden_size", s.d_model},
                        {"num_hidden_layers", s.n_layer},
                        {"state_size", s.d_state},
                        {"head_dim", s.head_dim},
                        {"num_heads", n_heads},
                        {"n_groups", s.n_groups},
                        {"expand", s.expand},
                        {"conv_kernel", s.d_conv},
                        {"chunk_size", s.chunk_size},
                        {"vocab_size", s.vocab_rows},
                        {"layer_norm_epsilon", 1e-5},
                        {"use_bias", false},
                        {"use_conv_bias", true},
                        {"tie_word_embeddings", s.tied}};
  std::string cfg_text = cfg.dump(2);
  // The non-standard literal the published configs use.
  const std::string key = "\"tie_word_embeddings\"";
  cfg_text.insert(cfg_text.find(key), "\"time_step_limit\": [0.0, Infinity],\n  ");
  std::ofstream(dir + "/config.json") << cfg_text;

  if (s.shards <= 1) {
    WriteSafetensors(dir + "/model.safetensors", w, s.dtype);
    return dir;
  }
  std::vector<std::map<std::string, Tensor>> parts(size_t(s.shards));
  nlohmann::json weight_map = nlohmann::json::object();
  int i = 0;
  for (auto& [name, t] : w) {
    const int k = i++ % s.shards;
    char file[64];
    std::snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", k + 1, s.shards);
    parts[size_t(k)][name] = t;
    weight_map[name] = file;
  }
  for (int k = 0; k < s.shards; ++k) {
    char file[64];
    std::snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", k + 1, s.shards);
    WriteSafetensors(dir + "/" + file, parts[size_t(k)], s.dtype);
  }
  std::ofstream(dir + "/model.safetensors.index.json")
      << nlohmann::json{{"metadata", nlohmann::json::object()}, {"weight_map", weight_map}}.dump(2);
  return dir;
}

}  // namespace mamba2::testing
