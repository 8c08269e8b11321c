// Decoding with the token picked on the backend: the step that feeds the last pick through the
// model and picks again is recorded once and relaunched, so a decode step costs one launch and
// a 4-byte read of the id (see Mamba2Model::StartPicking in mamba2_model.h).
#include "model/mamba2_model.h"

namespace mamba2 {
namespace {

bool SameParams(const PickParams& a, const PickParams& b) {
  return a.temperature == b.temperature && a.top_k == b.top_k && a.top_p == b.top_p && a.min_p == b.min_p &&
         a.n_valid == b.n_valid && a.seed == b.seed;
}

}  // namespace

Result<int32_t> Mamba2Model::StartPicking(int32_t slot, const PickParams& params) {
  if (slot < 0 || slot >= options_.max_slots)
    return Status::Error("state slot " + std::to_string(slot) + " out of range [0, " +
                         std::to_string(options_.max_slots) + ")");
  if (params.n_valid < 1 || params.n_valid > config_.vocab_rows)
    return Status::Error("pick: n_valid " + std::to_string(params.n_valid) + " outside [1, " +
                         std::to_string(config_.vocab_rows) + "]");
  if (last_logits_seqs_ != 1)
    return Status::Error("StartPicking: the last Prefill/Step left no logits of exactly one sequence "
                         "(prefill the prompt with LogitsMode::kLast first)");
  while (queued_count_ > 0) RETURN_IF_ERROR(TakePicked().status());  // a previous sequence's steps
  if (!draw_) {
    draw_ = reinterpret_cast<uint64_t*>(Device(2));
    pick_id_ = reinterpret_cast<int32_t*>(Device(1));
    pick_slot_ = reinterpret_cast<int32_t*>(Device(1));
  }
  if (!pick_params_ || !SameParams(*pick_params_, params)) {
    pick_step_.recording.reset();  // the parameters are part of what was recorded
    pick_params_ = params;
  }
  const uint64_t zero = 0;
  backend_->CopyToDevice(draw_, &zero, sizeof zero);
  backend_->CopyToDevice(pick_slot_, &slot, sizeof slot);
  backend_->PickTokens(logits_, 1, config_.vocab_rows, params, draw_, pick_id_);
  last_logits_seqs_ = 0;  // consumed: a second StartPicking must not pick from them again
  int32_t id = -1;
  backend_->CopyToHost(&id, pick_id_, sizeof id);
  return id;
}

Result<int32_t> Mamba2Model::StepPicked() {
  if (queued_count_ > 0) return Status::Error("StepPicked with queued steps: take them with TakePicked first");
  RETURN_IF_ERROR(QueueStepPicked());
  return TakePicked();
}

Result<int32_t> Mamba2Model::TakePicked() {
  if (queued_count_ == 0) return Status::Error("TakePicked: no step is queued");
  const uint64_t ticket = queued_[queued_head_];
  queued_head_ = (queued_head_ + 1) % kMaxQueuedPicks;
  --queued_count_;
  int32_t id = -1;
  backend_->CollectRead(ticket, &id);
  return id;
}

Status Mamba2Model::QueueStepPicked() {
  if (!pick_params_ || !draw_) return Status::Error("QueueStepPicked before StartPicking");
  if (queued_count_ == kMaxQueuedPicks)
    return Status::Error("QueueStepPicked: " + std::to_string(kMaxQueuedPicks) + " steps already queued");
  EnsureWorkspace(1, 1);
  RunRecorded(pick_step_, [this] {
    Forward(pick_id_, pick_slot_, 1, 1, /*step=*/true, LogitsMode::kLast, logits_);
    backend_->PickTokens(logits_, 1, config_.vocab_rows, *pick_params_, draw_, pick_id_);
  });
  last_logits_seqs_ = 0;
  queued_[(queued_head_ + queued_count_) % kMaxQueuedPicks] = backend_->QueueRead(pick_id_, sizeof(int32_t));
  ++queued_count_;
  return Status::Ok();
}

}  // namespace mamba2
