// The small interface the Mamba-2 model is written against. A backend owns its memory
// (host for ref/cpu, device for cuda) and implements each op over fp32 activations;
// weights keep the dtype the backend chose in PrepareWeight. The model never names a device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "core/tensor.h"
#include "sample/pick_rule.h"

namespace mamba2 {

// Row-major matrix with a leading dimension, so that column slices of a wider matrix (z, xBC,
// dt inside in_proj's output) are views without copies. fp32, except the mixer's intermediates
// on a backend that keeps them narrower (Backend::IntermediateDType).
struct Mat {
  void* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t ld = 0;  // elements between consecutive rows, >= cols
  DType dtype = DType::F32;

  float* f32() const {
    CHECK_MSG(dtype == DType::F32, std::string("an fp32 view was expected, this one is ") + DTypeName(dtype));
    return static_cast<float*>(data);
  }
  float* row(int64_t r) const { return f32() + r * ld; }
  void* at(int64_t r, int64_t c) const {
    return static_cast<char*>(data) + (r * ld + c) * int64_t(DTypeSize(dtype));
  }
  Mat Cols(int64_t begin, int64_t count) const { return Mat{at(0, begin), rows, count, ld, dtype}; }
  Mat Rows(int64_t begin, int64_t count) const { return Mat{at(begin, 0), count, cols, ld, dtype}; }
};

// Sizes of one Mamba-2 mixer, named as in the math.
struct MixerDims {
  int64_t d_model = 0;
  int64_t d_inner = 0;   // n_heads * head_dim
  int64_t d_state = 0;   // n
  int64_t n_heads = 0;   // h
  int64_t head_dim = 0;  // p
  int64_t n_groups = 0;  // g; head hh reads group hh / (n_heads / n_groups)
  int64_t d_conv = 0;    // W
  int64_t conv_dim() const { return d_inner + 2 * n_groups * d_state; }
  int64_t conv_state_size() const { return conv_dim() * d_conv; }           // per sequence
  int64_t ssm_state_size() const { return n_heads * head_dim * d_state; }  // per sequence
};

// Per-layer recurrent state of a pool of sequences, in backend memory, fp32.
// A sequence is a slot index; ops address its state through the slot. Like token ids, the
// `slots` arrays the ops take live in backend memory.
struct LayerState {
  float* conv = nullptr;  // [n_slots, conv_dim, d_conv]: last d_conv pre-conv xBC rows, oldest first
  float* ssm = nullptr;   // [n_slots, n_heads, head_dim, d_state]
};

// Inputs of the selective scan, as views into the conv output and in_proj output.
struct ScanInputs {
  Mat x;             // [rows, d_inner]        (h, p) per row
  Mat B;             // [rows, n_groups*d_state]
  Mat C;             // [rows, n_groups*d_state]
  Mat dt;            // [rows, n_heads]        raw, before dt_bias and softplus
  TensorView dt_bias;  // [n_heads] f32
  TensorView A_log;    // [n_heads] f32
  TensorView D;        // [n_heads] f32
  float dt_min = 0.0f;  // dt clamp applied after softplus
  float dt_max = std::numeric_limits<float>::infinity();
};

// Ops recorded once and enqueued again by each Launch: a CUDA graph on cuda (a decode step then
// costs one launch and no per-kernel host work), the ops themselves on host backends.
class Recording {
 public:
  virtual ~Recording() = default;
  virtual void Launch() = 0;
};

enum class WeightKind {
  kMatrix,  // used by MatMul / Embed: [rows, cols]
  kVector,  // norms, conv, dt_bias, A_log, D: read by elementwise ops, kept fp32
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // ---- memory -----------------------------------------------------------------------
  virtual void* Alloc(size_t bytes) = 0;  // zero-filled
  virtual void Free(void* p) = 0;
  virtual void CopyToDevice(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void CopyToHost(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void Fill(float* dst, float value, size_t n) = 0;
  // Waits for queued work (a no-op for synchronous backends).
  virtual void Sync() {}

  // Makes a stored host tensor usable by the ops. May return a view of the same memory
  // (host backends keeping the stored dtype) or a new backend allocation it owns.
  virtual TensorView PrepareWeight(const TensorView& host, WeightKind kind) = 0;

  // ---- ops ------------------------------------------------------------------------------
  // Activations are fp32 Mats, except the mixer's intermediates: in_proj's output (z, xBC, dt),
  // the conv output (x, B, C) and the scan output y, which the model allocates in this type.
  // Ops reading or writing those accept it as well as fp32. cuda's bf16 mode keeps them in bf16
  // (as mamba_ssm's bf16 models do): half the bytes its prefill moves between kernels.
  virtual DType IntermediateDType() const { return DType::F32; }

  // out[i, :] = table[ids[i], :]        ids: [n] in backend memory; table [V, d_model]
  virtual void Embed(const int32_t* ids, int64_t n, const TensorView& table, Mat out) = 0;

  // out = x * rsqrt(mean(x^2) + eps) * weight, row by row.   x, out [rows, cols] fp32
  virtual void RmsNorm(Mat x, const TensorView& weight, float eps, Mat out) = 0;

  // out = x @ w^T, or with `accumulate` out += x @ w^T (the residual stream's update: the sum
  // lands in fp32 out, with no fp32 copy of the product kept apart).
  // x [rows, K], w [N, K] (stored dtype), out [rows, N]
  virtual void MatMul(Mat x, const TensorView& w, Mat out, bool accumulate) = 0;
  void MatMul(Mat x, const TensorView& w, Mat out) { MatMul(x, w, out, /*accumulate=*/false); }

  // Causal depthwise conv + bias + SiLU over n_seqs sequences of seq_len rows each,
  // starting from and updating each sequence's conv state.
  // xbc: [n_seqs*seq_len, conv_dim]; out: same shape; weight [conv_dim, d_conv]; bias [conv_dim]
  virtual void ConvPrefill(Mat xbc, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                           const MixerDims& dims, float* conv_state, const TensorView& weight,
                           const TensorView& bias, Mat out) = 0;

  // SSD over n_seqs sequences of seq_len rows each; starts from and updates the ssm states.
  // y [n_seqs*seq_len, d_inner] = scan + D*x. chunk_size is a hint (results agree for any).
  virtual void SsdPrefill(const ScanInputs& in, int64_t n_seqs, int64_t seq_len, const int32_t* slots,
                          const MixerDims& dims, int64_t chunk_size, float* ssm_state, Mat y) = 0;

  // One token for each of n_seqs sequences (row i belongs to slots[i]).
  virtual void ConvStep(Mat xbc, const int32_t* slots, const MixerDims& dims, float* conv_state,
                        const TensorView& weight, const TensorView& bias, Mat out) = 0;
  virtual void SsmStep(const ScanInputs& in, const int32_t* slots, const MixerDims& dims,
                       float* ssm_state, Mat y) = 0;

  // Decode's in_proj and conv together: out = x @ w^T, then ConvStep over the columns
  // [conv_begin, conv_begin + conv_dim) of out into conv_out (row i belongs to slots[i], all distinct). As
  // the two ops; a backend may run them as one (cuda: the conv in the product's epilogue).
  virtual void MatMulConvStep(Mat x, const TensorView& w, Mat out, int64_t conv_begin, const int32_t* slots,
                              const MixerDims& dims, float* conv_state, const TensorView& conv_weight,
                              const TensorView& conv_bias, Mat conv_out) {
    MatMul(x, w, out);
    ConvStep(out.Cols(conv_begin, dims.conv_dim()), slots, dims, conv_state, conv_weight, conv_bias, conv_out);
  }

  // out = rmsnorm_groups(y * silu(z)) * weight, one norm per group of group_size channels.
  virtual void GatedRmsNorm(Mat y, Mat z, const TensorView& weight, int64_t group_size, float eps,
                            Mat out) = 0;

  // A norm and the product that reads it, as the two ops: RmsNorm into `normed`, then
  // out = normed @ w^T; GatedRmsNorm into `gated`, then out += gated @ w^T (out_proj adding into
  // the residual stream). The product is all the model reads, so a backend may skip writing
  // normed / gated (cuda's 16-bit modes write the GEMM's packed operand instead, or keep the
  // normed rows on chip); their contents are unspecified afterwards.
  virtual void RmsNormMatMul(Mat x, const TensorView& norm_weight, float eps, Mat normed, const TensorView& w,
                             Mat out) {
    RmsNorm(x, norm_weight, eps, normed);
    MatMul(normed, w, out);
  }
  virtual void GatedRmsNormMatMulAdd(Mat y, Mat z, const TensorView& norm_weight, int64_t group_size, float eps,
                                     Mat gated, const TensorView& w, Mat out) {
    GatedRmsNorm(y, z, norm_weight, group_size, eps, gated);
    MatMul(gated, w, out, /*accumulate=*/true);
  }
  // Decode's whole front of a layer: RmsNorm of x into normed, then MatMulConvStep of normed
  // (normed unspecified afterwards, as above: cuda computes the norm inside its GEMV's blocks).
  virtual void RmsNormMatMulConvStep(Mat x, const TensorView& norm_weight, float eps, Mat normed,
                                     const TensorView& w, Mat out, int64_t conv_begin, const int32_t* slots,
                                     const MixerDims& dims, float* conv_state, const TensorView& conv_weight,
                                     const TensorView& conv_bias, Mat conv_out) {
    RmsNorm(x, norm_weight, eps, normed);
    MatMulConvStep(normed, w, out, conv_begin, slots, dims, conv_state, conv_weight, conv_bias, conv_out);
  }

  // Copies the recurrent state of one slot to another (prefix snapshots, forks).
  virtual void CopySlot(float* state, int64_t slot_size, int32_t from, int32_t to) = 0;

  // ---- decoding without the host ---------------------------------------------------------
  // One token per logits row by the rule of sample/pick_rule.h, so every backend picks the same
  // id from the same logits and uniform. logits: [n_rows, ld], columns [0, p.n_valid) are the
  // candidates; draw: one uint64 in backend memory, the draw number of the uniforms
  // (PickUniform(p.seed, *draw, row)), advanced by one; out_ids: [n_rows] in backend memory.
  virtual void PickTokens(const float* logits, int64_t n_rows, int64_t ld, const PickParams& p, uint64_t* draw,
                          int32_t* out_ids) = 0;

  // Records what `ops` enqueues so that Launch() enqueues it again. `ops` must only enqueue
  // (no host reads, no Alloc/Free) and must have run once unrecorded with the same sizes, so
  // that every scratch buffer has grown. Host backends run ops as issued: Launch() calls ops.
  virtual std::unique_ptr<Recording> Record(std::function<void()> ops) {
    struct Reissue final : Recording {
      std::function<void()> ops;
      void Launch() override { ops(); }
    };
    auto r = std::make_unique<Reissue>();
    r->ops = std::move(ops);
    return r;
  }

  // A read of up to kMaxQueuedRead bytes that does not wait for the queue: QueueRead returns a
  // ticket at once, CollectRead(ticket, dst) waits for the work queued before the read and copies
  // the bytes out. At most kQueuedReads reads may be outstanding. It lets the host handle one
  // decode step's token while the backend already runs the next. The tickets live here; where
  // the bytes land is the backend's (StartRead / FinishRead).
  static constexpr size_t kMaxQueuedRead = 64;
  static constexpr int kQueuedReads = 8;
  uint64_t QueueRead(const void* src, size_t bytes) {
    CHECK(bytes <= kMaxQueuedRead && next_read_ - collected_ < uint64_t(kQueuedReads));
    const int slot = int(next_read_ % kQueuedReads);
    read_sizes_[slot] = bytes;
    StartRead(slot, src, bytes);
    return next_read_++;
  }
  void CollectRead(uint64_t ticket, void* host_dst) {
    CHECK(ticket < next_read_ && ticket + kQueuedReads >= next_read_);
    const int slot = int(ticket % kQueuedReads);
    std::memcpy(host_dst, FinishRead(slot), read_sizes_[slot]);
    if (ticket >= collected_) collected_ = ticket + 1;
  }

 protected:
  // Read `slot` of the ring: StartRead queues the copy of `bytes` from src, FinishRead waits for
  // it and returns where the bytes are. Host backends run ops as issued and copy at once.
  virtual void StartRead(int slot, const void* src, size_t bytes) { CopyToHost(host_reads_[slot], src, bytes); }
  virtual const void* FinishRead(int slot) { return host_reads_[slot]; }

 private:
  unsigned char host_reads_[kQueuedReads][kMaxQueuedRead];
  size_t read_sizes_[kQueuedReads] = {};
  uint64_t next_read_ = 0, collected_ = 0;
};

std::unique_ptr<Backend> MakeRefBackend();
std::unique_ptr<Backend> MakeCpuBackend(int n_threads);
// nullptr when built without CUDA or no device is present.
std::unique_ptr<Backend> MakeCudaBackend();

}  // namespace mamba2
