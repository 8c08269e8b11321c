// The Mamba-2 language model, written once over the Backend interface.
//
// Sequences live in state slots (conv + SSM state per layer). Prefill runs the SSD chunked
// scan over a batch of equal-length pieces, starting from each slot's state, so a prompt can
// be fed in any number of pieces; Step advances any set of slots by one token in O(1).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/weight_store.h"
#include "model/config.h"
#include "model/weights.h"

namespace mamba2 {

enum class LogitsMode {
  kNone,  // only advance the state
  kLast,  // logits of the last position of each sequence: [n_seqs, vocab_rows]
  kAll,   // logits of every position: [n_seqs * seq_len, vocab_rows]
};

struct ModelOptions {
  int32_t max_slots = 1;    // sequences whose state is held at once
  int64_t chunk_size = 0;   // 0: the config's
  int64_t max_rows = 2048;  // tokens per backend pass during prefill (bounds activation memory)
};

class Mamba2Model {
 public:
  // Loads config.json and the weights from `dir`. The backend must outlive the model.
  static Result<std::unique_ptr<Mamba2Model>> Load(const std::string& dir, Backend* backend,
                                                   const ModelOptions& options = {});
  // Builds a model from an already open store (tests, benchmarks with in-memory weights).
  static Result<std::unique_ptr<Mamba2Model>> FromStore(const ModelConfig& config,
                                                        std::shared_ptr<const WeightStore> store,
                                                        Backend* backend, const ModelOptions& options = {});
  ~Mamba2Model();

  const ModelConfig& config() const { return config_; }
  Backend& backend() const { return *backend_; }
  int32_t max_slots() const { return options_.max_slots; }
  int64_t chunk_size() const { return chunk_size_; }

  // Zeroes a slot's state: the start of a new sequence.
  void ResetSlot(int32_t slot);
  // Copies the full state of one slot into another (prefix snapshots).
  void CopySlot(int32_t from, int32_t to);
  // Bytes of state per sequence (conv + SSM, all layers, fp32).
  int64_t state_bytes_per_slot() const;
  // Reads / writes one slot's state as a flat host vector [layers x (conv, ssm)].
  std::vector<float> SaveSlot(int32_t slot) const;
  Status LoadSlot(int32_t slot, const std::vector<float>& data);

  // tokens: [n_seqs * seq_len] row-major by sequence; slots: [n_seqs].
  // logits (host): see LogitsMode; may be null for kNone, and for kLast (the logits then stay on
  // the backend for StartPicking).
  Status Prefill(std::span<const int32_t> tokens, std::span<const int32_t> slots, LogitsMode mode,
                 float* logits);
  // One token for each slot; logits (host): [n, vocab_rows].
  Status Step(std::span<const int32_t> tokens, std::span<const int32_t> slots, float* logits);

  // ---- decoding with the token picked on the backend (mamba2_picking.cpp) -----------------
  // Only token ids cross to the host, and a step is recorded once and relaunched (one CUDA graph
  // launch on cuda). After a Prefill of one sequence with LogitsMode::kLast (logits may be
  // null), StartPicking picks the first token from those logits; each StepPicked feeds the last
  // pick through one step of `slot` and picks again (sample/pick_rule.h). The draw counter
  // restarts at 0 in StartPicking: a seed gives the same ids on every backend, up to the
  // rounding of the logits.
  Result<int32_t> StartPicking(int32_t slot, const PickParams& params);
  Result<int32_t> StepPicked();
  // StepPicked in two halves, so that the backend runs the next step while the host handles a
  // token: QueueStepPicked launches a step and returns at once (up to kMaxQueuedPicks ahead);
  // TakePicked waits for the oldest queued step and returns its id. StepPicked needs an empty
  // queue; StartPicking discards what is still queued.
  static constexpr int kMaxQueuedPicks = 4;
  Status QueueStepPicked();
  Result<int32_t> TakePicked();
  int queued_picks() const { return queued_count_; }

 private:
  Mamba2Model(const ModelConfig& config, Backend* backend, const ModelOptions& options);
  Status CheckInputs(std::span<const int32_t> tokens, std::span<const int32_t> slots) const;
  // One backend pass over rows = n_seqs * seq_len tokens read from ids (backend memory), the
  // sequences in the state slots `slots` (backend memory); decode when `step`.
  void Forward(const int32_t* ids, const int32_t* slots, int64_t n_seqs, int64_t seq_len, bool step,
               LogitsMode mode, float* logits);
  void EnsureWorkspace(int64_t rows, int64_t logit_rows);

  // A decode step's ops kept as a Recording (a CUDA graph on cuda): run unrecorded the first
  // time after the workspace moved (so that every backend scratch grows), recorded the next
  // time, relaunched after that.
  struct RecordedStep {
    std::unique_ptr<Recording> recording;
    int64_t generation = -1;  // ws_generation_ of its last unrecorded run
  };
  // A template, so that a relaunch does not build a std::function (an allocation) per step.
  template <typename Ops>
  void RunRecorded(RecordedStep& step, Ops&& ops) {
    if (step.generation != ws_generation_) {
      step.recording.reset();
      ops();
      step.generation = ws_generation_;
      return;
    }
    if (!step.recording) step.recording = backend_->Record(std::function<void()>(ops));
    step.recording->Launch();
  }
  float* Device(size_t n_floats);  // a backend allocation owned by the model

  ModelConfig config_;
  Backend* backend_;
  ModelOptions options_;
  int64_t chunk_size_;
  std::shared_ptr<const WeightStore> store_;  // keeps mmapped weights alive
  ModelWeights weights_;
  std::vector<LayerState> states_;  // [n_layer]
  std::vector<void*> allocations_;

  // Workspace, sized for `ws_rows_` tokens. Shapes per row:
  int64_t ws_rows_ = 0;
  int32_t* ids_ = nullptr;     // [rows]
  int32_t* slots_ = nullptr;   // [max_slots]
  float* residual_ = nullptr;  // [rows, d_model]   fp32 residual stream
  float* normed_ = nullptr;    // [rows, d_model]
  // The mixer's intermediates, in the backend's IntermediateDType:
  void* zxbcdt_ = nullptr;     // [rows, in_proj_rows]
  void* conv_out_ = nullptr;   // [rows, conv_dim]
  void* y_ = nullptr;          // [rows, d_inner]
  float* gated_ = nullptr;     // [rows, d_inner]
  float* logits_ = nullptr;    // [logit_rows_, vocab_rows], its own allocation
  int64_t logit_rows_ = 0;
  std::vector<void*> ws_allocations_;
  int64_t ws_generation_ = 0;     // bumped whenever a workspace pointer changes
  int64_t last_logits_seqs_ = 0;  // sequences whose logits the last Prefill/Step left in logits_

  // Picked decoding: one sequence; its buffers never move, so a recorded step stays valid
  // until the workspace moves or the parameters change.
  int32_t* pick_id_ = nullptr;    // [1] the last pick, the next step's input
  int32_t* pick_slot_ = nullptr;  // [1]
  uint64_t* draw_ = nullptr;      // [1] draw counter of the uniforms
  std::optional<PickParams> pick_params_;
  RecordedStep pick_step_;
  // Step's recordings, [rows * 2 + (logits wanted)]: the addresses are the workspace's, the
  // token ids and slots are uploaded into it before each launch.
  std::vector<RecordedStep> step_recordings_;
  uint64_t queued_[kMaxQueuedPicks] = {};  // Backend::QueueRead tickets of pick_id_, oldest at queued_head_
  int queued_head_ = 0, queued_count_ = 0;
};

}  // namespace mamba2
