// Memory management shared by the backends whose memory is ordinary host memory (ref, cpu).
#pragma once

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/backend.h"

namespace mamba2 {

class HostBackend : public Backend {
 public:
  ~HostBackend() override = default;

  void* Alloc(size_t bytes) override {
    // 64-byte alignment for SIMD loads; round the size up as aligned_alloc requires.
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    CHECK_MSG(p != nullptr, "out of host memory");
    std::memset(p, 0, rounded);
    return p;
  }
  void Free(void* p) override { std::free(p); }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void CopyToHost(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void Fill(float* dst, float value, size_t n) override {
    for (size_t i = 0; i < n; ++i) dst[i] = value;
  }
  void CopySlot(float* state, int64_t slot_size, int32_t from, int32_t to) override {
    std::memcpy(state + int64_t(to) * slot_size, state + int64_t(from) * slot_size,
                size_t(slot_size) * sizeof(float));
  }

  // The rule's reference implementation: the ref backend's oracle, and fast enough for the cpu.
  void PickTokens(const float* logits, int64_t n_rows, int64_t ld, const PickParams& p, uint64_t* draw,
                  int32_t* out_ids) override {
    for (int64_t r = 0; r < n_rows; ++r)
      out_ids[r] = PickReference(logits + r * ld, p, PickUniform(p.seed, *draw, uint64_t(r)));
    ++*draw;
  }

  // Vectors become fp32 copies owned here; matrices stay in their stored dtype and memory,
  // unless the derived backend wants another form (it overrides PrepareMatrix).
  TensorView PrepareWeight(const TensorView& host, WeightKind kind) override {
    if (kind == WeightKind::kMatrix) return PrepareMatrix(host);
    return ToF32Copy(host);
  }

 protected:
  virtual TensorView PrepareMatrix(const TensorView& host) { return host; }

  TensorView ToF32Copy(const TensorView& host) {
    const int64_t n = host.numel();
    std::unique_ptr<float[]> buf(new float[size_t(n)]);
    for (int64_t i = 0; i < n; ++i) buf[size_t(i)] = LoadAsF32(host.data, host.dtype, size_t(i));
    TensorView v{buf.get(), DType::F32, host.shape};
    std::lock_guard<std::mutex> lock(mu_);
    owned_.push_back(std::move(buf));
    return v;
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<float[]>> owned_;
};

}  // namespace mamba2
