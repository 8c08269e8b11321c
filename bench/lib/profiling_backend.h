// A Backend that forwards every call to another and adds up the wall time of each op kind
// (waiting for the device after each, so the times are the op's own). `mamba2 bench
// --profile` uses it to say where a prefill or a decode step spends its time.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "backend/backend.h"

namespace mamba2::bench {

struct OpTime {
  double seconds = 0;
  int64_t calls = 0;
  double flops = 0;  // matmuls only: 2 * rows * n * k
};

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend* inner) : inner_(inner) {}

  const std::map<std::string, OpTime>& times() const { return times_; }
  void Reset() { times_.clear(); }
  // Matmuls are told apart by their weight's shape: register a name for one.
  void NameWeightShape(const Shape& shape, const std::string& name) { weight_names_[shape.str()] = name; }

  std::string name() const override { return inner_->name(); }
  DType IntermediateDType() const override { return inner_->IntermediateDType(); }
  void* Alloc(size_t bytes) override { return inner_->Alloc(bytes); }
  void Free(void* p) override { inner_->Free(p); }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override;
  void CopyToHost(void* dst, const void* src, size_t bytes) override;
  void Fill(float* dst, float value, size_t n) override;
  void Sync() override { inner_->Sync(); }
  TensorView PrepareWeight(const TensorView& host, WeightKind kind) override {
    return inner_->PrepareWeight(host, kind);
  }
  void Embed(const int32_t* ids, int64_t n, const TensorView& table, Mat out) override;
  void RmsNorm(Mat x, const TensorView& weight, float eps, Mat out) override;
  using Backend::MatMul;
  void MatMul(Mat x, const TensorView& w, Mat out, bool accumulate) override;
  void MatMulConvStep(Mat x, const TensorView& w, Mat out, int64_t conv_begin, const int32_t* slots,
                      const MixerDims& dims, float* conv_state, const TensorView& conv_weight,
                      const TensorView& conv_bias, Mat conv_out) override;
  void RmsNormMatMulConvStep(Mat x, const TensorView& norm_weight, float eps, Mat normed, const TensorView& w,
                             Mat out, int64_t conv_begin, const int32_t* slots, const MixerDims& dims,
                             float* conv_state, const TensorView& conv_weight, const TensorView& conv_bias,
                             Mat conv_out) override;
  void RmsNormMatMul(Mat x, const TensorView& norm_weight, float eps, Mat normed, const TensorView& w,
                     Mat out) override;
  void GatedRmsNormMatMulAdd(Mat y, Mat z, const TensorView& norm_weight, int64_t group_size, float eps, Mat gated,
                             const TensorView& w, Mat out) override;
  void ConvPrefill(Mat xbc, int64_t n_seqs, int64_t seq_len, const int32_t* slots, const MixerDims& dims,
                   float* conv_state, const TensorView& weight, const TensorView& bias, Mat out) override;
  void SsdPrefill(const ScanInputs& in, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                  const MixerDims& dims, int64_t chunk_size, float* ssm_state, Mat y) override;
  void ConvStep(Mat xbc, const int32_t* slots, const MixerDims& dims, float* conv_state, const TensorView& weight,
                const TensorView& bias, Mat out) override;
  void SsmStep(const ScanInputs& in, const int32_t* slots, const MixerDims& dims, float* ssm_state,
               Mat y) override;
  void GatedRmsNorm(Mat y, Mat z, const TensorView& weight, int64_t group_size, float eps, Mat out) override;
  void CopySlot(float* state, int64_t slot_size, int32_t from, int32_t to) override;
  void PickTokens(const float* logits, int64_t n_rows, int64_t ld, const PickParams& p, uint64_t* draw,
                  int32_t* out_ids) override;
  // Record is not forwarded: the default re-issues each op through this profiler.

 private:
  std::string MatMulName(const TensorView& w) const;  // "matmul in_proj", or the weight's shape
  template <typename F>
  void Time(const std::string& op, F&& f, double flops = 0);

  Backend* inner_;
  std::map<std::string, OpTime> times_;
  std::map<std::string, std::string> weight_names_;
};

// "op  calls  ms  share  GFLOP/s" lines, largest first.
std::string FormatProfile(const std::map<std::string, OpTime>& times, const std::string& title);

}  // namespace mamba2::bench
