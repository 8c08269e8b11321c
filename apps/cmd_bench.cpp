// mamba2 bench: prefill and decode speed next to the machine's limits, measured in one run.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <thread>

#include "backend/cpu/cpu_backend.h"
#include "commands.h"
#include "io/atomic_file.h"
#include "io/weight_store.h"
#include "lib/machine.h"
#include "lib/model_bench.h"
#include "lib/model_cost.h"
#include "lib/model_writer.h"
#include "lib/profiling_backend.h"
#include "lib/report.h"
#include "lib/stats.h"
#include "model/random_weights.h"
#if defined(MAMBA2_HAVE_CUDA)
#include "backend/cuda/cuda_backend.h"
#endif

namespace mamba2::app {
namespace {

struct BenchArgs {
  std::string dir, shape, dtype, compute, backend = "cpu", json, write_model, command;
  std::vector<int64_t> prefill{512, 2048}, contexts{128, 1024, 4096};
  int64_t decode = 128, context_decode = 32, accuracy = 0;
  int threads = 0, reps = 3;
  uint64_t seed = 1;
  bool no_limits = false, profile = false;
};

Result<DType> ParseWeightDType(const std::string& s) {
  if (s == "f32" || s == "fp32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "f16" || s == "fp16") return DType::F16;
  return Status::Error("--dtype \"" + s + "\" is not one of f32, bf16, f16");
}

struct BackendChoice {
  std::unique_ptr<Backend> backend;
  std::function<std::unique_ptr<Backend>()> make;  // another one like it (for the GEMM probe)
  std::string compute;                            // "f32" | "bf16" (| "tf32" on cuda)
  bool host = true;
  int cuda_device = 0;
};

Result<BackendChoice> ChooseBackend(const BenchArgs& a, DType weights) {
  BackendChoice c;
  // bf16 weights multiply in bf16 unless told otherwise; f32 and f16 weights in fp32.
  std::string compute = a.compute.empty() ? (weights == DType::BF16 ? "bf16" : "f32") : a.compute;
  if (a.backend == "cpu") {
    CpuBackendOptions o;
    o.n_threads = a.threads;
    ASSIGN_OR_RETURN(o.matmul, ParseCpuMatMul(compute));
    c.make = [o] { return MakeCpuBackend(o); };
    c.compute = CpuMatMulName(o.matmul);
  } else if (a.backend == "cuda") {
#if defined(MAMBA2_HAVE_CUDA)
    ASSIGN_OR_RETURN(CudaBackendOptions o, CudaOptionsFromEnv());
    // MAMBA2_CUDA_MATMUL decides unless --compute says otherwise.
    if (!a.compute.empty()) {
      ASSIGN_OR_RETURN(o.matmul, ParseCudaMatMul(a.compute == "f32"   ? "fp32"
                                                 : a.compute == "f16" ? "fp16"
                                                                      : a.compute));
    }
    c.make = [o] { return MakeCudaBackend(o); };
    c.compute = o.matmul == CudaMatMul::kBf16   ? "bf16"
                : o.matmul == CudaMatMul::kFp16 ? "f16"
                : o.matmul == CudaMatMul::kTf32 ? "tf32"
                                                : "f32";
    c.host = false;
    c.cuda_device = o.device;
#else
    return Status::Error("backend cuda: this build has no CUDA support");
#endif
  } else {
    return Status::Error("--backend \"" + a.backend + "\" is not one of cpu, cuda");
  }
  c.backend = c.make();
  if (!c.backend) return Status::Error("backend " + a.backend + ": no usable device");
  return c;
}

// Where the time of one prefill (the longest --prefill) and of decode steps goes, op by op.
Status Profile(const ModelConfig& config, std::shared_ptr<const WeightStore> store, Backend* inner,
               const BenchArgs& a) {
  using namespace mamba2::bench;
  ProfilingBackend prof(inner);
  prof.NameWeightShape(Shape{config.in_proj_rows(), config.d_model}, "in_proj");
  prof.NameWeightShape(Shape{config.d_model, config.d_inner}, "out_proj");
  prof.NameWeightShape(Shape{config.vocab_rows, config.d_model}, "lm_head");
  ASSIGN_OR_RETURN(auto model, Mamba2Model::FromStore(config, store, &prof));
  std::vector<float> logits(size_t(config.vocab_rows));
  const int32_t slot = 0;
  int64_t len = 0;
  for (int64_t l : a.prefill) len = std::max(len, l);
  if (len > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(len));
    // Spread over the vocabulary, whatever its size (a small model's is a few thousand ids).
    const size_t vocab = size_t(std::max<int64_t>(1, std::min<int64_t>(config.vocab_size, 50000)));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 7919 + 13) % vocab);
    for (int pass = 0; pass < 2; ++pass) {  // the first one warms up
      prof.Reset();
      model->ResetSlot(slot);
      RETURN_IF_ERROR(model->Prefill(ids, {&slot, 1}, LogitsMode::kLast, logits.data()));
    }
    std::printf("\n%s", FormatProfile(prof.times(), "profile: prefill of " + std::to_string(len) + " tokens").c_str());
  }
  const int64_t steps = std::max<int64_t>(a.decode, 1);
  int32_t tok = 1;
  RETURN_IF_ERROR(model->Prefill({&tok, 1}, {&slot, 1}, LogitsMode::kLast, logits.data()));
  for (int i = 0; i < 4; ++i) RETURN_IF_ERROR(model->Step({&tok, 1}, {&slot, 1}, logits.data()));
  prof.Reset();
  for (int64_t i = 0; i < steps; ++i) RETURN_IF_ERROR(model->Step({&tok, 1}, {&slot, 1}, logits.data()));
  std::printf("\n%s", FormatProfile(prof.times(), "profile: " + std::to_string(steps) + " decode steps").c_str());
  return Status::Ok();
}

// Next-token perplexity of ids under logits [ids.size(), vocab].
double Perplexity(const std::vector<float>& logits, const std::vector<int32_t>& ids, int64_t vocab) {
  double nll = 0;
  for (size_t t = 0; t + 1 < ids.size(); ++t) {
    const float* row = logits.data() + t * size_t(vocab);
    double mx = row[0], z = 0;
    for (int64_t v = 1; v < vocab; ++v) mx = std::max(mx, double(row[v]));
    for (int64_t v = 0; v < vocab; ++v) z += std::exp(double(row[v]) - mx);
    nll += mx + std::log(z) - double(row[ids[t + 1]]);
  }
  return std::exp(nll / double(std::max<size_t>(1, ids.size() - 1)));
}

// Logits of `tokens` random tokens from the bench's model against the same weights on an
// fp32-mode cpu backend: relative L2 and both perplexities.
Status Accuracy(const ModelConfig& config, std::shared_ptr<const WeightStore> store, Backend* backend, int threads,
                int64_t tokens, uint64_t seed, bench::BenchReport* rep) {
  std::vector<int32_t> ids(static_cast<size_t>(tokens));
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int32_t& id : ids) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    id = int32_t(x % uint64_t(std::min(config.vocab_size, config.vocab_rows)));
  }
  auto logits_of = [&](Backend* be, std::vector<float>* out) -> Status {
    ASSIGN_OR_RETURN(auto model, Mamba2Model::FromStore(config, store, be));
    out->resize(ids.size() * size_t(config.vocab_rows));
    const int32_t slot = 0;
    return model->Prefill(ids, {&slot, 1}, LogitsMode::kAll, out->data());
  };
  CpuBackendOptions o;
  o.n_threads = threads;
  auto fp32 = MakeCpuBackend(o);
  std::vector<float> want, got;
  RETURN_IF_ERROR(logits_of(fp32.get(), &want));
  RETURN_IF_ERROR(logits_of(backend, &got));
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  rep->accuracy_tokens = tokens;
  rep->logits_rel_l2_vs_fp32 = std::sqrt(num / std::max(den, 1e-300));
  rep->ppl_fp32 = Perplexity(want, ids, config.vocab_rows);
  rep->ppl_compute = Perplexity(got, ids, config.vocab_rows);
  return Status::Ok();
}

// The options in effect, as a command that repeats the run.
std::string CommandLine(const BenchArgs& a) {
  auto list = [](const std::vector<int64_t>& v) {
    std::string s;
    for (int64_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
    return s;
  };
  std::string c = "mamba2 bench";
  if (!a.dir.empty()) c += " -m " + a.dir;
  if (!a.shape.empty() || a.dir.empty()) c += " --shape " + (a.shape.empty() ? std::string("130m") : a.shape);
  if (!a.dtype.empty()) c += " --dtype " + a.dtype;
  if (!a.compute.empty()) c += " --compute " + a.compute;
  c += " --prefill " + list(a.prefill) + " --decode " + std::to_string(a.decode) + " --context " + list(a.contexts);
  if (a.threads > 0) c += " --threads " + std::to_string(a.threads);
  if (a.reps != 3) c += " --reps " + std::to_string(a.reps);
  if (a.backend != "cpu") c += " --backend " + a.backend;
  return c;
}

int RunBench(BenchArgs a) {
  using namespace mamba2::bench;
  if (!a.dir.empty() && !a.shape.empty()) return Fail(Status::Error("give either -m DIR or --shape, not both"));
  if (a.dir.empty() && a.shape.empty()) a.shape = "130m";
  const int threads = a.threads > 0 ? a.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  BenchReport rep;
  rep.machine = DescribeMachine();
  rep.command = a.command;
  rep.threads = threads;

  // ---- the model's weights and config --------------------------------------------------
  std::shared_ptr<const WeightStore> store;
  ModelConfig config;
  DType weights = DType::F32;
  if (!a.shape.empty()) {
    if (!a.dtype.empty()) {
      auto d = ParseWeightDType(a.dtype);
      if (!d.ok()) return Fail(d.status());
      weights = *d;
    }
    auto cfg = CheckpointShapeConfig(a.shape);
    if (!cfg.ok()) return Fail(cfg.status());
    config = *cfg;
    if (a.backend != "cpu") {
      // A missing device is reported before the random weights take their time (2.7B: ~30 s here).
      auto probe = ChooseBackend(a, weights);
      if (!probe.ok()) return Fail(probe.status());
    }
    RandomWeightsOptions ro;
    ro.dtype = weights;
    ro.seed = a.seed;
    ro.n_threads = threads;
    auto set = MakeRandomWeights(config, ro);
    if (!set.ok()) return Fail(set.status());
    if (!a.write_model.empty()) {
      const std::string json = CheckpointShapeConfigJson(a.shape).value();
      if (Status st = WriteModelDir(a.write_model, json, *set); !st.ok()) return Fail(st);
      std::printf("wrote mamba2-%s random weights (%s, seed %llu) to %s\n", a.shape.c_str(), DTypeName(weights),
                  (unsigned long long)a.seed, a.write_model.c_str());
      return 0;
    }
    rep.weight_bytes = UniqueTensorBytes(*set);
    store = std::make_shared<const WeightStore>(
        WeightStore::FromTensorSet(std::move(set).value(), "random mamba2-" + a.shape));
    rep.shape = a.shape;
    rep.model = "mamba2-" + a.shape + " shape, random weights (seed " + std::to_string(a.seed) + ")";
  } else {
    if (!a.write_model.empty()) return Fail(Status::Error("--write-model needs --shape"));
    auto cfg = LoadConfig(a.dir);
    if (!cfg.ok()) return Fail(cfg.status());
    config = *cfg;
    auto ws = WeightStore::OpenDir(a.dir);
    if (!ws.ok()) return Fail(ws.status());
    std::set<const void*> seen;
    for (const StoredTensor& t : ws->tensors())
      if (seen.insert(t.view.data).second) rep.weight_bytes += t.view.nbytes();
    for (const StoredTensor& t : ws->tensors())
      if (t.name.find("in_proj.weight") != std::string::npos) weights = t.view.dtype;
    if (!a.dtype.empty() && a.dtype != DTypeName(weights))
      return Fail(Status::Error("--dtype " + a.dtype + " with -m: the model is stored in " + DTypeName(weights) +
                                "; --dtype only chooses the weights of --shape"));
    store = std::make_shared<const WeightStore>(std::move(ws).value());
    rep.shape = "custom";
    for (const std::string& s : CheckpointShapeNames()) {
      auto c = CheckpointShapeConfig(s);
      if (c.ok() && c->d_model == config.d_model && c->n_layer == config.n_layer) rep.shape = s;
    }
    rep.model = a.dir;
  }
  rep.config = config;
  rep.weight_dtype = DTypeName(weights);

  auto choice = ChooseBackend(a, weights);
  if (!choice.ok()) return Fail(choice.status());
  rep.backend = choice->backend->name();
  rep.host_backend = choice->host;
  rep.compute = choice->compute;
  // What the matmuls read: the compute dtype when it is 16-bit, else the stored dtype on the
  // cpu (which reads weights as stored) and fp32 on cuda (which converts them once).
  const DType compute = rep.compute == "bf16" ? DType::BF16 : rep.compute == "f16" ? DType::F16 : DType::F32;
  const DType matrix = compute != DType::F32 ? compute : choice->host ? weights : DType::F32;
  rep.matrix_dtype = DTypeName(matrix);
  rep.decode_bytes = CountDecodeBytes(config, matrix);

  // ---- the machine's limits, before the model's first pass ---------------------------------
  if (!a.no_limits) {
    std::fprintf(stderr, "measuring machine limits...\n");
    if (choice->host) {
      // 2048 x 4096 x 2048: large enough for the library's best blocking, ~0.3 s on two cores.
      const int64_t m = 2048, n = 4096, k = 2048;
      rep.gemm_problem = "2048 x 4096 x 2048";
      rep.host_probe_bytes = kHostProbeBytes;
      rep.read_bandwidth_start_bytes_per_s = MeasureReadBandwidth(threads, kHostProbeBytes, 7);
      rep.gemm_library_flops_per_s = MeasureCpuGemmPeak(compute, threads, m, n, k, 3);
      rep.gemm_engine_flops_per_s = MeasureBackendMatMul(choice->make, compute, m, n, k, 3);
    } else {
      rep.gemm_problem = "8192 x 8192 x 8192";
      rep.gemm_engine_flops_per_s = MeasureBackendMatMul(choice->make, compute, 8192, 8192, 8192, 5);
#if defined(MAMBA2_HAVE_CUDA)
      // 4 GiB: far beyond the 50-60 MB L2 of a Hopper card.
      auto bw = MeasureCudaReadBandwidth(choice->cuda_device, size_t(4) << 30, 10);
      if (!bw.ok()) return Fail(bw.status());
      rep.read_bandwidth_start_bytes_per_s = bw->read_bytes_per_s;
      rep.nominal_bandwidth_bytes_per_s = bw->nominal_bytes_per_s;
      rep.nominal_bf16_flops_per_s = bw->nominal_bf16_flops_per_s;
#endif
    }
  }

  // ---- the model -----------------------------------------------------------------------------
  ModelOptions mo;
  mo.max_slots = int32_t(std::max<size_t>(1, a.contexts.size()));  // one state per context
  auto model = Mamba2Model::FromStore(config, store, choice->backend.get(), mo);
  if (!model.ok()) return Fail(model.status());
  rep.chunk_size = (*model)->chunk_size();
  ModelBenchOptions bo;
  bo.prefill_lengths = a.prefill;
  bo.decode_tokens = a.decode;
  bo.contexts = a.contexts;
  bo.context_decode_tokens = a.context_decode;
  bo.reps = a.reps;
  bo.seed = a.seed;
  bo.pass_rows = mo.max_rows;
  bo.progress = [](const std::string& line) { std::fprintf(stderr, "  %s\n", line.c_str()); };
  if (choice->host && !a.no_limits)
    bo.probe_bandwidth = [threads] { return MeasureReadBandwidth(threads, kHostProbeBytes, 5); };
#if defined(MAMBA2_HAVE_CUDA)
  if (!choice->host && !a.no_limits)
    bo.probe_bandwidth = [dev = choice->cuda_device] {
      auto bw = MeasureCudaReadBandwidth(dev, size_t(2) << 30, 3);
      return bw.ok() ? bw->read_bytes_per_s : 0.0;
    };
#endif
  auto runs = RunModelBench(**model, bo);
  if (!runs.ok()) return Fail(runs.status());
  rep.runs = std::move(runs).value();
  rep.read_bandwidth_bytes_per_s = rep.runs.decode_rep_bandwidth.empty() ? rep.read_bandwidth_start_bytes_per_s
                                                                         : bench::Median(rep.runs.decode_rep_bandwidth);
  rep.load_1min_end = LoadAverage1Min();
  rep.peak_rss_bytes = PeakRssBytes();

  if (a.accuracy > 0) {
    if (Status st = Accuracy(config, store, choice->backend.get(), threads, a.accuracy, a.seed, &rep); !st.ok())
      return Fail(st);
  }
  PrintTable(stdout, rep);
  if (a.profile) {
    if (Status st = Profile(config, store, choice->backend.get(), a); !st.ok()) return Fail(st);
  }
  if (!a.json.empty()) {
    if (Status st = WriteFileAtomic(a.json, ToJson(rep) + "\n"); !st.ok()) return Fail(st);
  }
  return 0;
}

}  // namespace

Runner AddBench(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench", "Measure prefill and decode speed against the machine's GEMM peak and memory bandwidth");
  auto a = std::make_shared<BenchArgs>();
  cmd->add_option("-m,--model", a->dir, "model folder (default: --shape 130m)");
  cmd->add_option("--shape", a->shape, "random weights with the shapes of mamba2-130m|370m|780m|1.3b|2.7b");
  cmd->add_option("--dtype", a->dtype, "weight dtype of --shape: f32 (default), bf16, f16");
  cmd->add_option("--compute", a->compute,
                  "how prefill matmuls multiply: f32 or bf16 (default: bf16 for bf16 weights, else f32); "
                  "on cuda also tf32 and f16");
  cmd->add_option("--prefill", a->prefill, "prompt lengths to time (0: none)")->delimiter(',')->capture_default_str();
  cmd->add_option("--decode", a->decode, "tokens per decode repetition (0: none)")->capture_default_str();
  cmd->add_option("--context", a->contexts, "context lengths for decode vs recompute (0: none)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--context-decode", a->context_decode, "tokens decoded after each context, per repetition")
      ->capture_default_str();
  cmd->add_option("--reps", a->reps, "timed repetitions after a warm-up (medians reported)")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (default: all cores)");
  cmd->add_option("--backend", a->backend, "cpu | cuda")->capture_default_str();
  cmd->add_option("--json", a->json, "also write every figure as one JSON object to FILE");
  cmd->add_option("--seed", a->seed, "seed of the random weights and prompts")->capture_default_str();
  cmd->add_option("--write-model", a->write_model,
                  "write the --shape random model (config.json + model.safetensors) to DIR and exit");
  cmd->add_flag("--no-limits", a->no_limits, "skip measuring the GEMM peak and read bandwidth");
  cmd->add_option("--accuracy", a->accuracy,
                  "also compare the logits of N random tokens with an fp32-mode cpu run of the same weights");
  cmd->add_flag("--profile", a->profile, "also print where a prefill and decode steps spend their time, op by op");
  return [a]() {
    BenchArgs args = *a;
    args.command = CommandLine(args);
    return RunBench(args);
  };
}

}  // namespace mamba2::app
