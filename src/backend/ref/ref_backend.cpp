// The reference backend: the executable specification. Plain loops, double accumulation,
// and the SSM computed by its defining per-token recurrence (the oracle for every chunked scan).
// Speed is not a goal here; being obviously right is.
#include <cmath>
#include <vector>

#include "backend/host_backend.h"
#include "backend/ref/ref_math.h"

namespace mamba2 {
namespace {

class RefBackend final : public HostBackend {
 public:
  std::string name() const override { return "ref"; }

  void Embed(const int32_t* ids, int64_t n, const TensorView& table, Mat out) override {
    const int64_t d = table.shape[1];
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j)
        out.row(i)[j] = LoadAsF32(table.data, table.dtype, size_t(int64_t(ids[i]) * d + j));
  }

  void RmsNorm(Mat x, const TensorView& weight, float eps, Mat out) override {
    for (int64_t r = 0; r < x.rows; ++r) ref::RmsNormRow(x.row(r), weight.as<float>(), x.cols, eps, out.row(r));
  }

  using Backend::MatMul;
  void MatMul(Mat x, const TensorView& w, Mat out, bool accumulate) override {
    const int64_t k_dim = w.shape[1];
    CHECK(x.cols == k_dim && out.cols == w.shape[0]);
    for (int64_t r = 0; r < x.rows; ++r)
      for (int64_t n = 0; n < out.cols; ++n) {
        double acc = 0.0;
        for (int64_t k = 0; k < k_dim; ++k)
          acc += double(x.row(r)[k]) * double(LoadAsF32(w.data, w.dtype, size_t(n * k_dim + k)));
        // The fp32 product, then the fp32 add of the residual stream.
        out.row(r)[n] = accumulate ? out.row(r)[n] + float(acc) : float(acc);
      }
  }

  void ConvPrefill(Mat xbc, int64_t n_seqs, int64_t seq_len, const int32_t* slots, const MixerDims& dims,
                   float* conv_state, const TensorView& weight, const TensorView& bias, Mat out) override {
    for (int64_t s = 0; s < n_seqs; ++s)
      for (int64_t t = 0; t < seq_len; ++t) {
        const int64_t row = s * seq_len + t;
        ConvStepOne(xbc.row(row), conv_state + int64_t(slots[s]) * dims.conv_state_size(), dims, weight,
                    bias, out.row(row));
      }
  }

  void ConvStep(Mat xbc, const int32_t* slots, const MixerDims& dims, float* conv_state,
                const TensorView& weight, const TensorView& bias, Mat out) override {
    for (int64_t i = 0; i < xbc.rows; ++i)
      ConvStepOne(xbc.row(i), conv_state + int64_t(slots[i]) * dims.conv_state_size(), dims, weight, bias,
                  out.row(i));
  }

  void SsdPrefill(const ScanInputs& in, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                  const MixerDims& dims, int64_t chunk_size, float* ssm_state, Mat y) override {
    // The oracle ignores chunk_size: chunking is an exact re-association of this recurrence.
    for (int64_t s = 0; s < n_seqs; ++s) {
      float* state = ssm_state + int64_t(slots[s]) * dims.ssm_state_size();
      std::vector<double> h(state, state + dims.ssm_state_size());  // [n_heads, head_dim, d_state]
      for (int64_t t = 0; t < seq_len; ++t) ScanStepOne(in, s * seq_len + t, dims, h.data(), y);
      for (int64_t i = 0; i < dims.ssm_state_size(); ++i) state[i] = float(h[size_t(i)]);
    }
  }

  void SsmStep(const ScanInputs& in, const int32_t* slots, const MixerDims& dims, float* ssm_state,
               Mat y) override {
    for (int64_t i = 0; i < in.x.rows; ++i) {
      float* state = ssm_state + int64_t(slots[i]) * dims.ssm_state_size();
      std::vector<double> h(state, state + dims.ssm_state_size());
      ScanStepOne(in, i, dims, h.data(), y);
      for (int64_t j = 0; j < dims.ssm_state_size(); ++j) state[j] = float(h[size_t(j)]);
    }
  }

  void GatedRmsNorm(Mat y, Mat z, const TensorView& weight, int64_t group_size, float eps, Mat out) override {
    std::vector<float> gated(size_t(y.cols));
    for (int64_t r = 0; r < y.rows; ++r) {
      for (int64_t j = 0; j < y.cols; ++j) gated[size_t(j)] = float(double(y.row(r)[j]) * ref::Silu(z.row(r)[j]));
      for (int64_t g0 = 0; g0 < y.cols; g0 += group_size)
        ref::RmsNormRow(gated.data() + g0, weight.as<float>() + g0, group_size, eps, out.row(r) + g0);
    }
  }

 private:
  // Shifts one new pre-conv row into the window, then convolves: the definition of causal conv.
  static void ConvStepOne(const float* xbc_row, float* state, const MixerDims& dims, const TensorView& weight,
                          const TensorView& bias, float* out_row) {
    const int64_t W = dims.d_conv;
    const float* w = weight.as<float>();  // [conv_dim, d_conv]
    const float* b = bias.data ? bias.as<float>() : nullptr;
    for (int64_t c = 0; c < dims.conv_dim(); ++c) {
      float* win = state + c * W;  // oldest first
      for (int64_t k = 0; k + 1 < W; ++k) win[k] = win[k + 1];
      win[W - 1] = xbc_row[c];
      double acc = b ? double(b[c]) : 0.0;
      for (int64_t k = 0; k < W; ++k) acc += double(win[k]) * double(w[c * W + k]);
      out_row[c] = float(ref::Silu(acc));
    }
  }

  // H = exp(dt*A) H + dt x (x) B;  y = H C + D x, for row `row` of the inputs.
  static void ScanStepOne(const ScanInputs& in, int64_t row, const MixerDims& dims, double* h, Mat y) {
    const int64_t heads_per_group = dims.n_heads / dims.n_groups;
    for (int64_t hh = 0; hh < dims.n_heads; ++hh) {
      const int64_t g = hh / heads_per_group;
      const double dt = ref::Dt(in, row, hh);
      const double A = -std::exp(double(in.A_log.as<float>()[hh]));
      const double decay = std::exp(dt * A);
      const double D = in.D.as<float>()[hh];
      const float* B = in.B.row(row) + g * dims.d_state;
      const float* C = in.C.row(row) + g * dims.d_state;
      for (int64_t p = 0; p < dims.head_dim; ++p) {
        const double x = in.x.row(row)[hh * dims.head_dim + p];
        double* hp = h + (hh * dims.head_dim + p) * dims.d_state;
        double acc = 0.0;
        for (int64_t n = 0; n < dims.d_state; ++n) {
          hp[n] = decay * hp[n] + dt * x * double(B[n]);
          acc += hp[n] * double(C[n]);
        }
        y.row(row)[hh * dims.head_dim + p] = float(acc + D * x);
      }
    }
  }
};

}  // namespace

std::unique_ptr<Backend> MakeRefBackend() { return std::make_unique<RefBackend>(); }

}  // namespace mamba2
