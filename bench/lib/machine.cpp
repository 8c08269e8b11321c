#include "lib/machine.h"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/host_buffer.h"
#include "core/thread_pool.h"
#include "lib/stats.h"

#if defined(MAMBA2_HAVE_DNNL)
#include <omp.h>

#include "oneapi/dnnl/dnnl.h"
#endif

namespace mamba2::bench {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

void* AllocAligned(size_t bytes) {
  void* p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
  CHECK_MSG(p != nullptr, "out of memory allocating a benchmark buffer");
  return p;
}

// Sums a contiguous range with 8 independent accumulators; the compiler vectorises it with the
// widest loads the clone supports. The sum is returned so the reads cannot be dropped.
__attribute__((target_clones("avx512f", "avx2", "default"))) float SumRange(const float* p, size_t n) {
  float acc[64] = {};
  size_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int j = 0; j < 64; ++j) acc[j] += p[i + j];
  float s = 0.0f;
  for (; i < n; ++i) s += p[i];
  for (int j = 0; j < 64; ++j) s += acc[j];
  return s;
}

size_t ReadProcStatusKb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t klen = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, klen, key) == 0 && line.size() > klen && line[klen] == ':')
      return size_t(std::strtoull(line.c_str() + klen + 1, nullptr, 10));
  return 0;
}

}  // namespace

double LoadAverage1Min() {
  std::ifstream f("/proc/loadavg");
  double v = 0.0;
  f >> v;
  return v;
}

size_t ParseCacheSize(const std::string& text) {
  size_t i = 0, value = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') value = value * 10 + size_t(text[i++] - '0');
  if (i == 0) return 0;
  size_t scale = 1;
  if (i < text.size() && (text[i] == 'K' || text[i] == 'M' || text[i] == 'G')) {
    scale = text[i] == 'K' ? size_t(1) << 10 : text[i] == 'M' ? size_t(1) << 20 : size_t(1) << 30;
    ++i;
  }
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  return i == text.size() ? value * scale : 0;
}

size_t LastLevelCacheBytes(const std::string& cache_dir) {
  size_t best = 0;
  for (int index = 0; index < 16; ++index) {
    const std::string dir = cache_dir + "/index" + std::to_string(index) + "/";
    std::ifstream type_file(dir + "type"), size_file(dir + "size");
    std::string type, size;
    if (!(type_file >> type) || !(size_file >> size)) continue;
    if (type == "Instruction") continue;
    best = std::max(best, ParseCacheSize(size));
  }
  return best;
}

MachineInfo DescribeMachine() {
  MachineInfo m;
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      if (m.cpu_model.empty()) {
        const size_t colon = line.find(':');
        if (colon != std::string::npos) m.cpu_model = line.substr(line.find_first_not_of(" \t", colon + 1));
      }
      ++m.n_cpus;
    }
  }
  if (m.n_cpus == 0) m.n_cpus = int(std::thread::hardware_concurrency());
  m.load_1min = LoadAverage1Min();
  m.last_level_cache_bytes = LastLevelCacheBytes();
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  m.date_utc = buf;
  return m;
}

double MeasureReadBandwidth(int n_threads, size_t bytes, int reps) {
  const size_t n = bytes / sizeof(float);
  // The kind of memory the weights live in (huge pages where the kernel gives them), so that
  // decode is compared with a read of the same kind.
  Result<HostBuffer> buf = HostBuffer::Allocate(n * sizeof(float));
  CHECK_MSG(buf.ok(), "out of memory allocating the bandwidth probe's buffer");
  ThreadPool pool(n_threads);
  float* data = reinterpret_cast<float*>(buf->data());
  // First touch from the threads that will read, so pages are spread as they will be used.
  pool.ParallelFor(int64_t(n), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) data[i] = float(i & 1023) * 1e-3f;
  });
  std::vector<float> sums(size_t(pool.n_threads()) * 16);
  std::vector<double> rates;
  volatile float sink = 0.0f;
  for (int r = 0; r < reps + 1; ++r) {
    const double t0 = Now();
    pool.ParallelFor(int64_t(n), [&](int64_t b, int64_t e) {
      // Pieces are contiguous and in order; the piece index is b's position.
      const size_t piece = size_t(b * pool.n_threads() / int64_t(n));
      sums[piece * 16] = SumRange(data + b, size_t(e - b));
    });
    const double dt = Now() - t0;
    for (size_t i = 0; i < sums.size(); i += 16) sink = sink + sums[i];
    if (r > 0) rates.push_back(double(n * sizeof(float)) / dt);  // the first pass warms up
  }
  // The limit is the best pass: slower ones saw other work on the shared memory system.
  return rates.empty() ? 0.0 : *std::max_element(rates.begin(), rates.end());
}

double MeasureCpuGemmPeak(DType compute, int n_threads, int64_t m, int64_t n, int64_t k, int reps) {
#if defined(MAMBA2_HAVE_DNNL)
  if (n_threads <= 0) n_threads = int(std::thread::hardware_concurrency());
  const bool bf16 = compute == DType::BF16;
  const size_t es = bf16 ? 2 : 4;
  std::unique_ptr<void, FreeDeleter> a(AllocAligned(size_t(m * k) * es)), b(AllocAligned(size_t(n * k) * es));
  std::unique_ptr<void, FreeDeleter> c(AllocAligned(size_t(m * n) * 4));
  // Small values of both signs: no denormals, no overflow.
  for (int64_t i = 0; i < m * k; ++i) {
    const float v = float((i * 7) % 13 - 6) * 0.01f;
    if (bf16) static_cast<uint16_t*>(a.get())[i] = F32ToBF16(v);
    else static_cast<float*>(a.get())[i] = v;
  }
  for (int64_t i = 0; i < n * k; ++i) {
    const float v = float((i * 5) % 11 - 5) * 0.01f;
    if (bf16) static_cast<uint16_t*>(b.get())[i] = F32ToBF16(v);
    else static_cast<float*>(b.get())[i] = v;
  }
  // The library's own OpenMP team of n_threads on this thread for the probe, then back to the
  // setting the cpu backend expects (one OpenMP thread per pool thread).
  const int saved = omp_get_max_threads();
  omp_set_num_threads(n_threads);
  double best = 0.0;
  if (!bf16) {
    for (int r = 0; r < reps + 1; ++r) {
      const double t0 = Now();
      const dnnl_status_t st = dnnl_sgemm('N', 'T', m, n, k, 1.0f, static_cast<const float*>(a.get()), k,
                                          static_cast<const float*>(b.get()), k, 0.0f,
                                          static_cast<float*>(c.get()), n);
      const double dt = Now() - t0;
      CHECK_MSG(st == dnnl_success, "dnnl_sgemm failed");
      if (r > 0) best = std::max(best, 2.0 * double(m) * double(n) * double(k) / dt);
    }
  } else {
    dnnl_engine_t engine = nullptr;
    dnnl_stream_t stream = nullptr;
    dnnl_primitive_desc_t pd = nullptr;
    dnnl_primitive_t prim = nullptr;
    dnnl_memory_t ma = nullptr, mb = nullptr, mc = nullptr;
    bool ok = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success &&
              dnnl_stream_create(&stream, engine, dnnl_stream_default_flags) == dnnl_success;
    dnnl_memory_desc_t da, db, dc;
    const dnnl_dims_t dims_a = {m, k}, dims_b = {k, n}, dims_c = {m, n};
    ok = ok && dnnl_memory_desc_init_by_tag(&da, 2, dims_a, dnnl_bf16, dnnl_ab) == dnnl_success &&
         dnnl_memory_desc_init_by_tag(&db, 2, dims_b, dnnl_bf16, dnnl_ba) == dnnl_success &&
         dnnl_memory_desc_init_by_tag(&dc, 2, dims_c, dnnl_f32, dnnl_ab) == dnnl_success;
    dnnl_matmul_desc_t md;
    ok = ok && dnnl_matmul_desc_init(&md, &da, &db, nullptr, &dc) == dnnl_success &&
         dnnl_primitive_desc_create(&pd, &md, nullptr, engine, nullptr) == dnnl_success &&
         dnnl_primitive_create(&prim, pd) == dnnl_success &&
         dnnl_memory_create(&ma, &da, engine, a.get()) == dnnl_success &&
         dnnl_memory_create(&mb, &db, engine, b.get()) == dnnl_success &&
         dnnl_memory_create(&mc, &dc, engine, c.get()) == dnnl_success;
    for (int r = 0; ok && r < reps + 1; ++r) {
      const dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}};
      const double t0 = Now();
      ok = dnnl_primitive_execute(prim, stream, 3, args) == dnnl_success && dnnl_stream_wait(stream) == dnnl_success;
      const double dt = Now() - t0;
      if (ok && r > 0) best = std::max(best, 2.0 * double(m) * double(n) * double(k) / dt);
    }
    for (dnnl_memory_t mem : {ma, mb, mc})
      if (mem) dnnl_memory_destroy(mem);
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (stream) dnnl_stream_destroy(stream);
    if (engine) dnnl_engine_destroy(engine);
    if (!ok) best = 0.0;
  }
  omp_set_num_threads(saved);
  return best;
#else
  (void)compute, (void)n_threads, (void)m, (void)n, (void)k, (void)reps;
  return 0.0;
#endif
}

double MeasureBackendMatMul(const std::function<std::unique_ptr<Backend>()>& make_backend, DType weight_dtype,
                            int64_t m, int64_t n, int64_t k, int reps) {
  const size_t es = DTypeSize(weight_dtype);
  std::unique_ptr<void, FreeDeleter> w_host(AllocAligned(size_t(n * k) * es));
  std::vector<float> x_host(size_t(m * k));
  for (int64_t i = 0; i < n * k; ++i) {
    const float v = float((i * 5) % 11 - 5) * 0.01f;
    if (weight_dtype == DType::F32) static_cast<float*>(w_host.get())[i] = v;
    else if (weight_dtype == DType::BF16) static_cast<uint16_t*>(w_host.get())[i] = F32ToBF16(v);
    else static_cast<uint16_t*>(w_host.get())[i] = F32ToF16(v);
  }
  for (int64_t i = 0; i < m * k; ++i) x_host[size_t(i)] = float((i * 7) % 13 - 6) * 0.01f;
  // A backend of its own: what it prepares (maybe a view of w_host) lives until it is destroyed,
  // which happens before w_host is freed.
  std::unique_ptr<Backend> backend = make_backend();
  if (!backend) return 0.0;
  const TensorView w = backend->PrepareWeight(TensorView{w_host.get(), weight_dtype, Shape{n, k}}, WeightKind::kMatrix);
  float* x = static_cast<float*>(backend->Alloc(size_t(m * k) * sizeof(float)));
  float* out = static_cast<float*>(backend->Alloc(size_t(m * n) * sizeof(float)));
  backend->CopyToDevice(x, x_host.data(), x_host.size() * sizeof(float));
  double best = 0.0;
  for (int r = 0; r < reps + 1; ++r) {
    const double t0 = Now();
    backend->MatMul(Mat{x, m, k, k}, w, Mat{out, m, n, n});
    backend->Sync();
    const double dt = Now() - t0;
    if (r > 0) best = std::max(best, 2.0 * double(m) * double(n) * double(k) / dt);
  }
  backend->Free(x);
  backend->Free(out);
  backend.reset();
  return best;
}

size_t PeakRssBytes() { return ReadProcStatusKb("VmHWM") * 1024; }
size_t CurrentRssBytes() { return ReadProcStatusKb("VmRSS") * 1024; }

}  // namespace mamba2::bench
