#include "model/weights.h"

#include <string>

namespace mamba2 {
namespace {

class Binder {
 public:
  Binder(const WeightStore& store, const ModelConfig& config, Backend& backend)
      : store_(store), config_(config), backend_(backend) {}

  // Looks the tensor up under each candidate name (both published naming schemes, and
  // Mistral's "model." prefix), checks its shape, and prepares it.
  Result<TensorView> Get(std::initializer_list<std::string> names, Shape expected, WeightKind kind,
                         Shape as_shape = Shape()) {
    const StoredTensor* t = nullptr;
    for (const std::string& name : names) {
      t = store_.Find(name);
      if (!t) t = store_.Find("model." + name);
      if (t) break;
    }
    if (!t) {
      return Status::Error("missing tensor " + *names.begin() + " (expected shape " + expected.str() +
                           ") in " + store_.format() + " weights; is this a Mamba-2 checkpoint?");
    }
    if (!(t->view.shape == expected)) {
      return Status::Error(t->file + ": tensor " + t->name + " has shape " + t->view.shape.str() + ", expected " +
                           expected.str() + " from config (" + config_.Describe() + ")");
    }
    if (t->view.dtype != DType::F32 && t->view.dtype != DType::F16 && t->view.dtype != DType::BF16)
      return Status::Error(t->file + ": tensor " + t->name + " has dtype " + DTypeName(t->view.dtype) +
                           ", expected f32, f16 or bf16");
    TensorView v = t->view;
    if (as_shape.ndim) v.shape = as_shape;
    return backend_.PrepareWeight(v, kind);
  }

 private:
  const WeightStore& store_;
  const ModelConfig& config_;
  Backend& backend_;
};

}  // namespace

Result<ModelWeights> BindWeights(const WeightStore& store, const ModelConfig& c, Backend& backend) {
  Binder b(store, c, backend);
  const int64_t conv_dim = c.dims().conv_dim();
  ModelWeights w;
  ASSIGN_OR_RETURN(w.embedding, b.Get({"backbone.embedding.weight", "backbone.embeddings.weight"},
                                      Shape{c.vocab_rows, c.d_model}, WeightKind::kMatrix));
  if (c.tie_embeddings) {
    w.lm_head = w.embedding;
  } else {
    ASSIGN_OR_RETURN(w.lm_head, b.Get({"lm_head.weight"}, Shape{c.vocab_rows, c.d_model}, WeightKind::kMatrix));
  }
  ASSIGN_OR_RETURN(w.norm_f, b.Get({"backbone.norm_f.weight"}, Shape{c.d_model}, WeightKind::kVector));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    LayerWeights L;
    ASSIGN_OR_RETURN(L.norm, b.Get({p + "norm.weight"}, Shape{c.d_model}, WeightKind::kVector));
    ASSIGN_OR_RETURN(L.in_proj, b.Get({p + "mixer.in_proj.weight"}, Shape{c.in_proj_rows(), c.d_model},
                                      WeightKind::kMatrix));
    ASSIGN_OR_RETURN(L.conv_w, b.Get({p + "mixer.conv1d.weight"}, Shape{conv_dim, 1, c.d_conv}, WeightKind::kVector,
                                     Shape{conv_dim, c.d_conv}));
    if (c.conv_bias) {
      ASSIGN_OR_RETURN(L.conv_b, b.Get({p + "mixer.conv1d.bias"}, Shape{conv_dim}, WeightKind::kVector));
    }
    ASSIGN_OR_RETURN(L.dt_bias, b.Get({p + "mixer.dt_bias"}, Shape{c.n_heads}, WeightKind::kVector));
    ASSIGN_OR_RETURN(L.A_log, b.Get({p + "mixer.A_log"}, Shape{c.n_heads}, WeightKind::kVector));
    ASSIGN_OR_RETURN(L.D, b.Get({p + "mixer.D"}, Shape{c.n_heads}, WeightKind::kVector));
    ASSIGN_OR_RETURN(L.gated_norm, b.Get({p + "mixer.norm.weight"}, Shape{c.d_inner}, WeightKind::kVector));
    ASSIGN_OR_RETURN(L.out_proj, b.Get({p + "mixer.out_proj.weight"}, Shape{c.d_model, c.d_inner},
                                       WeightKind::kMatrix));
    w.layers.push_back(L);
  }
  return w;
}

}  // namespace mamba2
