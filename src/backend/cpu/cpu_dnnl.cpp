#include "backend/cpu/cpu_dnnl.h"

#include <algorithm>
#include <array>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/cpu/simd.h"
#include "core/dtype.h"
#include "core/status.h"

#if defined(MAMBA2_HAVE_DNNL)
#include <omp.h>

#include "oneapi/dnnl/dnnl.h"
#endif

namespace mamba2::cpu {

#if defined(MAMBA2_HAVE_DNNL)
namespace {

#define DNNL_CHECK(expr)                                                  \
  do {                                                                    \
    const dnnl_status_t _s = (expr);                                      \
    CHECK_MSG(_s == dnnl_success, std::string(#expr) + " failed: " + std::to_string(int(_s))); \
  } while (0)

// oneDNN's OpenMP team would oversubscribe the cores our pool already uses. The OpenMP
// thread count is per calling thread, so set it once on each thread that gets here.
void SingleOmpThread() {
  thread_local bool done = false;
  if (!done) {
    omp_set_num_threads(1);
    done = true;
  }
}

struct Bf16Primitive {
  dnnl_primitive_t prim = nullptr;
  dnnl_memory_desc_t src, wei, dst, scratch;
  size_t scratch_bytes = 0;
  ~Bf16Primitive() {
    if (prim) dnnl_primitive_destroy(prim);
  }
};

// Primitives are immutable after creation and may run concurrently on several threads, each
// with its own stream and scratchpad (user-managed, so no library-global scratch is shared).
//
// The cache is bounded: the GEMM tiles' row counts follow the prompt lengths, and a server sees
// any number of them (each primitive holds ~170 KB of generated code: 100 prompt lengths grew a
// bench's RSS by 84 MB). The least recently used primitive goes first; a thread still running one
// keeps it alive through its shared_ptr. oneDNN's own primitive cache would keep the evicted ones
// (up to 1024 by default), so it is switched off: this cache is the only one.
class Bf16Cache {
 public:
  static Bf16Cache& Get() {
    static Bf16Cache* c = new Bf16Cache();  // never destroyed: primitives may run at exit
    return *c;
  }
  dnnl_engine_t engine() const { return engine_; }

  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return cache_.size();
  }

  // accumulate: with a sum post-op (out += product), which oneDNN's matmul has wherever it has
  // the bf16 matmul itself (HaveBf16Gemm).
  std::shared_ptr<const Bf16Primitive> Find(const Bf16Product& s) {
    std::lock_guard<std::mutex> lock(mu_);
    const Key key = {s.m, s.n, s.k, s.a_row, s.a_col, s.b_row, s.b_col, s.ldo, int64_t(s.accumulate)};
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.use);
      return it->second.prim;
    }
    auto p = std::make_shared<Bf16Primitive>();
    const dnnl_dims_t src_dims = {s.m, s.k}, wei_dims = {s.k, s.n}, dst_dims = {s.m, s.n};
    const dnnl_dims_t src_strides = {s.a_row, s.a_col}, wei_strides = {s.b_row, s.b_col}, dst_strides = {s.ldo, 1};
    DNNL_CHECK(dnnl_memory_desc_init_by_strides(&p->src, 2, src_dims, dnnl_bf16, src_strides));
    DNNL_CHECK(dnnl_memory_desc_init_by_strides(&p->wei, 2, wei_dims, dnnl_bf16, wei_strides));
    DNNL_CHECK(dnnl_memory_desc_init_by_strides(&p->dst, 2, dst_dims, dnnl_f32, dst_strides));
    dnnl_primitive_attr_t attr = nullptr;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    DNNL_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    dnnl_post_ops_t post_ops = nullptr;
    if (s.accumulate) {
      DNNL_CHECK(dnnl_post_ops_create(&post_ops));
      DNNL_CHECK(dnnl_post_ops_append_sum(post_ops, 1.0f));
      DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, post_ops));
    }
    dnnl_matmul_desc_t md;
    DNNL_CHECK(dnnl_matmul_desc_init(&md, &p->src, &p->wei, nullptr, &p->dst));
    dnnl_primitive_desc_t pd = nullptr;
    DNNL_CHECK(dnnl_primitive_desc_create(&pd, &md, attr, engine_, nullptr));
    dnnl_primitive_attr_destroy(attr);
    if (post_ops) dnnl_post_ops_destroy(post_ops);
    p->scratch = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p->scratch_bytes = dnnl_memory_desc_get_size(&p->scratch);
    DNNL_CHECK(dnnl_primitive_create(&p->prim, pd));
    dnnl_primitive_desc_destroy(pd);
    if (cache_.size() >= kBf16CacheCapacity) {
      cache_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(key);
    cache_[key] = Entry{p, lru_.begin()};
    return p;
  }

 private:
  using Key = std::array<int64_t, 9>;
  struct Entry {
    std::shared_ptr<const Bf16Primitive> prim;
    std::list<Key>::iterator use;  // its place in lru_
  };

  Bf16Cache() {
    DNNL_CHECK(dnnl_set_primitive_cache_capacity(0));
    DNNL_CHECK(dnnl_engine_create(&engine_, dnnl_cpu, 0));
  }
  dnnl_engine_t engine_ = nullptr;
  std::mutex mu_;
  std::list<Key> lru_;  // most recently used first
  std::map<Key, Entry> cache_;
};

struct ThreadStream {
  dnnl_stream_t stream = nullptr;
  std::vector<uint8_t> scratch;
  ~ThreadStream() {
    if (stream) dnnl_stream_destroy(stream);
  }
};

}  // namespace

size_t Bf16CachedPrimitives() { return Bf16Cache::Get().size(); }

bool HaveBf16Gemm() {
  // Asked once with a small matmul; any other shape then has a primitive too.
  static const bool ok = [] {
    const dnnl_dims_t dims = {16, 16};
    dnnl_memory_desc_t src, wei, dst;
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&src, 2, dims, dnnl_bf16, dnnl_ab));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&wei, 2, dims, dnnl_bf16, dnnl_ba));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&dst, 2, dims, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t md;
    DNNL_CHECK(dnnl_matmul_desc_init(&md, &src, &wei, nullptr, &dst));
    dnnl_primitive_desc_t pd = nullptr;
    const dnnl_status_t st = dnnl_primitive_desc_create(&pd, &md, nullptr, Bf16Cache::Get().engine(), nullptr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return st == dnnl_success;
  }();
  return ok;
}

void SgemmTile(const float* x, int64_t ldx, const float* w, int64_t k, float beta, float* out, int64_t ldo,
               int64_t rows, int64_t cols) {
  SingleOmpThread();
  const dnnl_status_t st = dnnl_sgemm('N', 'T', rows, cols, k, 1.0f, x, ldx, w, k, beta, out, ldo);
  CHECK_MSG(st == dnnl_success, "dnnl_sgemm failed");
}

void Sgemm(char trans_a, char trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  SingleOmpThread();
  const dnnl_status_t st = dnnl_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  CHECK_MSG(st == dnnl_success, "dnnl_sgemm failed");
}

void Bf16Matmul(const Bf16Product& shape, const uint16_t* a, const uint16_t* b, float* out) {
  SingleOmpThread();
  Bf16Cache& cache = Bf16Cache::Get();
  const std::shared_ptr<const Bf16Primitive> held = cache.Find(shape);
  const Bf16Primitive& p = *held;
  thread_local ThreadStream ts;
  if (!ts.stream) DNNL_CHECK(dnnl_stream_create(&ts.stream, cache.engine(), dnnl_stream_default_flags));
  if (ts.scratch.size() < p.scratch_bytes) ts.scratch.resize(p.scratch_bytes);
  dnnl_memory_t m_src = nullptr, m_wei = nullptr, m_dst = nullptr, m_scratch = nullptr;
  DNNL_CHECK(dnnl_memory_create(&m_src, &p.src, cache.engine(), const_cast<uint16_t*>(a)));
  DNNL_CHECK(dnnl_memory_create(&m_wei, &p.wei, cache.engine(), const_cast<uint16_t*>(b)));
  DNNL_CHECK(dnnl_memory_create(&m_dst, &p.dst, cache.engine(), out));
  DNNL_CHECK(dnnl_memory_create(&m_scratch, &p.scratch, cache.engine(), ts.scratch.data()));
  const dnnl_exec_arg_t args[4] = {
      {DNNL_ARG_SRC, m_src}, {DNNL_ARG_WEIGHTS, m_wei}, {DNNL_ARG_DST, m_dst}, {DNNL_ARG_SCRATCHPAD, m_scratch}};
  DNNL_CHECK(dnnl_primitive_execute(p.prim, ts.stream, 4, args));
  DNNL_CHECK(dnnl_stream_wait(ts.stream));
  for (dnnl_memory_t m : {m_src, m_wei, m_dst, m_scratch}) dnnl_memory_destroy(m);
}

#else  // no oneDNN: plain loops, correct and slow.

bool HaveBf16Gemm() { return false; }

size_t Bf16CachedPrimitives() { return 0; }

void SgemmTile(const float* x, int64_t ldx, const float* w, int64_t k, float beta, float* out, int64_t ldo,
               int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      out[r * ldo + j] = Dot(x + r * ldx, w + j * k, k) + (beta == 0.0f ? 0.0f : out[r * ldo + j]);
}

void Sgemm(char trans_a, char trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float s = 0.0f;
      for (int64_t t = 0; t < k; ++t) {
        const float av = trans_a == 'T' ? a[t * lda + i] : a[i * lda + t];
        const float bv = trans_b == 'T' ? b[j * ldb + t] : b[t * ldb + j];
        s += av * bv;
      }
      c[i * ldc + j] = alpha * s + (beta == 0.0f ? 0.0f : beta * c[i * ldc + j]);
    }
}

void Bf16Matmul(const Bf16Product&, const uint16_t*, const uint16_t*, float*) {
  CHECK_MSG(false, "Bf16Matmul needs oneDNN (see HaveBf16Gemm)");
}

#endif

void Bf16GemmTile(const uint16_t* x, const uint16_t* w, int64_t k, bool accumulate, float* out, int64_t ldo,
                  int64_t rows, int64_t cols) {
  // w [cols, k] row-major is the k x cols operand with column stride k.
  Bf16Matmul({rows, cols, k, k, 1, 1, k, ldo, accumulate}, x, w, out);
}

}  // namespace mamba2::cpu
