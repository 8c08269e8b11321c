#include "model/random_weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "core/thread_pool.h"

namespace mamba2 {
namespace {

struct ShapeRow {
  const char* name;
  int64_t d_model, n_layer;
};
// Spec 1.1: only d_model and n_layer differ between the five checkpoints.
constexpr ShapeRow kShapes[] = {
    {"130m", 768, 24}, {"370m", 1024, 48}, {"780m", 1536, 48}, {"1.3b", 2048, 48}, {"2.7b", 2560, 64},
};

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Element i of a tensor's stream: a pure function of (stream, i), so pieces can be drawn in
// any order on any thread.
struct Stream {
  uint64_t key;
  double Uniform(int64_t i, uint64_t lane = 0) const {  // [0, 1)
    return double(SplitMix(key ^ SplitMix(uint64_t(i) * 2 + lane)) >> 11) * 0x1.0p-53;
  }
  double Normal(int64_t i) const {  // Box-Muller on two uniforms of the same index
    const double u1 = 1.0 - Uniform(i, 0), u2 = Uniform(i, 1);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

uint64_t NameKey(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull ^ SplitMix(seed);
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return SplitMix(h);
}

class Builder {
 public:
  Builder(const RandomWeightsOptions& o) : opt_(o), pool_(o.n_threads) {}

  // Draws numel values with gen(stream, i) and stores them in the options' dtype.
  Status Add(const std::string& name, Shape shape, const std::function<double(const Stream&, int64_t)>& gen) {
    const int64_t n = shape.numel();
    const size_t es = DTypeSize(opt_.dtype);
    ASSIGN_OR_RETURN(AlignedBuffer buf, AlignedBuffer::Allocate(size_t(n) * es));
    const Stream st{NameKey(opt_.seed, name)};
    uint8_t* dst = buf.data();
    const DType dt = opt_.dtype;
    pool_.ParallelFor(
        n,
        [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            const float v = float(gen(st, i));
            if (dt == DType::F32) {
              std::memcpy(dst + size_t(i) * 4, &v, 4);
            } else {
              const uint16_t h = dt == DType::BF16 ? F32ToBF16(v) : F32ToF16(v);
              std::memcpy(dst + size_t(i) * 2, &h, 2);
            }
          }
        },
        1 << 15);
    set_.tensors.push_back(StoredTensor{name, TensorView{buf.data(), dt, shape}, "<random " + name + ">"});
    set_.owned.push_back(std::move(buf));
    return Status::Ok();
  }

  // A second name for the bytes of an existing tensor (tied weights).
  void Alias(const std::string& name, const std::string& of) {
    for (const StoredTensor& t : set_.tensors)
      if (t.name == of) {
        set_.tensors.push_back(StoredTensor{name, t.view, t.file});
        return;
      }
    CHECK_MSG(false, "Alias of a missing tensor " + of);
  }

  TensorSet Take() { return std::move(set_); }

 private:
  RandomWeightsOptions opt_;
  ThreadPool pool_;
  TensorSet set_;
};

}  // namespace

const std::vector<std::string>& CheckpointShapeNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const ShapeRow& r : kShapes) v.push_back(r.name);
    return v;
  }();
  return names;
}

Result<std::string> CheckpointShapeConfigJson(const std::string& shape) {
  for (const ShapeRow& r : kShapes) {
    if (shape != r.name) continue;
    // The published config.json, key for key (spec 1.1).
    return std::string("{\"d_model\": ") + std::to_string(r.d_model) + ", \"d_intermediate\": 0, \"n_layer\": " +
           std::to_string(r.n_layer) +
           ", \"vocab_size\": 50277, \"ssm_cfg\": {\"layer\": \"Mamba2\"}, \"attn_layer_idx\": [], "
           "\"attn_cfg\": {}, \"rms_norm\": true, \"residual_in_fp32\": true, \"fused_add_norm\": true, "
           "\"pad_vocab_size_multiple\": 16, \"tie_embeddings\": true}";
  }
  std::string known;
  for (const ShapeRow& r : kShapes) known += std::string(known.empty() ? "" : ", ") + r.name;
  return Status::Error("unknown checkpoint shape \"" + shape + "\" (expected one of " + known + ")");
}

Result<ModelConfig> CheckpointShapeConfig(const std::string& shape) {
  ASSIGN_OR_RETURN(std::string json, CheckpointShapeConfigJson(shape));
  return ParseConfig(json, "mamba2-" + shape + " config");
}

Result<TensorSet> MakeRandomWeights(const ModelConfig& c, const RandomWeightsOptions& options) {
  if (options.dtype != DType::F32 && options.dtype != DType::F16 && options.dtype != DType::BF16)
    return Status::Error(std::string("random weights: dtype ") + DTypeName(options.dtype) +
                         " is not one of f32, f16, bf16");
  Builder b(options);
  const int64_t D = c.d_model, di = c.d_inner, h = c.n_heads, conv_dim = c.dims().conv_dim();
  const auto uniform = [](double lo, double hi) {
    return [lo, hi](const Stream& s, int64_t i) { return lo + (hi - lo) * s.Uniform(i); };
  };
  const auto constant = [](double v) { return [v](const Stream&, int64_t) { return v; }; };

  RETURN_IF_ERROR(b.Add("backbone.embedding.weight", Shape{c.vocab_rows, D},
                        [](const Stream& s, int64_t i) { return 0.02 * s.Normal(i); }));
  if (c.tie_embeddings) {
    b.Alias("lm_head.weight", "backbone.embedding.weight");
  } else {
    RETURN_IF_ERROR(
        b.Add("lm_head.weight", Shape{c.vocab_rows, D}, [](const Stream& s, int64_t i) { return 0.02 * s.Normal(i); }));
  }
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "backbone.layers." + std::to_string(l) + ".";
    RETURN_IF_ERROR(b.Add(p + "norm.weight", Shape{D}, constant(1.0)));
    // Default nn.Linear init: U(+-1/sqrt(fan_in)).
    const double a_in = 1.0 / std::sqrt(double(D));
    RETURN_IF_ERROR(b.Add(p + "mixer.in_proj.weight", Shape{c.in_proj_rows(), D}, uniform(-a_in, a_in)));
    // nn.Conv1d default with fan_in = 1 * d_conv: U(+-1/sqrt(d_conv)) for weight and bias.
    const double a_conv = 1.0 / std::sqrt(double(c.d_conv));
    RETURN_IF_ERROR(b.Add(p + "mixer.conv1d.weight", Shape{conv_dim, 1, c.d_conv}, uniform(-a_conv, a_conv)));
    if (c.conv_bias) RETURN_IF_ERROR(b.Add(p + "mixer.conv1d.bias", Shape{conv_dim}, uniform(-a_conv, a_conv)));
    // dt log-uniform on [1e-3, 0.1], floored at 1e-4, stored as its inverse softplus.
    RETURN_IF_ERROR(b.Add(p + "mixer.dt_bias", Shape{h}, [](const Stream& s, int64_t i) {
      double dt = std::exp(s.Uniform(i) * (std::log(0.1) - std::log(0.001)) + std::log(0.001));
      dt = std::max(dt, 1e-4);
      return dt + std::log(-std::expm1(-dt));
    }));
    RETURN_IF_ERROR(b.Add(p + "mixer.A_log", Shape{h},
                          [](const Stream& s, int64_t i) { return std::log(1.0 + 15.0 * s.Uniform(i)); }));
    RETURN_IF_ERROR(b.Add(p + "mixer.D", Shape{h}, constant(1.0)));
    RETURN_IF_ERROR(b.Add(p + "mixer.norm.weight", Shape{di}, constant(1.0)));
    // kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), then rescaled by 1/sqrt(n_layer).
    const double a_out = 1.0 / std::sqrt(double(di)) / std::sqrt(double(c.n_layer));
    RETURN_IF_ERROR(b.Add(p + "mixer.out_proj.weight", Shape{D, di}, uniform(-a_out, a_out)));
  }
  RETURN_IF_ERROR(b.Add("backbone.norm_f.weight", Shape{D}, constant(1.0)));
  return b.Take();
}

size_t UniqueTensorBytes(const TensorSet& set) {
  size_t n = 0;
  std::vector<const void*> seen;
  for (const StoredTensor& t : set.tensors) {
    bool dup = false;
    for (const void* p : seen) dup = dup || p == t.view.data;
    if (dup) continue;
    seen.push_back(t.view.data);
    n += t.view.nbytes();
  }
  return n;
}

}  // namespace mamba2
