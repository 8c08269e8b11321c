#include "lib/model_cost.h"

#include <algorithm>

namespace mamba2::bench {

PrefillFlops CountPrefillFlops(const ModelConfig& c, int64_t tokens, int64_t chunk_size) {
  PrefillFlops f;
  const double L = double(tokens), layers = double(c.n_layer);
  f.projections = 2.0 * L * layers * double(c.in_proj_rows() * c.d_model + c.d_model * c.d_inner);
  const double g = double(c.n_groups), n = double(c.d_state), h = double(c.n_heads), p = double(c.head_dim);
  double per_layer = 0.0;
  const int64_t Q = std::max<int64_t>(1, std::min(chunk_size, tokens));
  for (int64_t c0 = 0; c0 < tokens; c0 += Q) {
    const int64_t qi = std::min(Q, tokens - c0);
    const double q = double(qi);
    double tri = 0.0;
    for (int64_t i0 = 0; i0 < qi; i0 += kSsdTriBlock) {
      const int64_t i1 = std::min(qi, i0 + kSsdTriBlock);
      tri += double(i1 - i0) * double(i1);
    }
    per_layer += g * n * tri + h * p * tri + 2.0 * h * p * n * q;
  }
  f.ssd = 2.0 * layers * per_layer;
  f.lm_head = tokens > 0 ? 2.0 * double(c.vocab_rows) * double(c.d_model) : 0.0;
  return f;
}

DecodeBytes CountDecodeBytes(const ModelConfig& c, DType matrix_dtype) {
  DecodeBytes b;
  const double es = double(DTypeSize(matrix_dtype));
  const MixerDims d = c.dims();
  const double matrices =
      double(c.n_layer) * double(c.in_proj_rows() * c.d_model + c.d_model * c.d_inner) +
      double(c.vocab_rows * c.d_model) + double(c.d_model);
  const double vectors =
      double(c.n_layer) * double(c.d_model + d.conv_dim() * (c.d_conv + 1) + 3 * c.n_heads + c.d_inner) +
      double(c.d_model);
  b.weights = matrices * es + vectors * 4.0;
  b.state = 4.0 * double(c.n_layer) * double(d.conv_state_size() + d.ssm_state_size());
  return b;
}

}  // namespace mamba2::bench
