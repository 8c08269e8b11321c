// Host memory for large arrays that are streamed again and again (weights that are not views of
// a checkpoint's mapping: random weights, converted or realigned copies): at least 64-byte
// aligned; from 1 MiB up it is its own mapping, 2 MiB-aligned and advised for transparent huge
// pages, so that a decode step's stream of weight reads walks one TLB entry per 2 MiB instead of
// one per 4 KiB. On the AMX Xeon, 130m bf16 decode from such weights went from 70.6-72.8 to
// 79.6-81.7 tok/s (BENCHMARKS.md); weights mmapped from an ext4 file were already that fast there
// (the kernel's large page-cache folios). Where the kernel gives no huge pages the memory is
// ordinary pages, nothing else changes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace mamba2 {

class HostBuffer {
 public:
  static constexpr size_t kAlignment = 64;
  static constexpr size_t kHugePage = size_t(2) << 20;
  // From this size on the buffer is a huge-page mapping (smaller ones are heap blocks).
  static constexpr size_t kMappedFrom = size_t(1) << 20;

  HostBuffer() = default;
  HostBuffer(HostBuffer&& o) noexcept { *this = static_cast<HostBuffer&&>(o); }
  HostBuffer& operator=(HostBuffer&& o) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer() { Release(); }

  // Fails (rather than throwing) when the allocation does. The bytes are not initialised.
  static Result<HostBuffer> Allocate(size_t nbytes);

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Whether the buffer is a mapping advised for huge pages (what the kernel made of the advice
  // is its own business: /proc/self/smaps says).
  bool huge_page_advised() const { return mapped_ != 0; }

 private:
  void Release();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // bytes of the mapping; 0: a heap block
};

}  // namespace mamba2
