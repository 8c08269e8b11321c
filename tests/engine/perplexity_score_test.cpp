// ScoreWindows on a random model against a plain oracle: each window alone, prefilled whole
// from a zero state, log-softmax in double by hand. Batching, pieces, row bookkeeping, the
// saved rows and the KL comparison must not change what is scored.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/backend.h"
#include "engine/perplexity.h"
#include "engine/perplexity_logits.h"
#include "engine/perplexity_windows.h"
#include "model/mamba2_model.h"
#include "support/random_model.h"

namespace mamba2 {
namespace {

struct Fixture {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Mamba2Model> model;
};

Fixture Load(const std::string& dir, int32_t slots) {
  Fixture f;
  f.backend = MakeCpuBackend(2);
  ModelOptions o;
  o.max_slots = slots;
  auto m = Mamba2Model::Load(dir, f.backend.get(), o);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (m.ok()) f.model = std::move(m).value();
  return f;
}

std::string ModelDir() {
  static const std::string dir = [] {
    testing::RandomModelSpec spec;
    spec.vocab_rows = 80;
    spec.chunk_size = 8;
    spec.seed = 5;
    return testing::WriteRandomModel(spec);
  }();
  return dir;
}

std::vector<std::vector<int32_t>> Docs() {
  std::mt19937_64 rng(11);
  std::vector<std::vector<int32_t>> docs;
  for (int n : {61, 5, 40}) {
    std::vector<int32_t> d(static_cast<size_t>(n));
    for (auto& t : d) t = int32_t(rng() % 80);
    docs.push_back(d);
  }
  return docs;
}

// Sum of log p(target) of one window, by itself.
double OracleWindow(Mamba2Model& m, const std::vector<int32_t>& seq, const PplWindow& w, std::vector<double>* rows_lp) {
  const int64_t V = m.config().vocab_rows;
  std::vector<float> logits(size_t(w.length * V));
  const int32_t slot = 0;
  m.ResetSlot(slot);
  EXPECT_TRUE(m.Prefill({seq.data() + w.start, size_t(w.length)}, {&slot, 1}, LogitsMode::kAll, logits.data()).ok());
  double sum = 0.0;
  for (int64_t i = w.length - w.n_scored; i < w.length; ++i) {
    const float* x = logits.data() + i * V;
    double z = 0.0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(double(x[v]));
    const double lp = double(x[seq[size_t(w.start + i + 1)]]) - std::log(z);
    sum += lp;
    if (rows_lp) rows_lp->push_back(lp);
  }
  return sum;
}

TEST(PerplexityScore, MatchesPerWindowOracleForAnyBatchAndPiece) {
  const auto docs = Docs();
  std::vector<PplWindow> ws;
  for (int32_t d = 0; d < 3; ++d) AppendRollingWindows(d, int64_t(docs[size_t(d)].size()) - 1, 16, ws);
  AppendSlidingWindows(0, int64_t(docs[0].size()), 12, 5, ws);
  for (size_t i = 0; i < ws.size(); ++i) ws[i].row = i == 0 ? 0 : ws[i - 1].row + ws[i - 1].n_scored;

  Fixture one = Load(ModelDir(), 1);
  ASSERT_TRUE(one.model);
  std::vector<double> oracle(3, 0.0);
  for (const PplWindow& w : ws) oracle[size_t(w.doc)] += OracleWindow(*one.model, docs[size_t(w.doc)], w, nullptr);

  for (int32_t batch : {1, 3, 8}) {
    for (int64_t piece : {int64_t(0), int64_t(5), int64_t(8)}) {
      Fixture f = Load(ModelDir(), batch);
      PplOptions o;
      o.batch = batch;
      o.piece = piece;
      o.threads = 2;
      auto r = ScoreWindows(*f.model, docs, ws, o);
      ASSERT_TRUE(r.ok()) << r.status().message();
      EXPECT_EQ(r->n_scored, TotalScored(ws));
      double total = 0.0;
      for (int d = 0; d < 3; ++d) {
        EXPECT_NEAR(r->doc_loglik[size_t(d)], oracle[size_t(d)], 1e-4 * std::abs(oracle[size_t(d)]))
            << "batch " << batch << " piece " << piece << " doc " << d;
        total += r->doc_loglik[size_t(d)];
      }
      EXPECT_NEAR(r->sum_nll, -total, 1e-9 * std::abs(total));
    }
  }
}

TEST(PerplexityScore, StatefulWindowIsOneLongPrefill) {
  const auto docs = Docs();
  std::vector<PplWindow> ws;
  AppendStatefulWindow(0, int64_t(docs[0].size()), ws);
  Fixture f = Load(ModelDir(), 1);
  ASSERT_TRUE(f.model);
  const double oracle = OracleWindow(*f.model, docs[0], ws[0], nullptr);
  PplOptions o;
  o.piece = 7;  // the state carries across pieces
  auto r = ScoreWindows(*f.model, docs, ws, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NEAR(r->doc_loglik[0], oracle, 1e-5 * std::abs(oracle));
}

TEST(PerplexityScore, SavedRowsAndKlAgainstItself) {
  const auto docs = Docs();
  std::vector<PplWindow> ws;
  AppendSlidingWindows(0, int64_t(docs[0].size()), 16, 6, ws);
  const std::vector<int32_t> targets = CollectTargets(docs, ws);
  const std::string path = testing::MakeTempDir() + "/run.bin";
  Fixture f = Load(ModelDir(), 2);
  ASSERT_TRUE(f.model);
  const int64_t V = f.model->config().vocab_rows;
  PplOptions o;
  o.batch = 2;
  double first_nll = 0.0;
  {
    auto w = LogprobWriter::Create(path, LogprobDType::kF32, V, targets, HashWindows(docs, ws));
    ASSERT_TRUE(w.ok());
    o.save = w->get();
    auto r = ScoreWindows(*f.model, docs, ws, o);
    ASSERT_TRUE(r.ok()) << r.status().message();
    first_nll = r->sum_nll;
    ASSERT_TRUE((*w)->Finish(r->sum_nll).ok());
  }
  auto base = LogprobFile::Open(path);
  ASSERT_TRUE(base.ok()) << base.status().message();
  ASSERT_TRUE(CheckKlBase(*base, V, targets).ok());
  // Each saved row is a normalised log-softmax whose target entry is the oracle's log p.
  Fixture one = Load(ModelDir(), 1);
  std::vector<double> oracle_rows;
  for (const PplWindow& w : ws) OracleWindow(*one.model, docs[0], w, &oracle_rows);
  ASSERT_EQ(int64_t(oracle_rows.size()), base->header().n_rows);
  std::vector<float> row(static_cast<size_t>(V));
  for (int64_t i = 0; i < base->header().n_rows; ++i) {
    base->ReadRow(i, row.data());
    double z = 0.0;
    for (float v : row) z += std::exp(double(v));
    EXPECT_NEAR(z, 1.0, 1e-5);
    EXPECT_NEAR(row[size_t(base->target(i))], oracle_rows[size_t(i)], 1e-4);
  }
  // The same run compared with itself: KL 0, top-1 100%, same perplexity.
  o.save = nullptr;
  o.kl_base = &*base;
  auto again = ScoreWindows(*f.model, docs, ws, o);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(again->has_kl);
  EXPECT_EQ(again->kl.n_rows, base->header().n_rows);
  EXPECT_LT(again->kl.max_kl, 1e-9);
  EXPECT_EQ(again->kl.top1_agreement, 1.0);
  EXPECT_NEAR(again->kl.current_ppl, again->kl.base_ppl, 1e-9 * again->kl.base_ppl);
  EXPECT_DOUBLE_EQ(base->header().sum_nll, first_nll);
}

TEST(PerplexityScore, MemoryEstimateAndPiece) {
  ModelConfig c;
  c.d_model = 768;
  c.n_layer = 24;
  c.vocab_rows = 50288;
  c.d_inner = 1536;
  c.n_heads = 24;
  c.head_dim = 64;
  c.d_state = 128;
  c.chunk_size = 256;
  // One window of 2048 fits a 512 MiB logits budget (2048 * 50288 * 4 = 412 MB); eight do not.
  EXPECT_EQ(ChoosePiece(c, 1, 2048, int64_t(512) << 20), 2048);
  EXPECT_EQ(ChoosePiece(c, 8, 2048, int64_t(512) << 20), 256);
  EXPECT_EQ(ChoosePiece(c, 64, 2048, int64_t(512) << 20), 256);  // at least one chunk
  EXPECT_EQ(ChoosePiece(c, 1, 100, int64_t(512) << 20), 100);
  const PplMemory m = EstimatePplMemory(c, 2, 1024, 2048, 4);
  EXPECT_EQ(m.logits, int64_t(2) * 1024 * 50288 * 4);
  // States: 24 layers x (conv 1792 x 4 + ssm 24 x 64 x 128) floats per slot.
  EXPECT_EQ(m.states, int64_t(2) * 24 * (1792 * 4 + 24 * 64 * 128) * 4);
  EXPECT_GT(m.workspace, 0);
  EXPECT_EQ(m.total(), m.logits + m.workspace + m.states + m.scratch);
}

}  // namespace
}  // namespace mamba2
