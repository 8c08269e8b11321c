#include "engine/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <numeric>
#include <thread>

#include "core/thread_pool.h"

namespace mamba2 {

std::vector<int32_t> CollectTargets(const std::vector<std::vector<int32_t>>& docs, const std::vector<PplWindow>& windows) {
  std::vector<int32_t> targets;
  targets.reserve(size_t(TotalScored(windows)));
  for (const PplWindow& w : windows) {
    const std::vector<int32_t>& seq = docs[size_t(w.doc)];
    for (int64_t i = w.start + w.length - w.n_scored + 1; i <= w.start + w.length; ++i) targets.push_back(seq[size_t(i)]);
  }
  return targets;
}

uint64_t HashWindows(const std::vector<std::vector<int32_t>>& docs, const std::vector<PplWindow>& windows) {
  uint64_t h = kFnvOffset;
  for (const PplWindow& w : windows) {
    const int64_t shape[2] = {w.length, w.n_scored};
    h = Fnv1a(h, shape, sizeof shape);
    h = Fnv1a(h, docs[size_t(w.doc)].data() + w.start, size_t(w.length) * sizeof(int32_t));
  }
  return h;
}

Status CheckKlBase(const LogprobFile& base, int64_t vocab_rows, const std::vector<int32_t>& targets) {
  const LogprobHeader& h = base.header();
  if (h.vocab_rows != vocab_rows)
    return Status::Error(base.path() + ": rows of " + std::to_string(h.vocab_rows) + " log-probabilities, but this model has " +
                         std::to_string(vocab_rows) + " vocab rows: a different vocabulary cannot be compared");
  if (h.n_rows != int64_t(targets.size()))
    return Status::Error(base.path() + ": " + std::to_string(h.n_rows) + " scored positions, this run has " +
                         std::to_string(targets.size()) + ": the token streams differ (other text, tokenizer or protocol)");
  for (size_t i = 0; i < targets.size(); ++i)
    if (base.target(int64_t(i)) != targets[i])
      return Status::Error(base.path() + ": scored token " + std::to_string(i) + " is id " +
                           std::to_string(base.target(int64_t(i))) + ", this run has " + std::to_string(targets[i]) +
                           ": the token streams differ (other text, tokenizer or protocol)");
  return Status::Ok();
}

int64_t ChoosePiece(const ModelConfig& config, int32_t batch, int64_t max_window, int64_t budget_bytes) {
  const int64_t per_position = int64_t(batch) * config.vocab_rows * int64_t(sizeof(float));
  int64_t cap = std::max<int64_t>(1, budget_bytes / std::max<int64_t>(per_position, 1));
  const int64_t chunk = std::max<int64_t>(1, config.chunk_size);
  cap = cap >= chunk ? cap / chunk * chunk : chunk;
  return std::max<int64_t>(1, std::min(cap, max_window));
}

PplMemory EstimatePplMemory(const ModelConfig& config, int32_t batch, int64_t piece, int64_t max_rows, int threads) {
  PplMemory m;
  const int64_t V = config.vocab_rows;
  const int64_t f = int64_t(sizeof(float));
  m.logits = int64_t(batch) * piece * V * f;
  // Mamba2Model::Prefill runs max_rows / n_seqs positions per sequence per backend pass.
  const int64_t chunk = std::max<int64_t>(1, config.chunk_size);
  int64_t per_seq = std::max<int64_t>(1, max_rows / batch);
  if (per_seq >= chunk) per_seq = per_seq / chunk * chunk;
  const int64_t rows = int64_t(batch) * std::min(per_seq, piece);
  const MixerDims d = config.dims();
  const int64_t row_floats = 3 * config.d_model + config.in_proj_rows() + d.conv_dim() + 2 * config.d_inner + V + 1;
  m.workspace = rows * row_floats * f;
  m.states = int64_t(batch) * config.n_layer * (d.conv_state_size() + d.ssm_state_size()) * f;
  const int64_t n_threads = threads > 0 ? threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
  m.scratch = n_threads * V * f + int64_t(batch) * piece * 4 * f;
  return m;
}

namespace {

// One scored position of the current pass.
struct ScoredRow {
  float* logits;   // [vocab_rows], becomes log-probabilities when rows are saved or compared
  int64_t row;     // canonical index
  int32_t target;
  int32_t window;  // index into windows
  double logprob = 0.0;
  double kl = 0.0;
  bool same_top1 = false;
};

}  // namespace

Result<PplResult> ScoreWindows(Mamba2Model& model, const std::vector<std::vector<int32_t>>& docs,
                               const std::vector<PplWindow>& windows, const PplOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& config = model.config();
  const int64_t V = config.vocab_rows;
  CHECK(options.batch >= 1 && options.batch <= model.max_slots());
  int64_t max_len = 0;
  for (const PplWindow& w : windows) {
    CHECK(w.doc >= 0 && size_t(w.doc) < docs.size());
    CHECK(w.length >= 1 && w.n_scored >= 1 && w.n_scored <= w.length && w.start >= 0);
    CHECK(size_t(w.start + w.length) < docs[size_t(w.doc)].size());  // the last target exists
    max_len = std::max(max_len, w.length);
  }
  const int64_t total_rows = TotalScored(windows);
  if (options.kl_base) CHECK(options.kl_base->header().n_rows == total_rows && options.kl_base->header().vocab_rows == V);
  const int64_t piece = options.piece > 0 ? std::min(options.piece, std::max<int64_t>(max_len, 1))
                                          : ChoosePiece(config, options.batch, max_len, int64_t(512) << 20);
  const bool full_rows = options.save || options.kl_base;

  PplResult res;
  res.doc_loglik.assign(docs.size(), 0.0);
  res.doc_scored.assign(docs.size(), 0);
  std::vector<double> kl_values;
  int64_t same_top1 = 0;
  if (options.kl_base) kl_values.reserve(size_t(total_rows));

  ThreadPool pool(options.threads);
  std::vector<float> logits(size_t(options.batch) * size_t(piece) * size_t(V));
  std::vector<int32_t> tokens(size_t(options.batch) * size_t(piece));
  std::vector<ScoredRow> rows;
  rows.reserve(size_t(options.batch) * size_t(piece));
  std::mutex error_mu;
  Status error;

  // Equal lengths batch together; the stable order keeps the sums independent of `batch`.
  std::vector<int32_t> order(windows.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return windows[size_t(a)].length > windows[size_t(b)].length; });

  for (size_t g = 0; g < order.size();) {
    const int64_t T = windows[size_t(order[g])].length;
    size_t g_end = g;
    while (g_end < order.size() && g_end - g < size_t(options.batch) && windows[size_t(order[g_end])].length == T) ++g_end;
    const int32_t b = int32_t(g_end - g);
    std::vector<int32_t> slots(static_cast<size_t>(b), 0);
    for (int32_t s = 0; s < b; ++s) {
      slots[size_t(s)] = s;
      model.ResetSlot(s);
    }
    for (int64_t p0 = 0; p0 < T; p0 += piece) {
      const int64_t len = std::min(piece, T - p0);
      rows.clear();
      for (int32_t s = 0; s < b; ++s) {
        const int32_t wi = order[g + size_t(s)];
        const PplWindow& w = windows[size_t(wi)];
        const std::vector<int32_t>& seq = docs[size_t(w.doc)];
        std::copy_n(seq.begin() + w.start + p0, len, tokens.begin() + s * len);
        const int64_t first_scored = T - w.n_scored;
        for (int64_t j = std::max<int64_t>(0, first_scored - p0); j < len; ++j) {
          const int64_t pos = p0 + j;
          rows.push_back(ScoredRow{logits.data() + (s * len + j) * V, w.row + (pos - first_scored),
                                   seq[size_t(w.start + pos + 1)], wi});
        }
      }
      RETURN_IF_ERROR(model.Prefill(std::span<const int32_t>(tokens.data(), size_t(b * len)), slots, LogitsMode::kAll,
                                    logits.data()));
      pool.ParallelFor(
          int64_t(rows.size()),
          [&](int64_t begin, int64_t end) {
            std::vector<float> base_row(options.kl_base ? size_t(V) : 0);
            for (int64_t i = begin; i < end; ++i) {
              ScoredRow& r = rows[size_t(i)];
              float* x = r.logits;
              float m = x[0];
              for (int64_t v = 1; v < V; ++v) m = std::max(m, x[v]);
              double sum = 0.0;
              for (int64_t v = 0; v < V; ++v) sum += double(std::exp(x[v] - m));
              const double lse = double(m) + std::log(sum);
              r.logprob = double(x[r.target]) - lse;
              if (!full_rows) continue;
              for (int64_t v = 0; v < V; ++v) x[v] = float(double(x[v]) - lse);
              if (options.save) {
                Status st = options.save->WriteRow(r.row, x);
                if (!st.ok()) {
                  std::lock_guard<std::mutex> lock(error_mu);
                  if (error.ok()) error = st;
                }
              }
              if (options.kl_base) {
                options.kl_base->ReadRow(r.row, base_row.data());
                const KlRow k = CompareLogprobRows(base_row.data(), x, V);
                r.kl = k.kl;
                r.same_top1 = k.same_top1;
              }
            }
          },
          /*min_chunk=*/4);
      RETURN_IF_ERROR(error);
      for (const ScoredRow& r : rows) {
        const int32_t doc = windows[size_t(r.window)].doc;
        res.doc_loglik[size_t(doc)] += r.logprob;
        res.doc_scored[size_t(doc)] += 1;
        res.sum_nll -= r.logprob;
        if (options.kl_base) {
          kl_values.push_back(r.kl);
          same_top1 += r.same_top1 ? 1 : 0;
        }
      }
      res.n_scored += int64_t(rows.size());
      res.tokens_fed += b * len;
      if (options.progress) options.progress->Add(b * len);
    }
    g = g_end;
  }
  if (options.kl_base) {
    res.has_kl = true;
    res.kl = SummarizeKl(kl_values, same_top1, options.kl_base->header().sum_nll, res.sum_nll);
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace mamba2
