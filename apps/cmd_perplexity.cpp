// mamba2 perplexity: perplexity of a text file under one of three protocols (lm-eval's
// wikitext task, strided sliding windows, one stateful pass), with optional per-position
// log-probabilities saved for a later --kl-base comparison. Results go to stdout (and --json);
// progress goes to stderr.
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "io/atomic_file.h"
#include "io/read_file.h"
#include "engine/perplexity.h"
#include "engine/perplexity_logits.h"
#include "engine/perplexity_protocol.h"
#include "engine/progress.h"
#include "model/config.h"

namespace mamba2::app {
namespace {

struct PerplexityArgs {
  std::string dir, file, tokenizer, protocol, json_out, save_logits, kl_base, dump_ids, backend = "cpu", compute;
  int64_t ctx = 0, stride = 0, max_tokens = 0, max_articles = 0;
  int32_t batch = 1;
  int threads = 0;
  bool stateful = false, f16 = false, quiet = false;
  bool stride_given = false, ctx_given = false;
};

std::string Bytes(int64_t b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(b) / double(int64_t(1) << 30));
  return buf;
}

Result<PplSetup> SetupFromArgs(const PerplexityArgs& a) {
  PplSetup s;
  const bool have_protocol = !a.protocol.empty();
  if (a.stateful && have_protocol && a.protocol != "stateful")
    return Status::Error("--stateful and --protocol " + a.protocol + " exclude each other");
  if (a.stateful || a.protocol == "stateful") {
    s.protocol = PplProtocol::kStateful;
  } else if (a.protocol == "lm-eval-wikitext" || a.protocol == "wikitext") {
    s.protocol = PplProtocol::kWikitext;
  } else if (!have_protocol || a.protocol == "sliding") {
    s.protocol = PplProtocol::kSliding;
  } else {
    return Status::Error("--protocol " + a.protocol + ": expected lm-eval-wikitext, sliding or stateful");
  }
  if (a.stride_given && s.protocol != PplProtocol::kSliding)
    return Status::Error(std::string("--stride applies to the sliding-window protocol, not ") + PplProtocolName(s.protocol));
  if (a.ctx_given && s.protocol == PplProtocol::kStateful)
    return Status::Error("--ctx does not apply to --stateful (one window over the whole text)");
  if (a.max_articles != 0 && s.protocol != PplProtocol::kWikitext)
    return Status::Error("--max-articles applies to --protocol lm-eval-wikitext only");
  if (a.ctx_given && a.ctx < 2) return Status::Error("--ctx " + std::to_string(a.ctx) + ": a window needs at least 2 tokens");
  if (a.ctx > int64_t(std::numeric_limits<int32_t>::max()))
    return Status::Error("--ctx " + std::to_string(a.ctx) + " is too large (at most 2147483647)");
  s.ctx = a.ctx_given ? a.ctx : 2048;
  if (a.stride_given && (a.stride < 1 || a.stride > s.ctx))
    return Status::Error("--stride " + std::to_string(a.stride) + " is outside [1, ctx = " + std::to_string(s.ctx) + "]");
  s.stride = a.stride;
  if (a.batch < 1) return Status::Error("--batch " + std::to_string(a.batch) + ": must be >= 1");
  if (a.max_tokens < 0 || a.max_articles < 0) return Status::Error("--max-tokens / --max-articles must be >= 0");
  s.max_tokens = a.max_tokens;
  s.max_articles = a.max_articles;
  return s;
}

Status DumpIds(const std::string& path, const PplInput& in) {
  nlohmann::json j;
  j["protocol"] = PplProtocolName(in.setup.protocol);
  const bool wiki = in.setup.protocol == PplProtocol::kWikitext;
  j["prefix_token"] = wiki ? nlohmann::json(in.setup.prefix_token) : nlohmann::json(nullptr);
  nlohmann::json docs = nlohmann::json::array();
  for (const auto& seq : in.docs) docs.push_back(std::vector<int32_t>(seq.begin() + (wiki ? 1 : 0), seq.end()));
  j["docs"] = std::move(docs);
  return WriteFileAtomic(path, j.dump() + "\n").With("--dump-ids");
}

nlohmann::json Finite(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

int RunPerplexity(const PerplexityArgs& a) {
  auto setup = SetupFromArgs(a);
  if (!setup.ok()) return Fail(setup.status());
  const std::string dir = a.dir.empty() ? DefaultModelDir() : a.dir;

  auto text = ReadFile(a.file);
  if (!text.ok()) return Fail(text.status());
  auto tokenizer = LoadTokenizerFor(dir, a.tokenizer);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  auto config = LoadConfig(dir);
  if (!config.ok()) return Fail(config.status());
  const int32_t eos = (*tokenizer)->eos_id();
  setup->prefix_token = eos >= 0 ? eos : config->eos_id;

  auto input = PreparePplInput(*text, a.file, **tokenizer, *setup);
  if (!input.ok()) return Fail(input.status());
  for (const auto& seq : input->docs)
    for (int32_t id : seq)
      if (id < 0 || id >= config->vocab_rows)
        return Fail(Status::Error("the tokenizer produced id " + std::to_string(id) + " but the model has " +
                                  std::to_string(config->vocab_rows) + " vocab rows: wrong tokenizer for " + dir + "?"));
  if (!a.dump_ids.empty())
    if (Status st = DumpIds(a.dump_ids, *input); !st.ok()) return Fail(st);

  // Memory: the logits buffer is bounded by feeding windows in pieces; batch sizes the rest.
  int64_t max_window = 0, fed = 0;
  for (const PplWindow& w : input->windows) {
    max_window = std::max(max_window, w.length);
    fed += w.length;
  }
  const int64_t max_rows = ModelOptions{}.max_rows;
  const int64_t piece = ChoosePiece(*config, a.batch, max_window, int64_t(512) << 20);
  const PplMemory mem = EstimatePplMemory(*config, a.batch, piece, max_rows, a.threads);
  const int64_t avail = AvailableHostBytes();
  if (avail > 0 && mem.total() > avail)
    return Fail(Status::Error(
        "--batch " + std::to_string(a.batch) + " with windows of " + std::to_string(max_window) + " tokens needs about " +
        Bytes(mem.total()) + " (logits " + Bytes(mem.logits) + ", activations " + Bytes(mem.workspace) + ", states " +
        Bytes(mem.states) + ") but only " + Bytes(avail) + " is available: lower --batch or --ctx"));

  auto backend = MakeBackendByName(a.backend, a.threads, a.compute);
  if (!backend.ok()) return Fail(backend.status());
  ModelOptions model_options;
  model_options.max_slots = a.batch;
  auto model = Mamba2Model::Load(dir, backend->get(), model_options);
  if (!model.ok()) return Fail(model.status());

  const std::vector<int32_t> targets = CollectTargets(input->docs, input->windows);
  const int64_t V = config->vocab_rows;
  std::unique_ptr<LogprobFile> base;
  if (!a.kl_base.empty()) {
    auto f = LogprobFile::Open(a.kl_base);
    if (!f.ok()) return Fail(f.status());
    base = std::make_unique<LogprobFile>(std::move(f).value());
    if (Status st = CheckKlBase(*base, V, targets); !st.ok()) return Fail(st);
    if (base->header().context_hash != HashWindows(input->docs, input->windows))
      std::fprintf(stderr, "note: %s scored the same tokens with other contexts (another protocol, --ctx or --stride)\n",
                   a.kl_base.c_str());
  }
  std::unique_ptr<LogprobWriter> writer;
  if (!a.save_logits.empty()) {
    auto w = LogprobWriter::Create(a.save_logits, a.f16 ? LogprobDType::kF16 : LogprobDType::kF32, V, targets,
                                   HashWindows(input->docs, input->windows));
    if (!w.ok()) return Fail(w.status());
    writer = std::move(w).value();
  }

  const char* proto = PplProtocolName(input->setup.protocol);
  Progress progress(std::string("perplexity ") + proto, fed, stderr, a.quiet ? Progress::Mode::kOff : Progress::Mode::kAuto);
  PplOptions opt;
  opt.batch = a.batch;
  opt.piece = piece;
  opt.threads = a.threads;
  opt.progress = &progress;
  opt.save = writer.get();
  opt.kl_base = base.get();
  auto result = ScoreWindows(**model, input->docs, input->windows, opt);
  progress.Finish();
  if (!result.ok()) return Fail(result.status());
  if (writer)
    if (Status st = writer->Finish(result->sum_nll); !st.ok()) return Fail(st);
  const PplMetrics m = ComputePplMetrics(*input, *result);
  const bool wiki = input->setup.protocol == PplProtocol::kWikitext;

  // Human-readable results on stdout.
  std::printf("protocol: %s", proto);
  if (wiki)
    std::printf(" (max_length %lld, prefix token %d)", (long long)input->setup.ctx, input->setup.prefix_token);
  else if (input->setup.protocol == PplProtocol::kSliding)
    std::printf(" (ctx %lld, stride %lld)", (long long)input->setup.ctx, (long long)input->setup.stride);
  std::printf("\n");
  if (wiki)
    std::printf("documents: %zu articles, %lld tokens, %lld words, %lld bytes\n", input->docs.size(),
                (long long)input->n_tokens, (long long)m.n_words, (long long)m.n_bytes);
  else
    std::printf("text: %lld tokens, %lld scored\n", (long long)input->n_tokens, (long long)m.n_scored);
  if (wiki) {
    std::printf("word_perplexity: %.6f\n", m.word_perplexity);
    std::printf("byte_perplexity: %.6f\n", m.byte_perplexity);
    std::printf("bits_per_byte: %.6f\n", m.bits_per_byte);
  }
  std::printf("token_perplexity: %.6f\n", m.token_perplexity);
  std::printf("nll_per_token: %.6f\n", m.nll_per_token);
  std::printf("speed: %lld tokens fed in %.2f s (%.1f tok/s, batch %d, %zu windows)\n", (long long)result->tokens_fed,
              result->seconds, double(result->tokens_fed) / std::max(result->seconds, 1e-9), a.batch,
              input->windows.size());
  if (result->has_kl) {
    const KlSummary& k = result->kl;
    std::printf("kl_base: %s\n", a.kl_base.c_str());
    std::printf("  KL(base || current): mean %.6g, median %.6g, p99 %.6g, max %.6g\n", k.mean_kl, k.median_kl, k.p99_kl,
                k.max_kl);
    std::printf("  top-1 agreement: %.4f%% of %lld positions\n", 100.0 * k.top1_agreement, (long long)k.n_rows);
    std::printf("  token perplexity: base %.6f, current %.6f, difference %+.6f\n", k.base_ppl, k.current_ppl,
                k.current_ppl - k.base_ppl);
  }
  std::fflush(stdout);

  if (!a.json_out.empty()) {
    nlohmann::json j;
    j["protocol"] = proto;
    j["model"] = dir;
    j["backend"] = a.backend;
    j["file"] = a.file;
    j["ctx"] = input->setup.protocol == PplProtocol::kStateful ? nlohmann::json(nullptr) : nlohmann::json(input->setup.ctx);
    j["stride"] = input->setup.protocol == PplProtocol::kSliding ? nlohmann::json(input->setup.stride) : nlohmann::json(nullptr);
    j["prefix_token"] = wiki ? nlohmann::json(input->setup.prefix_token) : nlohmann::json(nullptr);
    j["batch"] = a.batch;
    j["n_docs"] = input->docs.size();
    j["n_windows"] = input->windows.size();
    j["n_tokens"] = input->n_tokens;
    j["n_scored"] = m.n_scored;
    j["sum_loglik"] = m.sum_loglik;
    j["nll_per_token"] = m.nll_per_token;
    j["token_perplexity"] = m.token_perplexity;
    if (wiki) {
      j["n_words"] = m.n_words;
      j["n_bytes"] = m.n_bytes;
      j["word_perplexity"] = Finite(m.word_perplexity);
      j["byte_perplexity"] = Finite(m.byte_perplexity);
      j["bits_per_byte"] = Finite(m.bits_per_byte);
    }
    j["tokens_fed"] = result->tokens_fed;
    j["seconds"] = result->seconds;
    if (result->has_kl) {
      const KlSummary& k = result->kl;
      j["kl"] = {{"base", a.kl_base},       {"mean", k.mean_kl},         {"median", k.median_kl},
                 {"p99", k.p99_kl},         {"max", k.max_kl},           {"top1_agreement", k.top1_agreement},
                 {"base_ppl", k.base_ppl}, {"current_ppl", k.current_ppl}, {"ppl_diff", k.current_ppl - k.base_ppl}};
    }
    if (Status st = WriteFileAtomic(a.json_out, j.dump(2) + "\n"); !st.ok()) return Fail(st.With("--json"));
  }
  return 0;
}

}  // namespace

Runner AddPerplexity(CLI::App& app) {
  auto* cmd = app.add_subcommand("perplexity", "Perplexity of a text file (lm-eval wikitext, sliding window or stateful)");
  auto a = std::make_shared<PerplexityArgs>();
  cmd->add_option("-m,--model", a->dir, "model folder (default: the bundled tiny-shakespeare model)");
  cmd->add_option("-f,--file", a->file, "text file (UTF-8)")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (default: the one in the model folder)");
  cmd->add_option("--protocol", a->protocol,
                  "lm-eval-wikitext | sliding | stateful (default: sliding; see README)");
  cmd->add_flag("--stateful", a->stateful, "one pass over the whole text carrying the state (= --protocol stateful)");
  cmd->add_option("--ctx", a->ctx, "window length in tokens (default 2048; lm-eval-wikitext: max_length)")
      ->each([a](const std::string&) { a->ctx_given = true; });
  cmd->add_option("--stride", a->stride, "sliding: tokens between window starts, in [1, ctx] (default ctx/2)")
      ->each([a](const std::string&) { a->stride_given = true; });
  cmd->add_option("--batch", a->batch, "windows of equal length scored together (state slots)")->capture_default_str();
  cmd->add_option("--max-tokens", a->max_tokens,
                  "only the first N tokens (lm-eval-wikitext: whole articles until N tokens)");
  cmd->add_option("--max-articles", a->max_articles, "lm-eval-wikitext: only the first N articles");
  cmd->add_option("--json", a->json_out, "also write the results as JSON to this file");
  cmd->add_option("--save-logits", a->save_logits, "save every scored position's log-probabilities (format: README)");
  cmd->add_flag("--f16", a->f16, "--save-logits stores float16 (half the size)");
  cmd->add_option("--kl-base", a->kl_base, "compare with a --save-logits file of the same text: KL, top-1, ppl");
  cmd->add_option("--dump-ids", a->dump_ids, "write the token ids used as JSON (for tools/perplexity_ref.py)");
  cmd->add_option("--backend", a->backend, "ref | cpu | cuda")->capture_default_str();
  cmd->add_option("--compute", a->compute, "cpu prefill matmul precision: f32 (default) | bf16");
  cmd->add_option("--threads", a->threads, "CPU threads (default: all cores)");
  cmd->add_flag("-q,--quiet", a->quiet, "no progress output");
  return [a]() { return RunPerplexity(*a); };
}

}  // namespace mamba2::app
