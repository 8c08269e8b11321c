#include "lib/report.h"

#include <nlohmann/json.hpp>

namespace mamba2::bench {
namespace {

// The headline prefill figure: the longest prompt measured.
const PrefillRun* Headline(const BenchReport& r) {
  const PrefillRun* best = nullptr;
  for (const PrefillRun& p : r.runs.prefill)
    if (!best || p.tokens > best->tokens) best = &p;
  return best;
}

double Frac(double a, double b) { return b > 0 ? a / b : 0.0; }

// Whether a host backend's decode reads few enough bytes per token that the CPU's last-level
// cache may hold much of them between steps (a VM's L3 can be hundreds of MB).
bool DecodeMayHitCache(const BenchReport& r) {
  return r.host_backend && r.runs.decode_s_per_token > 0 && r.machine.last_level_cache_bytes > 0 &&
         r.decode_bytes.total() < 2.0 * double(r.machine.last_level_cache_bytes);
}

// A limit figure, or null when it was not measured (0).
nlohmann::json MeasuredOrNull(double v) { return v > 0 ? nlohmann::json(v) : nlohmann::json(); }

}  // namespace

void PrintTable(std::FILE* f, const BenchReport& r) {
  std::fprintf(f, "\nmamba2 bench: %s | weights %s, prefill compute %s, decode reads %s | backend %s, %d threads\n",
               r.model.c_str(), r.weight_dtype.c_str(), r.compute.c_str(), r.matrix_dtype.c_str(), r.backend.c_str(),
               r.threads);
  std::fprintf(f, "CPU %s (%d cpus", r.machine.cpu_model.c_str(), r.machine.n_cpus);
  if (r.machine.last_level_cache_bytes > 0)
    std::fprintf(f, ", last-level cache %.0f MiB", double(r.machine.last_level_cache_bytes) / double(1 << 20));
  std::fprintf(f, ") | %s | load %.2f at start, %.2f at end\n", r.machine.date_utc.c_str(), r.machine.load_1min,
               r.load_1min_end);
  std::fprintf(f, "model: d_model %lld, n_layer %lld, vocab %lld, chunk %lld, %.1f MB of weights\n\n",
               (long long)r.config.d_model, (long long)r.config.n_layer, (long long)r.config.vocab_rows,
               (long long)r.chunk_size, double(r.weight_bytes) / 1e6);

  std::fprintf(f, "machine limits (measured now)\n");
  if (r.gemm_peak() > 0)
    std::fprintf(f, "  GEMM peak, %-4s             %8.1f GFLOP/s  (library %.1f, engine MatMul %.1f; %s)\n",
                 r.compute.c_str(), r.gemm_peak() / 1e9, r.gemm_library_flops_per_s / 1e9,
                 r.gemm_engine_flops_per_s / 1e9, r.gemm_problem.c_str());
  else
    std::fprintf(f, "  GEMM peak                    not measured (--no-limits)\n");
  if (r.read_bandwidth_bytes_per_s > 0)
    std::fprintf(f, "  memory read bandwidth        %8.2f GB/s  (at start %.2f; median of %zu samples taken before the decode repetitions)\n\n",
                 r.read_bandwidth_bytes_per_s / 1e9, r.read_bandwidth_start_bytes_per_s / 1e9,
                 r.runs.decode_rep_bandwidth.size());
  else
    std::fprintf(f, "  memory read bandwidth        not measured (--no-limits)\n\n");
  if (r.nominal_bandwidth_bytes_per_s > 0)
    std::fprintf(f, "  nominal memory bandwidth     %8.2f GB/s  (memory clock x bus width; measured read is %.1f%% of it)\n\n",
                 r.nominal_bandwidth_bytes_per_s / 1e9,
                 100.0 * Frac(r.read_bandwidth_bytes_per_s, r.nominal_bandwidth_bytes_per_s));
  if (r.nominal_bf16_flops_per_s > 0)
    std::fprintf(f, "  nominal dense bf16 peak      %8.1f TFLOP/s  (SMs x max clock x FLOP/clk/SM; MFU below is against it)\n\n",
                 r.nominal_bf16_flops_per_s / 1e12);

  if (!r.runs.prefill.empty()) {
    std::fprintf(f, "prefill (batch 1, last logits)   tokens    ms        tok/s    GFLOP/s  of GEMM peak\n");
    for (const PrefillRun& p : r.runs.prefill) {
      const double flops = CountPrefillFlops(r.config, p.tokens, r.chunk_size).total();
      std::fprintf(f, "                                 %6lld  %8.1f  %9.1f  %8.1f  %6.1f%%", (long long)p.tokens,
                   p.seconds * 1e3, double(p.tokens) / p.seconds, flops / p.seconds / 1e9,
                   100.0 * Frac(flops / p.seconds, r.gemm_peak()));
      if (r.nominal_bf16_flops_per_s > 0)
        std::fprintf(f, "  (MFU %.1f%%)", 100.0 * Frac(flops / p.seconds, r.nominal_bf16_flops_per_s));
      std::fprintf(f, "\n");
    }
    std::fprintf(f, "\n");
  }
  if (r.runs.decode_s_per_token > 0) {
    const double bps = r.decode_bytes.total() / r.runs.decode_s_per_token;
    std::fprintf(f, "decode (batch 1)   ms/token   tok/s    MB read/token (weights + state)   GB/s   of read bw\n");
    std::fprintf(f, "logits to host     %8.3f  %7.2f    %7.1f (%.1f + %.1f)             %6.2f   %5.1f%%\n",
                 r.runs.decode_s_per_token * 1e3, 1.0 / r.runs.decode_s_per_token, r.decode_bytes.total() / 1e6,
                 r.decode_bytes.weights / 1e6, r.decode_bytes.state / 1e6, bps / 1e9,
                 100.0 * Frac(bps, r.read_bandwidth_bytes_per_s));
    if (r.runs.picked_decode_s_per_token > 0) {
      const double pbps = r.decode_bytes.total() / r.runs.picked_decode_s_per_token;
      std::fprintf(f, "picked on backend  %8.3f  %7.2f    %7.1f                             %6.2f   %5.1f%%\n",
                   r.runs.picked_decode_s_per_token * 1e3, 1.0 / r.runs.picked_decode_s_per_token,
                   r.decode_bytes.total() / 1e6, pbps / 1e9, 100.0 * Frac(pbps, r.read_bandwidth_bytes_per_s));
    }
    if (DecodeMayHitCache(r))
      std::fprintf(f,
                   "note: the %.0f MB read per token are within twice the %.0f MiB last-level cache: part of each\n"
                   "step may come from cache, so decode can read faster than the probe; a larger --shape gives a\n"
                   "memory-bound figure\n",
                   r.decode_bytes.total() / 1e6, double(r.machine.last_level_cache_bytes) / double(1 << 20));
    std::fprintf(f, "\n");
  }
  if (!r.runs.contexts.empty()) {
    const double base = r.runs.contexts.front().decode_s_per_token;
    std::fprintf(f, "context   decode ms/token  vs first   recompute s   cached speedup\n");
    for (const ContextRun& c : r.runs.contexts)
      std::fprintf(f, "%7lld   %14.3f  %+7.1f%%   %11.3f   %13.1fx\n", (long long)c.context, c.decode_s_per_token * 1e3,
                   100.0 * (Frac(c.decode_s_per_token, base) - 1.0), c.recompute_s,
                   Frac(c.recompute_s, c.decode_s_per_token));
    std::fprintf(f, "\n");
  }
  if (r.accuracy_tokens > 0)
    std::fprintf(f, "accuracy vs fp32 mode, %lld random tokens: logits rel L2 %.3g; perplexity %.4f vs %.4f (%+.4f%%)\n\n",
                 (long long)r.accuracy_tokens, r.logits_rel_l2_vs_fp32, r.ppl_compute, r.ppl_fp32,
                 100.0 * (Frac(r.ppl_compute, r.ppl_fp32) - 1.0));
  std::fprintf(f, "peak RSS %.1f MB (%.2fx the weights", double(r.peak_rss_bytes) / 1e6,
               Frac(double(r.peak_rss_bytes), double(r.weight_bytes)));
  if (r.host_probe_bytes > 0)
    std::fprintf(f, "; includes the bandwidth probe's %.0f MiB buffer: --no-limits leaves it out",
                 double(r.host_probe_bytes) / double(1 << 20));
  std::fprintf(f, "); bench took %.1f s\n", r.runs.seconds_total);
}

std::string ToJson(const BenchReport& r) {
  using nlohmann::json;
  json j;
  j["command"] = r.command;
  j["date"] = r.machine.date_utc;
  j["cpu_model"] = r.machine.cpu_model;
  j["n_cpus"] = r.machine.n_cpus;
  j["last_level_cache_bytes"] = r.machine.last_level_cache_bytes;
  j["decode_may_hit_cache"] = DecodeMayHitCache(r);
  j["load_1min_start"] = r.machine.load_1min;
  j["load_1min_end"] = r.load_1min_end;
  j["backend"] = r.backend;
  j["model"] = r.model;
  j["shape"] = r.shape;
  j["dtype"] = r.weight_dtype;
  j["compute"] = r.compute;
  j["decode_matrix_dtype"] = r.matrix_dtype;
  j["threads"] = r.threads;
  j["d_model"] = r.config.d_model;
  j["n_layer"] = r.config.n_layer;
  j["vocab_rows"] = r.config.vocab_rows;
  j["chunk_size"] = r.chunk_size;
  j["weight_bytes"] = r.weight_bytes;
  j["peak_rss_bytes"] = r.peak_rss_bytes;

  j["gemm_peak_flops_per_s"] = r.gemm_peak();
  j["gemm_library_flops_per_s"] = r.gemm_library_flops_per_s;
  j["gemm_engine_matmul_flops_per_s"] = r.gemm_engine_flops_per_s;
  j["gemm_problem"] = r.gemm_problem;
  j["read_bandwidth_bytes_per_s"] = MeasuredOrNull(r.read_bandwidth_bytes_per_s);
  j["nominal_bf16_flops_per_s"] = MeasuredOrNull(r.nominal_bf16_flops_per_s);
  j["nominal_bandwidth_bytes_per_s"] = MeasuredOrNull(r.nominal_bandwidth_bytes_per_s);
  j["read_bandwidth_start_bytes_per_s"] = MeasuredOrNull(r.read_bandwidth_start_bytes_per_s);
  j["read_bandwidth_samples_at_decode"] = r.runs.decode_rep_bandwidth;

  json by_tokens = json::object();
  for (const PrefillRun& p : r.runs.prefill) {
    const PrefillFlops fl = CountPrefillFlops(r.config, p.tokens, r.chunk_size);
    by_tokens[std::to_string(p.tokens)] = {
        {"seconds", p.seconds},
        {"all_seconds", p.all_seconds},
        {"tokens_per_s", double(p.tokens) / p.seconds},
        {"flops", fl.total()},
        {"flops_projections", fl.projections},
        {"flops_ssd", fl.ssd},
        {"flops_lm_head", fl.lm_head},
        {"flops_per_s", fl.total() / p.seconds},
        {"fraction_of_gemm_peak", Frac(fl.total() / p.seconds, r.gemm_peak())},
    };
  }
  j["prefill_by_tokens"] = by_tokens;
  if (const PrefillRun* h = Headline(r)) {
    const double flops = CountPrefillFlops(r.config, h->tokens, r.chunk_size).total();
    j["prefill_tokens"] = h->tokens;
    j["prefill_tokens_per_s"] = double(h->tokens) / h->seconds;
    j["prefill_flops_per_s"] = flops / h->seconds;
    j["prefill_fraction_of_gemm_peak"] = Frac(flops / h->seconds, r.gemm_peak());
    if (r.nominal_bf16_flops_per_s > 0)
      j["prefill_mfu_of_nominal_bf16_peak"] = Frac(flops / h->seconds, r.nominal_bf16_flops_per_s);
  }
  if (r.runs.decode_s_per_token > 0) {
    j["decode_tokens_per_s"] = 1.0 / r.runs.decode_s_per_token;
    j["decode_s_per_token"] = r.runs.decode_s_per_token;
    j["decode_rep_s_per_token"] = r.runs.decode_rep_s_per_token;
    j["decode_bytes_per_token"] = r.decode_bytes.total();
    j["decode_weight_bytes_per_token"] = r.decode_bytes.weights;
    j["decode_state_bytes_per_token"] = r.decode_bytes.state;
    j["decode_fraction_of_read_bandwidth"] =
        Frac(r.decode_bytes.total() / r.runs.decode_s_per_token, r.read_bandwidth_bytes_per_s);
    // Each repetition against the bandwidth sampled just before it.
    std::vector<double> per_rep;
    for (size_t i = 0; i < r.runs.decode_rep_s_per_token.size() && i < r.runs.decode_rep_bandwidth.size(); ++i)
      per_rep.push_back(Frac(r.decode_bytes.total() / r.runs.decode_rep_s_per_token[i], r.runs.decode_rep_bandwidth[i]));
    j["decode_fraction_of_read_bandwidth_by_rep"] = per_rep;
    if (r.runs.picked_decode_s_per_token > 0) {
      j["decode_picked_tokens_per_s"] = 1.0 / r.runs.picked_decode_s_per_token;
      j["decode_picked_s_per_token"] = r.runs.picked_decode_s_per_token;
      j["decode_picked_rep_s_per_token"] = r.runs.picked_decode_rep_s_per_token;
      j["decode_picked_fraction_of_read_bandwidth"] =
          Frac(r.decode_bytes.total() / r.runs.picked_decode_s_per_token, r.read_bandwidth_bytes_per_s);
    }
  }
  json dec = json::object(), rec = json::object(), speed = json::object();
  for (const ContextRun& c : r.runs.contexts) {
    dec[std::to_string(c.context)] = c.decode_s_per_token;
    rec[std::to_string(c.context)] = c.recompute_s;
    speed[std::to_string(c.context)] = Frac(c.recompute_s, c.decode_s_per_token);
  }
  j["decode_s_per_token_by_context"] = dec;
  j["recompute_s_by_context"] = rec;
  j["cached_speedup_by_context"] = speed;
  j["bench_seconds"] = r.runs.seconds_total;
  if (r.accuracy_tokens > 0) {
    j["accuracy_tokens"] = r.accuracy_tokens;
    j["logits_rel_l2_vs_fp32"] = r.logits_rel_l2_vs_fp32;
    j["ppl_fp32"] = r.ppl_fp32;
    j["ppl_compute"] = r.ppl_compute;
  }
  return j.dump(2);
}

}  // namespace mamba2::bench
