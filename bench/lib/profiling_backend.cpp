#include "lib/profiling_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace mamba2::bench {

template <typename F>
void ProfilingBackend::Time(const std::string& op, F&& f, double flops) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  inner_->Sync();
  OpTime& t = times_[op];
  t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t.calls += 1;
  t.flops += flops;
}

void ProfilingBackend::CopyToDevice(void* dst, const void* src, size_t bytes) {
  Time("copy", [&] { inner_->CopyToDevice(dst, src, bytes); });
}
void ProfilingBackend::CopyToHost(void* dst, const void* src, size_t bytes) {
  Time("copy", [&] { inner_->CopyToHost(dst, src, bytes); });
}
void ProfilingBackend::Fill(float* dst, float value, size_t n) {
  Time("fill", [&] { inner_->Fill(dst, value, n); });
}
void ProfilingBackend::Embed(const int32_t* ids, int64_t n, const TensorView& table, Mat out) {
  Time("embed", [&] { inner_->Embed(ids, n, table, out); });
}
void ProfilingBackend::RmsNorm(Mat x, const TensorView& weight, float eps, Mat out) {
  Time("rmsnorm", [&] { inner_->RmsNorm(x, weight, eps, out); });
}
void ProfilingBackend::MatMul(Mat x, const TensorView& w, Mat out, bool accumulate) {
  Time(MatMulName(w), [&] { inner_->MatMul(x, w, out, accumulate); },
       2.0 * double(x.rows) * double(w.shape[0]) * double(w.shape[1]));
}
std::string ProfilingBackend::MatMulName(const TensorView& w) const {
  auto it = weight_names_.find(w.shape.str());
  return "matmul " + (it != weight_names_.end() ? it->second : w.shape.str());
}
void ProfilingBackend::RmsNormMatMul(Mat x, const TensorView& norm_weight, float eps, Mat normed,
                                     const TensorView& w, Mat out) {
  Time(
      "rmsnorm + " + MatMulName(w), [&] { inner_->RmsNormMatMul(x, norm_weight, eps, normed, w, out); },
      2.0 * double(out.rows) * double(w.shape[0]) * double(w.shape[1]));
}
void ProfilingBackend::GatedRmsNormMatMulAdd(Mat y, Mat z, const TensorView& norm_weight, int64_t group_size,
                                             float eps, Mat gated, const TensorView& w, Mat out) {
  Time(
      "gated rmsnorm + " + MatMulName(w),
      [&] { inner_->GatedRmsNormMatMulAdd(y, z, norm_weight, group_size, eps, gated, w, out); },
      2.0 * double(out.rows) * double(w.shape[0]) * double(w.shape[1]));
}
void ProfilingBackend::RmsNormMatMulConvStep(Mat x, const TensorView& norm_weight, float eps, Mat normed,
                                             const TensorView& w, Mat out, int64_t conv_begin, const int32_t* slots,
                                             const MixerDims& dims, float* conv_state, const TensorView& conv_weight,
                                             const TensorView& conv_bias, Mat conv_out) {
  Time(
      "rmsnorm + " + MatMulName(w) + " + conv step",
      [&] {
        inner_->RmsNormMatMulConvStep(x, norm_weight, eps, normed, w, out, conv_begin, slots, dims, conv_state,
                                      conv_weight, conv_bias, conv_out);
      },
      2.0 * double(x.rows) * double(w.shape[0]) * double(w.shape[1]));
}
void ProfilingBackend::MatMulConvStep(Mat x, const TensorView& w, Mat out, int64_t conv_begin, const int32_t* slots,
                                      const MixerDims& dims, float* conv_state, const TensorView& conv_weight,
                                      const TensorView& conv_bias, Mat conv_out) {
  Time(
      MatMulName(w) + " + conv step",
      [&] {
        inner_->MatMulConvStep(x, w, out, conv_begin, slots, dims, conv_state, conv_weight, conv_bias, conv_out);
      },
      2.0 * double(x.rows) * double(w.shape[0]) * double(w.shape[1]));
}
void ProfilingBackend::ConvPrefill(Mat xbc, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                                   const MixerDims& dims, float* conv_state, const TensorView& weight,
                                   const TensorView& bias, Mat out) {
  Time("conv", [&] { inner_->ConvPrefill(xbc, n_seqs, seq_len, slots, dims, conv_state, weight, bias, out); });
}
void ProfilingBackend::SsdPrefill(const ScanInputs& in, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                                  const MixerDims& dims, int64_t chunk_size, float* ssm_state, Mat y) {
  Time("ssd scan", [&] { inner_->SsdPrefill(in, n_seqs, seq_len, slots, dims, chunk_size, ssm_state, y); });
}
void ProfilingBackend::ConvStep(Mat xbc, const int32_t* slots, const MixerDims& dims, float* conv_state,
                                const TensorView& weight, const TensorView& bias, Mat out) {
  Time("conv step", [&] { inner_->ConvStep(xbc, slots, dims, conv_state, weight, bias, out); });
}
void ProfilingBackend::SsmStep(const ScanInputs& in, const int32_t* slots, const MixerDims& dims, float* ssm_state,
                               Mat y) {
  Time("ssm step", [&] { inner_->SsmStep(in, slots, dims, ssm_state, y); });
}
void ProfilingBackend::GatedRmsNorm(Mat y, Mat z, const TensorView& weight, int64_t group_size, float eps, Mat out) {
  Time("gated rmsnorm", [&] { inner_->GatedRmsNorm(y, z, weight, group_size, eps, out); });
}
void ProfilingBackend::CopySlot(float* state, int64_t slot_size, int32_t from, int32_t to) {
  Time("copy slot", [&] { inner_->CopySlot(state, slot_size, from, to); });
}

void ProfilingBackend::PickTokens(const float* logits, int64_t n_rows, int64_t ld, const PickParams& p,
                                  uint64_t* draw, int32_t* out_ids) {
  Time("pick token", [&] { inner_->PickTokens(logits, n_rows, ld, p, draw, out_ids); });
}

std::string FormatProfile(const std::map<std::string, OpTime>& times, const std::string& title) {
  std::vector<std::pair<std::string, OpTime>> rows(times.begin(), times.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  for (const auto& r : rows) total += r.second.seconds;
  std::string s = title + "\n  op                          calls        ms    share   GFLOP/s\n";
  char buf[200];
  for (const auto& [name, t] : rows) {
    std::snprintf(buf, sizeof buf, "  %-26s %6lld %9.2f   %5.1f%%", name.c_str(), (long long)t.calls, t.seconds * 1e3,
                  total > 0 ? 100.0 * t.seconds / total : 0.0);
    s += buf;
    if (t.flops > 0) {
      std::snprintf(buf, sizeof buf, "  %8.1f", t.flops / t.seconds / 1e9);
      s += buf;
    }
    s += "\n";
  }
  std::snprintf(buf, sizeof buf, "  %-26s %6s %9.2f\n", "total", "", total * 1e3);
  return s + buf;
}

}  // namespace mamba2::bench
