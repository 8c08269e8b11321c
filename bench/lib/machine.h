// The machine's limits, measured in the same run as the model figures they are compared with:
// the GEMM peak of the matmul library the engine uses, and memory read bandwidth.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "core/dtype.h"

namespace mamba2::bench {

struct MachineInfo {
  std::string cpu_model;  // /proc/cpuinfo "model name"
  int n_cpus = 0;
  double load_1min = 0.0;  // /proc/loadavg: other work sharing the cores while we measure
  std::string date_utc;    // ISO 8601
  size_t last_level_cache_bytes = 0;  // cpu0's largest data/unified cache; 0 if unknown
};
MachineInfo DescribeMachine();

// A sysfs cache size ("307200K", "32M", "512") in bytes; 0 if it is not one.
size_t ParseCacheSize(const std::string& text);
// The largest data or unified cache listed under a sysfs cache folder (index*/type, index*/size);
// 0 if there is none. A VM's L3 can hold a small model's weights, and decode then reads faster
// than the memory-bandwidth probe, which the report points out.
size_t LastLevelCacheBytes(const std::string& cache_dir = "/sys/devices/system/cpu/cpu0/cache");
double LoadAverage1Min();

// Best of `reps` passes of a streaming read of `bytes` (far beyond the last-level cache) by
// n_threads threads, each summing its contiguous part with wide vector loads.
double MeasureReadBandwidth(int n_threads, size_t bytes, int reps);
constexpr size_t kHostProbeBytes = size_t(1) << 29;  // what `mamba2 bench` reads: 512 MiB

// FLOP/s (2 per multiply-add) of the library GEMM the cpu backend calls, on a large problem
// (m x k times k x n): oneDNN sgemm for f32, oneDNN's bf16 matmul (bf16 x bf16 -> f32) for
// bf16, each with the library's own threading over n_threads. Best of `reps`. 0 if the build
// has no such library path.
double MeasureCpuGemmPeak(DType compute, int n_threads, int64_t m, int64_t n, int64_t k, int reps);

// FLOP/s of a backend's own MatMul op on x [m, k] times a [n, k] weight in `weight_dtype`
// (prepared by the backend like a model weight), on a fresh backend from make_backend.
// Best of `reps`; 0 if make_backend gives none.
double MeasureBackendMatMul(const std::function<std::unique_ptr<Backend>()>& make_backend, DType weight_dtype,
                            int64_t m, int64_t n, int64_t k, int reps);

// Process memory from /proc/self/status (VmHWM, VmRSS), bytes.
size_t PeakRssBytes();
size_t CurrentRssBytes();

}  // namespace mamba2::bench
