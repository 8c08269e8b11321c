// A fake CUDA device on the host: the CUDA runtime calls and (fake_cublas.cpp) the cuBLAS GEMM
// that the CUDA backend (src/backend/cuda/cuda_backend.cpp) makes, so that the backend's host code, compiled
// unchanged, runs its kernels (through the emulator of tests/cuda/cuda_emu.h) on a machine
// without a GPU. It is made to fail where a GPU would, and sooner:
//
// - Device memory is mapped without access except while queued work runs: the host touching it
//   directly (instead of a copy) dies with a message naming the allocation.
// - Queued work (kernels, async copies, memsets, GEMMs) runs only when the host waits for it
//   (stream or event synchronisation, a synchronous call): a host read of a pinned buffer
//   before its copy was waited for sees stale bytes, and a pinned source rewritten before its
//   copy ran is copied as rewritten.
// - Pageable host memory is copied when an async copy is queued (the driver stages it then);
//   copies to pageable memory complete before the call returns, as on a GPU.
// - Stream capture records work into a graph that replays it with the arguments it was captured
//   with; calls a capture forbids (allocation, synchronisation, pageable copies) fail it as the
//   driver does.
// - cublasGemmEx (fake_cublas.cpp) checks its arguments as cuBLAS does.
// Not modelled: timing, concurrency between streams, more than one device.
#include <cuda_runtime_api.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/float_bits.h"
#include "fake_cuda/fake_device.h"

namespace {

struct Op {
  std::function<void()> run;
  const char* what = "";
  CUevent_st* event = nullptr;  // an event record: the event completes when this op has run
  uint64_t event_generation = 0;  // which record of the event this is (set when queued)
};

}  // namespace

struct CUgraph_st {
  std::vector<Op> ops;
};
struct CUgraphExec_st {
  std::vector<Op> ops;
};

struct CUstream_st {
  std::deque<Op> queue;
  uint64_t queued = 0;  // ops ever queued
  uint64_t done = 0;    // ops run
  std::unique_ptr<CUgraph_st> capture;
  bool capture_invalid = false;
  std::thread::id capture_thread;
};

struct CUevent_st {
  bool timing = true;
  CUstream_st* stream = nullptr;  // of the latest record
  uint64_t position = 0;          // stream->done once the record has run
  uint64_t generation = 0;        // records so far; a completed older record does not count
  uint64_t completed = 0;         // generation of the latest record that has run
  double time_ms = 0;
};

namespace mamba2::fake_cuda {
namespace {

enum class Space { kPageable, kDevice, kPinned };

struct Allocation {
  size_t bytes = 0;   // asked for
  size_t mapped = 0;  // whole pages (device memory)
  Space space = Space::kDevice;
};

struct Device {
  std::recursive_mutex mu;
  std::map<uintptr_t, Allocation> allocations;  // by start address
  std::set<CUstream_st*> streams;
  CUstream_st legacy;  // the null stream
  Counters counters;
  int open_depth = 0;  // > 0 while queued work runs: device memory accessible
};

Device& Dev() {
  static Device* d = new Device;  // never destroyed: backends may be torn down at exit
  return *d;
}

thread_local cudaError_t last_error = cudaSuccess;
thread_local int current_device = 0;
thread_local int captures_on_this_thread = 0;

cudaError_t Fail(cudaError_t e) {
  last_error = e;
  return e;
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fake cuda: %s\n", what.c_str());
  std::abort();
}

double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The allocation address p lies in (its start in *start), if any.
const Allocation* Containing(const void* p, uintptr_t* start) {
  Device& d = Dev();
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = d.allocations.upper_bound(a);
  if (it == d.allocations.begin()) return nullptr;
  --it;
  if (a >= it->first + std::max<size_t>(it->second.bytes, 1)) return nullptr;
  *start = it->first;
  return &it->second;
}

Space SpaceOf(const void* p, size_t bytes) {
  uintptr_t start = 0;
  const Allocation* a = Containing(p, &start);
  if (!a) return Space::kPageable;
  if (reinterpret_cast<uintptr_t>(p) + bytes > start + a->bytes)
    Die("an access of " + std::to_string(bytes) + " bytes runs past the end of its " + std::to_string(a->bytes) +
        "-byte allocation");
  return a->space;
}

void Protect(int prot) {
  for (auto& [start, a] : Dev().allocations)
    if (a.space == Space::kDevice && mprotect(reinterpret_cast<void*>(start), a.mapped, prot) != 0)
      Die("mprotect failed");
}

// Device memory is readable and writable between Open and Close (nested).
void Open() {
  if (Dev().open_depth++ == 0) Protect(PROT_READ | PROT_WRITE);
}
void Close() {
  if (--Dev().open_depth == 0) Protect(PROT_NONE);
}

void SegvHandler(int sig, siginfo_t* info, void*) {
  // Not async-signal-safe, but the process ends here either way.
  uintptr_t start = 0;
  const Allocation* a = Containing(info->si_addr, &start);
  if (a && a->space == Space::kDevice && Dev().open_depth == 0) {
    std::fprintf(stderr,
                 "fake cuda: the host touched device memory at %p (offset %zu of a %zu-byte cudaMalloc "
                 "allocation); on a GPU this is a crash: copy it to the host first\n",
                 info->si_addr, size_t(reinterpret_cast<uintptr_t>(info->si_addr) - start), a->bytes);
    std::abort();
  }
  signal(sig, SIG_DFL);  // not ours: fault again, as without the handler
}

void InstallSegvHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa = {};
    sa.sa_sigaction = SegvHandler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, nullptr);
  });
}

CUstream_st* StreamOf(cudaStream_t s) { return s ? s : &Dev().legacy; }

// An event record queued (directly or by a graph launch) becomes the event's latest.
void MarkEvent(Op& op, CUstream_st* s) {
  if (!op.event) return;
  op.event_generation = ++op.event->generation;
  op.event->stream = s;
  op.event->position = s->queued;
}

// Runs s's queued ops until `until` of them have run.
void Drain(CUstream_st* s, uint64_t until) {
  if (s->done >= until) return;
  ++Dev().counters.host_waits;
  Open();
  while (s->done < until && !s->queue.empty()) {
    Op op = std::move(s->queue.front());
    s->queue.pop_front();
    op.run();
    ++s->done;
    if (op.event) {
      op.event->completed = std::max(op.event->completed, op.event_generation);
      op.event->time_ms = NowMs();
    }
  }
  Close();
}

void DrainAll() {
  Device& d = Dev();
  Drain(&d.legacy, d.legacy.queued);
  for (CUstream_st* s : d.streams) Drain(s, s->queued);
}

void Push(CUstream_st* s, Op op) {
  if (s->capture) {
    s->capture->ops.push_back(std::move(op));
    return;
  }
  ++s->queued;
  MarkEvent(op, s);
  s->queue.push_back(std::move(op));
}

// Calls a capture forbids on its thread (they would synchronise or allocate) end it as invalid.
bool ForbiddenInCapture() {
  if (captures_on_this_thread == 0) return false;
  Device& d = Dev();
  for (CUstream_st* s : d.streams)
    if (s->capture && s->capture_thread == std::this_thread::get_id()) s->capture_invalid = true;
  last_error = cudaErrorStreamCaptureUnsupported;
  return true;
}

bool IsCapturing(CUstream_st* s) { return s->capture != nullptr; }

void* MapDevice(size_t bytes, size_t* mapped) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  *mapped = std::max<size_t>(page, (bytes + page - 1) / page * page);
  void* p = mmap(nullptr, *mapped, Dev().open_depth > 0 ? PROT_READ | PROT_WRITE : PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

void Enqueue(cudaStream_t stream, std::function<void()> run, const char* what) {
  std::lock_guard<std::recursive_mutex> lock(Dev().mu);
  CUstream_st* s = StreamOf(stream);
  if (s != &Dev().legacy && !Dev().streams.count(s)) Die(std::string(what) + " queued on a destroyed stream");
  Push(s, Op{[run = std::move(run), what] {
               if (std::strcmp(what, "kernel") == 0) ++Dev().counters.kernels;
               if (std::strcmp(what, "gemm") == 0) ++Dev().counters.gemms;
               run();
             },
             what, nullptr});
}

bool IsDeviceMemory(const void* p, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(Dev().mu);
  return SpaceOf(p, bytes) == Space::kDevice;
}

void CheckKernelPointer(const void* p, int arg_index) {
  if (!p) return;
  std::lock_guard<std::recursive_mutex> lock(Dev().mu);
  if (SpaceOf(p, 0) == Space::kPageable)
    Die("kernel argument " + std::to_string(arg_index) +
        " points to pageable host memory; on a GPU the kernel would fault: pass device memory");
}

Counters GetCounters() {
  std::lock_guard<std::recursive_mutex> lock(Dev().mu);
  return Dev().counters;
}

}  // namespace mamba2::fake_cuda

using namespace mamba2::fake_cuda;  // NOLINT: the C API below is global, as CUDA's

namespace {
using Lock = std::lock_guard<std::recursive_mutex>;
}

// ---- errors and device -----------------------------------------------------------------------

namespace {

// Each error's name and text, as the runtime reports them.
struct ErrorInfo {
  cudaError_t e;
  const char* name;
  const char* text;
};
constexpr ErrorInfo kErrors[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {cudaErrorNotReady, "cudaErrorNotReady", "device not ready"},
    {cudaErrorStreamCaptureUnsupported, "cudaErrorStreamCaptureUnsupported",
     "operation not permitted when stream is capturing"},
    {cudaErrorStreamCaptureInvalidated, "cudaErrorStreamCaptureInvalidated",
     "operation failed due to a previous error during capture"},
    {cudaErrorStreamCaptureWrongThread, "cudaErrorStreamCaptureWrongThread",
     "attempt to terminate a thread-local capture sequence from another thread"},
};
constexpr ErrorInfo kUnknownError = {cudaErrorInvalidValue, "cudaErrorUnknown", "unknown error"};

const ErrorInfo& InfoOf(cudaError_t e) {
  for (const ErrorInfo& i : kErrors)
    if (i.e == e) return i;
  return kUnknownError;
}

}  // namespace

const char* cudaGetErrorName(cudaError_t e) { return InfoOf(e).name; }
const char* cudaGetErrorString(cudaError_t e) { return InfoOf(e).text; }
cudaError_t cudaGetLastError() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return last_error; }

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device != 0) return Fail(cudaErrorInvalidDevice);
  current_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = current_device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return Fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof(prop->name), "fake CUDA device (host emulator)");
  prop->totalGlobalMem = size_t(16) << 30;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 4;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return Fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrClockRate: *value = 1980000; return cudaSuccess;        // kHz
    case cudaDevAttrMultiProcessorCount: *value = 4; return cudaSuccess;
    case cudaDevAttrMemoryClockRate: *value = 2619000; return cudaSuccess;  // kHz
    case cudaDevAttrGlobalMemoryBusWidth: *value = 5120; return cudaSuccess;
  }
  return Fail(cudaErrorInvalidValue);
}
cudaError_t cudaDeviceSynchronize() {
  Lock lock(Dev().mu);
  if (ForbiddenInCapture()) return cudaErrorStreamCaptureUnsupported;
  DrainAll();
  return cudaSuccess;
}

// ---- memory ----------------------------------------------------------------------------------

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  Lock lock(Dev().mu);
  *ptr = nullptr;
  if (ForbiddenInCapture()) return cudaErrorStreamCaptureUnsupported;
  InstallSegvHandler();
  size_t mapped = 0;
  void* p = MapDevice(bytes, &mapped);
  if (!p) return Fail(cudaErrorMemoryAllocation);
  Dev().allocations[reinterpret_cast<uintptr_t>(p)] = Allocation{bytes, mapped, Space::kDevice};
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  Lock lock(Dev().mu);
  if (ForbiddenInCapture()) return cudaErrorStreamCaptureUnsupported;
  if (!ptr) return cudaSuccess;
  DrainAll();  // cudaFree waits for the device
  auto it = Dev().allocations.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == Dev().allocations.end() || it->second.space != Space::kDevice) return Fail(cudaErrorInvalidValue);
  munmap(ptr, it->second.mapped);
  Dev().allocations.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  Lock lock(Dev().mu);
  *ptr = nullptr;
  if (ForbiddenInCapture()) return cudaErrorStreamCaptureUnsupported;
  void* p = std::aligned_alloc(4096, std::max<size_t>(4096, (bytes + 4095) / 4096 * 4096));
  if (!p) return Fail(cudaErrorMemoryAllocation);
  std::memset(p, 0xA5, bytes);  // not zeroed on a GPU either
  Dev().allocations[reinterpret_cast<uintptr_t>(p)] = Allocation{bytes, 0, Space::kPinned};
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  Lock lock(Dev().mu);
  if (ForbiddenInCapture()) return cudaErrorStreamCaptureUnsupported;
  if (!ptr) return cudaSuccess;
  DrainAll();
  auto it = Dev().allocations.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == Dev().allocations.end() || it->second.space != Space::kPinned) return Fail(cudaErrorInvalidValue);
  std::free(ptr);
  Dev().allocations.erase(it);
  return cudaSuccess;
}

namespace {

// Checks a copy's direction against where its ends lie.
cudaError_t CheckCopy(Space dst, Space src, cudaMemcpyKind kind) {
  const bool dd = dst == Space::kDevice, sd = src == Space::kDevice;
  switch (kind) {
    case cudaMemcpyHostToHost: return !dd && !sd ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyHostToDevice: return dd && !sd ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyDeviceToHost: return !dd && sd ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyDeviceToDevice: return dd && sd ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyDefault: return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}

// A 2D copy (rows of `width` bytes) queued on stream, with the rules of the file comment.
cudaError_t Copy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                   cudaMemcpyKind kind, cudaStream_t stream) {
  if (width == 0 || height == 0) return cudaSuccess;
  if (dpitch < width || spitch < width) return Fail(cudaErrorInvalidValue);
  const size_t dspan = dpitch * (height - 1) + width, sspan = spitch * (height - 1) + width;
  const Space ds = SpaceOf(dst, dspan), ss = SpaceOf(src, sspan);
  if (CheckCopy(ds, ss, kind) != cudaSuccess) {
    std::fprintf(stderr, "fake cuda: memcpy kind %d does not match where its ends lie\n", int(kind));
    return Fail(cudaErrorInvalidValue);
  }
  CUstream_st* s = StreamOf(stream);
  if (IsCapturing(s) && (ds == Space::kPageable || ss == Space::kPageable)) {
    s->capture_invalid = true;
    return Fail(cudaErrorStreamCaptureUnsupported);
  }
  auto rows = [=](const char* from) {
    for (size_t r = 0; r < height; ++r)
      std::memmove(static_cast<char*>(dst) + r * dpitch, from + r * spitch, width);
  };
  if (ss == Space::kPageable) {  // staged now: the caller may reuse its buffer at once
    std::shared_ptr<std::vector<char>> staged = std::make_shared<std::vector<char>>(
        static_cast<const char*>(src), static_cast<const char*>(src) + sspan);
    Push(s, Op{[rows, staged] { rows(staged->data()); }, "memcpy", nullptr});
  } else {
    Push(s, Op{[rows, src] { rows(static_cast<const char*>(src)); }, "memcpy", nullptr});
  }
  if (ds == Space::kPageable) Drain(s, s->queued);  // complete on return
  return cudaSuccess;
}

}  // namespace

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  Lock lock(Dev().mu);
  return Copy2D(dst, bytes, src, bytes, bytes, 1, kind, stream);
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
  Lock lock(Dev().mu);
  return Copy2D(dst, dpitch, src, spitch, width, height, kind, stream);
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  Lock lock(Dev().mu);
  if (ForbiddenInCapture()) return cudaErrorStreamCaptureUnsupported;
  const cudaError_t e = Copy2D(dst, bytes, src, bytes, bytes, 1, kind, nullptr);
  if (e == cudaSuccess) DrainAll();
  return e;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  Lock lock(Dev().mu);
  if (bytes == 0) return cudaSuccess;
  if (SpaceOf(ptr, bytes) != Space::kDevice) return Fail(cudaErrorInvalidValue);
  Push(StreamOf(stream), Op{[=] { std::memset(ptr, value, bytes); }, "memset", nullptr});
  return cudaSuccess;
}

// ---- streams, events, graphs -----------------------------------------------------------------

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned /*flags*/) {
  Lock lock(Dev().mu);
  *stream = new CUstream_st;
  Dev().streams.insert(*stream);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  Lock lock(Dev().mu);
  if (!stream || !Dev().streams.count(stream)) return Fail(cudaErrorInvalidResourceHandle);
  Drain(stream, stream->queued);  // queued work still completes
  Dev().streams.erase(stream);
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  Lock lock(Dev().mu);
  if (ForbiddenInCapture()) return cudaErrorStreamCaptureUnsupported;
  CUstream_st* s = StreamOf(stream);
  Drain(s, s->queued);
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode /*mode*/) {
  Lock lock(Dev().mu);
  if (!stream) return Fail(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot be captured
  if (stream->capture) return Fail(cudaErrorInvalidValue);
  stream->capture = std::make_unique<CUgraph_st>();
  stream->capture_invalid = false;
  stream->capture_thread = std::this_thread::get_id();
  ++captures_on_this_thread;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  Lock lock(Dev().mu);
  *graph = nullptr;
  if (!stream || !stream->capture) return Fail(cudaErrorInvalidValue);
  if (stream->capture_thread != std::this_thread::get_id()) return Fail(cudaErrorStreamCaptureWrongThread);
  --captures_on_this_thread;
  std::unique_ptr<CUgraph_st> g = std::move(stream->capture);
  if (stream->capture_invalid) return Fail(cudaErrorStreamCaptureInvalidated);
  ++Dev().counters.captures;
  *graph = g.release();
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  Lock lock(Dev().mu);
  CUstream_st* s = StreamOf(stream);
  *status = !s->capture          ? cudaStreamCaptureStatusNone
            : s->capture_invalid ? cudaStreamCaptureStatusInvalidated
                                 : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
  *event = new CUevent_st;
  (*event)->timing = (flags & cudaEventDisableTiming) == 0;
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  Lock lock(Dev().mu);
  // Queued records of it may still run: keep it (a few bytes per event, tests only).
  if (!event) return Fail(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  Lock lock(Dev().mu);
  if (!event) return Fail(cudaErrorInvalidResourceHandle);
  CUstream_st* s = StreamOf(stream);
  // Which record this is is fixed when it is queued (MarkEvent), also for a graph's replays.
  Push(s, Op{[] {}, "event", event});
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  Lock lock(Dev().mu);
  if (!event) return Fail(cudaErrorInvalidResourceHandle);
  if (ForbiddenInCapture()) return cudaErrorStreamCaptureUnsupported;
  if (event->stream) Drain(event->stream, event->position);
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t event) {
  // Queried, the device gets on with the work ahead of the event (nothing runs by itself here).
  return cudaEventSynchronize(event);
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  Lock lock(Dev().mu);
  if (!start || !end || !start->timing || !end->timing) return Fail(cudaErrorInvalidResourceHandle);
  if (start->generation == 0 || end->generation == 0) return Fail(cudaErrorInvalidResourceHandle);
  if (start->completed != start->generation || end->completed != end->generation) return Fail(cudaErrorNotReady);
  *ms = float(end->time_ms - start->time_ms);
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long /*flags*/) {
  Lock lock(Dev().mu);
  if (!graph) return Fail(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->ops};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  Lock lock(Dev().mu);
  if (!exec) return Fail(cudaErrorInvalidResourceHandle);
  ++Dev().counters.graph_launches;
  for (Op op : exec->ops) Push(StreamOf(stream), std::move(op));
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  Lock lock(Dev().mu);
  delete exec;  // ops already queued hold copies of what they need
  return cudaSuccess;
}
