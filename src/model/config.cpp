#include "model/config.h"
#include "io/read_file.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace mamba2 {
namespace {

using json = nlohmann::json;

// Parses a float that may be a number, "Infinity"-like string or {"__float__": "Infinity"}.
Result<float> JsonFloat(const json& v, const std::string& what) {
  if (v.is_number()) return v.get<float>();
  const json* s = &v;
  if (v.is_object() && v.contains("__float__")) s = &v["__float__"];
  if (s->is_string()) {
    const std::string str = s->get<std::string>();
    if (str == "Infinity" || str == "inf" || str == "Inf") return std::numeric_limits<float>::infinity();
    if (str == "-Infinity" || str == "-inf" || str == "-Inf") return -std::numeric_limits<float>::infinity();
  }
  return Status::Error(what + ": expected a number or Infinity, found " + v.dump());
}

class Reader {
 public:
  Reader(const json& j, std::string file) : j_(j), file_(std::move(file)) {}

  template <typename T>
  Status Get(const json& obj, const char* key, T* out, bool required = false) const {
    if (!obj.contains(key) || obj[key].is_null()) {
      if (required) return Status::Error(file_ + ": missing required key \"" + key + "\"");
      return Status::Ok();
    }
    try {
      *out = obj[key].get<T>();
    } catch (const std::exception&) {
      return Status::Error(file_ + ": key \"" + key + "\" has the wrong type: " + obj[key].dump());
    }
    return Status::Ok();
  }
  Status Unsupported(const std::string& what) const {
    return Status::Error(file_ + ": " + what + " is not supported by mamba2.cpp");
  }
  const std::string& file() const { return file_; }

 private:
  const json& j_;
  std::string file_;
};

Status ParseStateSpaces(const json& j, const Reader& rd, ModelConfig* c) {
  c->layout = "state-spaces";
  RETURN_IF_ERROR(rd.Get(j, "d_model", &c->d_model, true));
  RETURN_IF_ERROR(rd.Get(j, "n_layer", &c->n_layer, true));
  RETURN_IF_ERROR(rd.Get(j, "vocab_size", &c->vocab_size, true));
  int64_t pad_multiple = 8;  // MambaConfig's default
  RETURN_IF_ERROR(rd.Get(j, "pad_vocab_size_multiple", &pad_multiple));
  RETURN_IF_ERROR(rd.Get(j, "tie_embeddings", &c->tie_embeddings));
  int64_t d_intermediate = 0;
  RETURN_IF_ERROR(rd.Get(j, "d_intermediate", &d_intermediate));
  if (d_intermediate != 0) return rd.Unsupported("d_intermediate = " + std::to_string(d_intermediate) + " (MLP blocks)");
  if (j.contains("attn_layer_idx") && j["attn_layer_idx"].is_array() && !j["attn_layer_idx"].empty())
    return rd.Unsupported("attn_layer_idx " + j["attn_layer_idx"].dump() + " (attention layers)");
  bool rms_norm = true;
  RETURN_IF_ERROR(rd.Get(j, "rms_norm", &rms_norm));
  if (!rms_norm) return rd.Unsupported("rms_norm = false (LayerNorm blocks)");

  json ssm = j.contains("ssm_cfg") && j["ssm_cfg"].is_object() ? j["ssm_cfg"] : json::object();
  std::string layer = "Mamba1";  // mamba_ssm's default when ssm_cfg names no layer
  RETURN_IF_ERROR(rd.Get(ssm, "layer", &layer));
  if (layer != "Mamba2") return rd.Unsupported("ssm_cfg.layer = \"" + layer + "\" (only Mamba2)");
  RETURN_IF_ERROR(rd.Get(ssm, "d_state", &c->d_state));
  RETURN_IF_ERROR(rd.Get(ssm, "d_conv", &c->d_conv));
  RETURN_IF_ERROR(rd.Get(ssm, "expand", &c->expand));
  RETURN_IF_ERROR(rd.Get(ssm, "headdim", &c->head_dim));
  RETURN_IF_ERROR(rd.Get(ssm, "ngroups", &c->n_groups));
  RETURN_IF_ERROR(rd.Get(ssm, "chunk_size", &c->chunk_size));
  bool flag = false;
  RETURN_IF_ERROR(rd.Get(ssm, "D_has_hdim", &flag));
  if (flag) return rd.Unsupported("ssm_cfg.D_has_hdim = true");
  flag = true;
  RETURN_IF_ERROR(rd.Get(ssm, "rmsnorm", &flag));
  if (!flag) return rd.Unsupported("ssm_cfg.rmsnorm = false");
  flag = false;
  RETURN_IF_ERROR(rd.Get(ssm, "norm_before_gate", &flag));
  if (flag)
    return rd.Unsupported("ssm_cfg.norm_before_gate = true");
  RETURN_IF_ERROR(rd.Get(ssm, "bias", &flag));
  if (flag) return rd.Unsupported("ssm_cfg.bias = true (in/out_proj bias)");
  RETURN_IF_ERROR(rd.Get(ssm, "conv_bias", &c->conv_bias));
  if (ssm.contains("d_ssm") && !ssm["d_ssm"].is_null()) {
    int64_t d_ssm = 0;
    RETURN_IF_ERROR(rd.Get(ssm, "d_ssm", &d_ssm));
    if (d_ssm != c->expand * c->d_model) return rd.Unsupported("ssm_cfg.d_ssm != d_inner (partial SSM / d_mlp)");
  }
  if (ssm.contains("dt_limit")) {
    const json& lim = ssm["dt_limit"];
    if (!lim.is_array() || lim.size() != 2) return Status::Error(rd.file() + ": ssm_cfg.dt_limit must be [min, max]");
    ASSIGN_OR_RETURN(c->dt_limit_min, JsonFloat(lim[0], rd.file() + ": ssm_cfg.dt_limit[0]"));
    ASSIGN_OR_RETURN(c->dt_limit_max, JsonFloat(lim[1], rd.file() + ": ssm_cfg.dt_limit[1]"));
  }
  if (pad_multiple <= 0) return Status::Error(rd.file() + ": pad_vocab_size_multiple must be > 0");
  c->vocab_rows = (c->vocab_size + pad_multiple - 1) / pad_multiple * pad_multiple;
  return Status::Ok();
}

Status ParseTransformers(const json& j, const Reader& rd, ModelConfig* c) {
  c->layout = "transformers";
  std::string model_type;
  RETURN_IF_ERROR(rd.Get(j, "model_type", &model_type));
  if (!model_type.empty() && model_type != "mamba2")
    return rd.Unsupported("model_type \"" + model_type + "\" (only mamba2)");
  RETURN_IF_ERROR(rd.Get(j, "hidden_size", &c->d_model, true));
  RETURN_IF_ERROR(rd.Get(j, "num_hidden_layers", &c->n_layer, true));
  RETURN_IF_ERROR(rd.Get(j, "vocab_size", &c->vocab_size, true));
  c->vocab_rows = c->vocab_size;  // transformers stores the padded size
  RETURN_IF_ERROR(rd.Get(j, "state_size", &c->d_state));
  RETURN_IF_ERROR(rd.Get(j, "head_dim", &c->head_dim));
  RETURN_IF_ERROR(rd.Get(j, "n_groups", &c->n_groups));
  RETURN_IF_ERROR(rd.Get(j, "expand", &c->expand));
  RETURN_IF_ERROR(rd.Get(j, "conv_kernel", &c->d_conv));
  RETURN_IF_ERROR(rd.Get(j, "chunk_size", &c->chunk_size));
  RETURN_IF_ERROR(rd.Get(j, "layer_norm_epsilon", &c->norm_eps));
  RETURN_IF_ERROR(rd.Get(j, "use_conv_bias", &c->conv_bias));
  RETURN_IF_ERROR(rd.Get(j, "tie_word_embeddings", &c->tie_embeddings));
  bool flag = false;
  RETURN_IF_ERROR(rd.Get(j, "use_bias", &flag));
  if (flag) return rd.Unsupported("use_bias = true (in/out_proj bias)");
  flag = true;
  RETURN_IF_ERROR(rd.Get(j, "rms_norm", &flag));
  if (!flag) return rd.Unsupported("rms_norm = false");
  std::string act = "silu";
  RETURN_IF_ERROR(rd.Get(j, "hidden_act", &act));
  if (act != "silu") return rd.Unsupported("hidden_act \"" + act + "\" (only silu)");
  if (j.contains("time_step_limit") && !j["time_step_limit"].is_null()) {
    const json& lim = j["time_step_limit"];
    if (!lim.is_array() || lim.size() != 2) return Status::Error(rd.file() + ": time_step_limit must be [min, max]");
    ASSIGN_OR_RETURN(c->dt_limit_min, JsonFloat(lim[0], rd.file() + ": time_step_limit[0]"));
    ASSIGN_OR_RETURN(c->dt_limit_max, JsonFloat(lim[1], rd.file() + ": time_step_limit[1]"));
  }
  int64_t n_heads = -1;
  RETURN_IF_ERROR(rd.Get(j, "num_heads", &n_heads));
  if (n_heads >= 0 && n_heads * c->head_dim != c->expand * c->d_model)
    return Status::Error(rd.file() + ": num_heads * head_dim = " + std::to_string(n_heads * c->head_dim) +
                         " but expand * hidden_size = " + std::to_string(c->expand * c->d_model));
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c->bos_id = j["bos_token_id"].get<int32_t>();
  if (j.contains("eos_token_id") && j["eos_token_id"].is_number_integer()) c->eos_id = j["eos_token_id"].get<int32_t>();
  if (j.contains("pad_token_id") && j["pad_token_id"].is_number_integer()) c->pad_id = j["pad_token_id"].get<int32_t>();
  return Status::Ok();
}

}  // namespace

std::string QuoteNonFiniteJsonNumbers(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 16);
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (in_string) {
      out += ch;
      if (ch == '\\' && i + 1 < text.size()) out += text[++i];
      else if (ch == '"') in_string = false;
      continue;
    }
    if (ch == '"') { in_string = true; out += ch; continue; }
    for (const char* word : {"-Infinity", "Infinity", "NaN"}) {
      const size_t n = std::char_traits<char>::length(word);
      if (text.compare(i, n, word) == 0) {
        out += '"';
        out += word;
        out += '"';
        i += n - 1;
        goto next;
      }
    }
    out += ch;
  next:;
  }
  return out;
}

Result<ModelConfig> ParseConfig(const std::string& json_text, const std::string& file) {
  json j;
  try {
    j = json::parse(QuoteNonFiniteJsonNumbers(json_text));
  } catch (const std::exception& e) {
    return Status::Error(file + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) return Status::Error(file + ": expected a JSON object at the top level");
  Reader rd(j, file);
  ModelConfig c;
  if (j.contains("d_model")) {
    RETURN_IF_ERROR(ParseStateSpaces(j, rd, &c));
  } else if (j.contains("hidden_size")) {
    RETURN_IF_ERROR(ParseTransformers(j, rd, &c));
  } else {
    return Status::Error(file + ": neither a state-spaces config (d_model) nor a transformers Mamba2 config "
                                "(hidden_size)");
  }
  auto positive = [&](const char* name, int64_t v) -> Status {
    if (v <= 0 || v > (int64_t(1) << 24))
      return Status::Error(file + ": " + name + " = " + std::to_string(v) + " is out of range");
    return Status::Ok();
  };
  RETURN_IF_ERROR(positive("d_model", c.d_model));
  RETURN_IF_ERROR(positive("n_layer", c.n_layer));
  RETURN_IF_ERROR(positive("vocab_size", c.vocab_size));
  RETURN_IF_ERROR(positive("d_state", c.d_state));
  RETURN_IF_ERROR(positive("d_conv", c.d_conv));
  RETURN_IF_ERROR(positive("expand", c.expand));
  RETURN_IF_ERROR(positive("head_dim", c.head_dim));
  RETURN_IF_ERROR(positive("n_groups", c.n_groups));
  RETURN_IF_ERROR(positive("chunk_size", c.chunk_size));
  c.d_inner = c.expand * c.d_model;
  if (c.d_inner % c.head_dim != 0)
    return Status::Error(file + ": d_inner " + std::to_string(c.d_inner) + " is not a multiple of head_dim " +
                         std::to_string(c.head_dim));
  c.n_heads = c.d_inner / c.head_dim;
  if (c.n_heads % c.n_groups != 0)
    return Status::Error(file + ": n_heads " + std::to_string(c.n_heads) + " is not a multiple of n_groups " +
                         std::to_string(c.n_groups));
  if (!(c.norm_eps > 0.0f)) return Status::Error(file + ": layer_norm_epsilon must be > 0");
  if (!(c.dt_limit_min <= c.dt_limit_max)) return Status::Error(file + ": dt limit min > max");
  return c;
}

Result<ModelConfig> LoadConfig(const std::string& dir) {
  const std::string path = dir + "/config.json";
  auto text = ReadFile(path);
  if (!text.ok()) return Status::Error(path + ": cannot open (is " + dir + " a model folder with config.json?)");
  return ParseConfig(text.value(), path);
}

std::string ModelConfig::Describe() const {
  std::ostringstream s;
  s << "layout " << layout << ", d_model " << d_model << ", n_layer " << n_layer << ", vocab " << vocab_size
    << " (rows " << vocab_rows << "), d_inner " << d_inner << ", d_state " << d_state << ", n_heads " << n_heads
    << ", head_dim " << head_dim << ", n_groups " << n_groups << ", d_conv " << d_conv << ", chunk_size "
    << chunk_size << ", eps " << norm_eps << ", dt_limit [" << dt_limit_min << ", " << dt_limit_max << "]"
    << (tie_embeddings ? ", tied lm_head" : ", separate lm_head");
  return s.str();
}

}  // namespace mamba2
