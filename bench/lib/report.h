// One bench run's figures next to the machine limits: the printed table and the JSON object.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "lib/machine.h"
#include "lib/model_bench.h"
#include "lib/model_cost.h"
#include "model/config.h"

namespace mamba2::bench {

struct BenchReport {
  MachineInfo machine;
  double load_1min_end = 0;
  std::string command;       // the command line, for the record
  std::string backend;       // backend name as it reports itself
  std::string model;         // "shape 130m (random weights, seed 1)" or the model folder
  std::string shape;         // "130m" etc., or "custom" for a folder whose shape is none of them
  std::string weight_dtype;  // as stored
  std::string compute;       // "f32" or "bf16": how prefill matmuls multiply
  std::string matrix_dtype;  // what the decode matmuls read
  int threads = 0;
  ModelConfig config;
  int64_t chunk_size = 0;
  size_t weight_bytes = 0;  // distinct stored bytes
  size_t peak_rss_bytes = 0;
  size_t host_probe_bytes = 0;  // the host bandwidth probe's buffer, part of peak RSS; 0: not run
  bool host_backend = true;     // the backend computes in host memory (its decode may hit the CPU's cache)

  double gemm_library_flops_per_s = 0;  // the library's GEMM with its own threading (cpu only)
  double gemm_engine_flops_per_s = 0;   // the backend's MatMul op on the same problem
  std::string gemm_problem;             // "m x n x k"
  double read_bandwidth_start_bytes_per_s = 0;  // at the start of the run; 0: not measured
  // What decode is compared with: the median of the samples taken right before each decode
  // repetition (runs.decode_rep_bandwidth), or the start value when there are none.
  double read_bandwidth_bytes_per_s = 0;
  double nominal_bandwidth_bytes_per_s = 0;  // the device's datasheet figure (cuda), 0: unknown
  double nominal_bf16_flops_per_s = 0;       // dense bf16 tensor peak (cuda, known archs), 0: unknown

  // --accuracy: logits of accuracy_tokens random tokens against an fp32-mode cpu run.
  int64_t accuracy_tokens = 0;
  double logits_rel_l2_vs_fp32 = 0, ppl_fp32 = 0, ppl_compute = 0;

  ModelBenchRuns runs;
  DecodeBytes decode_bytes;

  double gemm_peak() const {
    return gemm_library_flops_per_s > gemm_engine_flops_per_s ? gemm_library_flops_per_s : gemm_engine_flops_per_s;
  }
};

void PrintTable(std::FILE* f, const BenchReport& r);
std::string ToJson(const BenchReport& r);

}  // namespace mamba2::bench
