#include "model/mamba2_model.h"

#include <algorithm>
#include <cstring>

namespace mamba2 {

Result<std::unique_ptr<Mamba2Model>> Mamba2Model::Load(const std::string& dir, Backend* backend,
                                                       const ModelOptions& options) {
  ASSIGN_OR_RETURN(ModelConfig config, LoadConfig(dir));
  ASSIGN_OR_RETURN(WeightStore store, WeightStore::OpenDir(dir));
  return FromStore(config, std::make_shared<const WeightStore>(std::move(store)), backend, options);
}

Result<std::unique_ptr<Mamba2Model>> Mamba2Model::FromStore(const ModelConfig& config,
                                                            std::shared_ptr<const WeightStore> store,
                                                            Backend* backend, const ModelOptions& options) {
  if (options.max_slots < 1) return Status::Error("max_slots must be >= 1");
  if (options.chunk_size < 0) return Status::Error("chunk_size must be >= 1");
  if (options.max_rows < 1) return Status::Error("max_rows must be >= 1");
  std::unique_ptr<Mamba2Model> m(new Mamba2Model(config, backend, options));
  ASSIGN_OR_RETURN(m->weights_, BindWeights(*store, config, *backend));
  m->store_ = std::move(store);
  const MixerDims dims = config.dims();
  for (int64_t l = 0; l < config.n_layer; ++l) {
    LayerState s;
    s.conv = m->Device(size_t(options.max_slots * dims.conv_state_size()));  // [slots, conv_dim, d_conv]
    s.ssm = m->Device(size_t(options.max_slots * dims.ssm_state_size()));    // [slots, h, p, n]
    m->states_.push_back(s);
  }
  return m;
}

Mamba2Model::Mamba2Model(const ModelConfig& config, Backend* backend, const ModelOptions& options)
    : config_(config),
      backend_(backend),
      options_(options),
      chunk_size_(options.chunk_size > 0 ? options.chunk_size : config.chunk_size) {}

Mamba2Model::~Mamba2Model() {
  if (logits_) backend_->Free(logits_);
  for (void* p : ws_allocations_) backend_->Free(p);
  for (void* p : allocations_) backend_->Free(p);
}

float* Mamba2Model::Device(size_t n_floats) {
  void* p = backend_->Alloc(n_floats * sizeof(float));
  allocations_.push_back(p);
  return static_cast<float*>(p);
}

void Mamba2Model::ResetSlot(int32_t slot) {
  CHECK(slot >= 0 && slot < options_.max_slots);
  const MixerDims dims = config_.dims();
  for (const LayerState& s : states_) {
    backend_->Fill(s.conv + int64_t(slot) * dims.conv_state_size(), 0.0f, size_t(dims.conv_state_size()));
    backend_->Fill(s.ssm + int64_t(slot) * dims.ssm_state_size(), 0.0f, size_t(dims.ssm_state_size()));
  }
}

void Mamba2Model::CopySlot(int32_t from, int32_t to) {
  CHECK(from >= 0 && from < options_.max_slots && to >= 0 && to < options_.max_slots);
  const MixerDims dims = config_.dims();
  for (const LayerState& s : states_) {
    backend_->CopySlot(s.conv, dims.conv_state_size(), from, to);
    backend_->CopySlot(s.ssm, dims.ssm_state_size(), from, to);
  }
}

int64_t Mamba2Model::state_bytes_per_slot() const {
  const MixerDims dims = config_.dims();
  return config_.n_layer * (dims.conv_state_size() + dims.ssm_state_size()) * int64_t(sizeof(float));
}

std::vector<float> Mamba2Model::SaveSlot(int32_t slot) const {
  CHECK(slot >= 0 && slot < options_.max_slots);
  const MixerDims dims = config_.dims();
  std::vector<float> out(size_t(state_bytes_per_slot()) / sizeof(float));
  float* dst = out.data();
  for (const LayerState& s : states_) {
    backend_->CopyToHost(dst, s.conv + int64_t(slot) * dims.conv_state_size(),
                         size_t(dims.conv_state_size()) * sizeof(float));
    dst += dims.conv_state_size();
    backend_->CopyToHost(dst, s.ssm + int64_t(slot) * dims.ssm_state_size(),
                         size_t(dims.ssm_state_size()) * sizeof(float));
    dst += dims.ssm_state_size();
  }
  return out;
}

Status Mamba2Model::LoadSlot(int32_t slot, const std::vector<float>& data) {
  if (slot < 0 || slot >= options_.max_slots) return Status::Error("state slot out of range");
  if (int64_t(data.size() * sizeof(float)) != state_bytes_per_slot())
    return Status::Error("state snapshot has " + std::to_string(data.size()) + " floats, expected " +
                         std::to_string(state_bytes_per_slot() / int64_t(sizeof(float))));
  const MixerDims dims = config_.dims();
  const float* src = data.data();
  for (const LayerState& s : states_) {
    backend_->CopyToDevice(s.conv + int64_t(slot) * dims.conv_state_size(), src,
                           size_t(dims.conv_state_size()) * sizeof(float));
    src += dims.conv_state_size();
    backend_->CopyToDevice(s.ssm + int64_t(slot) * dims.ssm_state_size(), src,
                           size_t(dims.ssm_state_size()) * sizeof(float));
    src += dims.ssm_state_size();
  }
  return Status::Ok();
}

void Mamba2Model::EnsureWorkspace(int64_t rows, int64_t logit_rows) {
  // Logits get their own buffer, sized for the rows that produce them: a prompt that only
  // needs its last position's logits must not hold [rows, vocab] floats (412 MB at 2048 rows).
  if (logit_rows > logit_rows_) {
    ++ws_generation_;
    if (logits_) backend_->Free(logits_);
    logits_ = static_cast<float*>(backend_->Alloc(size_t(logit_rows * config_.vocab_rows) * sizeof(float)));
    logit_rows_ = logit_rows;
  }
  if (rows <= ws_rows_) return;
  ++ws_generation_;
  for (void* p : ws_allocations_) backend_->Free(p);
  ws_allocations_.clear();
  auto alloc_bytes = [&](int64_t bytes) {
    void* p = backend_->Alloc(size_t(bytes));
    ws_allocations_.push_back(p);
    return p;
  };
  auto alloc = [&](int64_t n_floats) { return static_cast<float*>(alloc_bytes(n_floats * int64_t(sizeof(float)))); };
  const int64_t inter_bytes = int64_t(DTypeSize(backend_->IntermediateDType()));
  const MixerDims dims = config_.dims();
  ids_ = reinterpret_cast<int32_t*>(alloc(rows));
  slots_ = reinterpret_cast<int32_t*>(alloc(options_.max_slots));
  residual_ = alloc(rows * config_.d_model);
  normed_ = alloc(rows * config_.d_model);
  zxbcdt_ = alloc_bytes(rows * config_.in_proj_rows() * inter_bytes);
  conv_out_ = alloc_bytes(rows * dims.conv_dim() * inter_bytes);
  y_ = alloc_bytes(rows * config_.d_inner * inter_bytes);
  gated_ = alloc(rows * config_.d_inner);
  ws_rows_ = rows;
}

Status Mamba2Model::CheckInputs(std::span<const int32_t> tokens, std::span<const int32_t> slots) const {
  if (slots.empty()) return Status::Error("no sequences given");
  if (int64_t(slots.size()) > options_.max_slots)
    return Status::Error(std::to_string(slots.size()) + " sequences but the model holds " +
                         std::to_string(options_.max_slots) + " state slots");
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i] < 0 || slots[i] >= options_.max_slots)
      return Status::Error("state slot " + std::to_string(slots[i]) + " out of range [0, " +
                           std::to_string(options_.max_slots) + ")");
    for (size_t j = 0; j < i; ++j)
      if (slots[j] == slots[i]) return Status::Error("state slot " + std::to_string(slots[i]) + " given twice");
  }
  if (tokens.empty() || tokens.size() % slots.size() != 0)
    return Status::Error(std::to_string(tokens.size()) + " tokens do not split into " +
                         std::to_string(slots.size()) + " equal non-empty sequences");
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_rows)
      return Status::Error("token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                           " is out of range [0, " + std::to_string(config_.vocab_rows) + ")");
  return Status::Ok();
}

Status Mamba2Model::Prefill(std::span<const int32_t> tokens, std::span<const int32_t> slots, LogitsMode mode,
                            float* logits) {
  RETURN_IF_ERROR(CheckInputs(tokens, slots));
  if (mode == LogitsMode::kAll && !logits) return Status::Error("Prefill: LogitsMode::kAll needs a logits buffer");
  const int64_t n_seqs = int64_t(slots.size());
  const int64_t seq_len = int64_t(tokens.size()) / n_seqs;
  // Long prompts go through in pieces that keep chunk boundaries; the state carries across.
  int64_t piece = std::max<int64_t>(1, options_.max_rows / n_seqs);
  if (piece >= chunk_size_) piece = piece / chunk_size_ * chunk_size_;
  piece = std::min(piece, seq_len);
  EnsureWorkspace(n_seqs * piece, mode == LogitsMode::kAll ? n_seqs * piece : n_seqs);
  backend_->CopyToDevice(slots_, slots.data(), slots.size() * sizeof(int32_t));
  std::vector<int32_t> ids(static_cast<size_t>(n_seqs * piece));
  const int64_t V = config_.vocab_rows;
  for (int64_t start = 0; start < seq_len; start += piece) {
    const int64_t len = std::min(piece, seq_len - start);
    for (int64_t s = 0; s < n_seqs; ++s)
      std::memcpy(ids.data() + s * len, tokens.data() + s * seq_len + start, size_t(len) * sizeof(int32_t));
    backend_->CopyToDevice(ids_, ids.data(), size_t(n_seqs * len) * sizeof(int32_t));
    const bool last_piece = start + len == seq_len;
    const LogitsMode piece_mode = mode == LogitsMode::kAll ? LogitsMode::kAll
                                  : (mode == LogitsMode::kLast && last_piece) ? LogitsMode::kLast
                                                                               : LogitsMode::kNone;
    Forward(ids_, slots_, n_seqs, len, /*step=*/false, piece_mode, logits_);
    if (piece_mode == LogitsMode::kAll) {
      backend_->Sync();
      for (int64_t s = 0; s < n_seqs; ++s)
        backend_->CopyToHost(logits + (s * seq_len + start) * V, logits_ + s * len * V,
                             size_t(len * V) * sizeof(float));
    } else if (piece_mode == LogitsMode::kLast && logits) {
      backend_->Sync();
      backend_->CopyToHost(logits, logits_, size_t(n_seqs * V) * sizeof(float));
    }
  }
  last_logits_seqs_ = mode == LogitsMode::kLast ? n_seqs : 0;
  backend_->Sync();
  return Status::Ok();
}

Status Mamba2Model::Step(std::span<const int32_t> tokens, std::span<const int32_t> slots, float* logits) {
  if (tokens.size() != slots.size())
    return Status::Error("Step: " + std::to_string(tokens.size()) + " tokens for " +
                         std::to_string(slots.size()) + " sequences");
  RETURN_IF_ERROR(CheckInputs(tokens, slots));
  const int64_t n = int64_t(slots.size());
  EnsureWorkspace(n, n);
  backend_->CopyToDevice(slots_, slots.data(), slots.size() * sizeof(int32_t));
  backend_->CopyToDevice(ids_, tokens.data(), tokens.size() * sizeof(int32_t));
  const LogitsMode mode = logits ? LogitsMode::kLast : LogitsMode::kNone;
  const size_t key = size_t(n) * 2 + (logits ? 1 : 0);
  if (step_recordings_.size() <= key) step_recordings_.resize(key + 1);
  RunRecorded(step_recordings_[key], [this, n, mode] { Forward(ids_, slots_, n, 1, /*step=*/true, mode, logits_); });
  last_logits_seqs_ = logits ? n : 0;
  if (logits) {
    backend_->Sync();
    backend_->CopyToHost(logits, logits_, size_t(n * config_.vocab_rows) * sizeof(float));
  }
  backend_->Sync();
  return Status::Ok();
}

void Mamba2Model::Forward(const int32_t* ids, const int32_t* slots, int64_t n_seqs, int64_t seq_len, bool step,
                          LogitsMode mode, float* logits) {
  Backend& be = *backend_;
  const ModelConfig& c = config_;
  const MixerDims dims = c.dims();
  const int64_t rows = n_seqs * seq_len;
  const int64_t di = c.d_inner, gn = c.n_groups * c.d_state, conv_dim = dims.conv_dim();
  const DType inter = be.IntermediateDType();

  Mat residual{residual_, rows, c.d_model, c.d_model};           // [rows, d_model] fp32 residual stream
  Mat normed{normed_, rows, c.d_model, c.d_model};               // [rows, d_model]
  Mat zxbcdt{zxbcdt_, rows, c.in_proj_rows(), c.in_proj_rows(), inter};  // [rows, in_proj_rows]
  Mat z = zxbcdt.Cols(0, di);                                    // [rows, d_inner]
  Mat xbc = zxbcdt.Cols(di, conv_dim);                           // [rows, conv_dim]
  Mat conv_out{conv_out_, rows, conv_dim, conv_dim, inter};      // [rows, conv_dim]
  Mat y{y_, rows, di, di, inter};                                // [rows, d_inner]
  Mat gated{gated_, rows, di, di};                               // [rows, d_inner]

  // residual = embedding; each layer adds its mixer's output: residual += mixer(rmsnorm(residual)).
  be.Embed(ids, rows, weights_.embedding, residual);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = weights_.layers[size_t(l)];
    const LayerState& st = states_[size_t(l)];
    if (step)
      be.RmsNormMatMulConvStep(residual, w.norm, c.norm_eps, normed, w.in_proj, zxbcdt, di, slots, dims, st.conv,
                               w.conv_w, w.conv_b, conv_out);
    else
      be.RmsNormMatMul(residual, w.norm, c.norm_eps, normed, w.in_proj, zxbcdt);
    ScanInputs in;
    in.x = conv_out.Cols(0, di);                 // [rows, n_heads * head_dim]
    in.B = conv_out.Cols(di, gn);                // [rows, n_groups * d_state]
    in.C = conv_out.Cols(di + gn, gn);           // [rows, n_groups * d_state]
    in.dt = zxbcdt.Cols(di + conv_dim, c.n_heads);  // [rows, n_heads]
    in.dt_bias = w.dt_bias;
    in.A_log = w.A_log;
    in.D = w.D;
    in.dt_min = c.dt_limit_min;
    in.dt_max = c.dt_limit_max;
    if (step) {
      be.SsmStep(in, slots, dims, st.ssm, y);
    } else {
      be.ConvPrefill(xbc, n_seqs, seq_len, slots, dims, st.conv, w.conv_w, w.conv_b, conv_out);
      be.SsdPrefill(in, n_seqs, seq_len, slots, dims, chunk_size_, st.ssm, y);
    }
    be.GatedRmsNormMatMulAdd(y, z, w.gated_norm, di / c.n_groups, c.norm_eps, gated, w.out_proj, residual);
  }
  if (mode == LogitsMode::kNone) return;
  const int64_t V = c.vocab_rows;
  if (mode == LogitsMode::kAll) {
    be.RmsNormMatMul(residual, weights_.norm_f, c.norm_eps, normed, weights_.lm_head, Mat{logits, rows, V, V});
  } else {
    // The last row of each sequence: strided views, no gather.
    Mat last_res{residual_ + (seq_len - 1) * c.d_model, n_seqs, c.d_model, seq_len * c.d_model};
    Mat last{normed_, n_seqs, c.d_model, c.d_model};
    be.RmsNormMatMul(last_res, weights_.norm_f, c.norm_eps, last, weights_.lm_head, Mat{logits, n_seqs, V, V});
  }
}

}  // namespace mamba2
