#include "core/host_buffer.h"

#include <sys/mman.h>

#include <cstdlib>
#include <string>

namespace mamba2 {

HostBuffer& HostBuffer::operator=(HostBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    data_ = o.data_;
    size_ = o.size_;
    mapped_ = o.mapped_;
    o.data_ = nullptr;
    o.size_ = o.mapped_ = 0;
  }
  return *this;
}

void HostBuffer::Release() {
  if (!data_) return;
  if (mapped_) munmap(data_, mapped_);
  else std::free(data_);
  data_ = nullptr;
  size_ = mapped_ = 0;
}

Result<HostBuffer> HostBuffer::Allocate(size_t nbytes) {
  auto fail = [nbytes] { return Status::Error("out of memory allocating " + std::to_string(nbytes) + " bytes"); };
  if (nbytes > SIZE_MAX / 2) return fail();
  HostBuffer b;
  b.size_ = nbytes;
  if (nbytes < kMappedFrom) {
    // aligned_alloc wants a non-zero multiple of the alignment.
    const size_t rounded = nbytes == 0 ? kAlignment : (nbytes + kAlignment - 1) / kAlignment * kAlignment;
    b.data_ = static_cast<uint8_t*>(std::aligned_alloc(kAlignment, rounded));
    if (!b.data_) return fail();
    return b;
  }
  // Map a huge page more than needed, then give back the ends so that what stays starts and ends
  // on 2 MiB boundaries: the kernel can then back all of it with huge pages.
  const size_t length = (nbytes + kHugePage - 1) / kHugePage * kHugePage;
  void* raw = mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return fail();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + length + kHugePage;
  if (end > aligned + length) munmap(reinterpret_cast<void*>(aligned + length), end - (aligned + length));
  b.data_ = reinterpret_cast<uint8_t*>(aligned);
  b.mapped_ = length;
  madvise(b.data_, length, MADV_HUGEPAGE);  // advice only: without THP the pages stay small
  return b;
}

}  // namespace mamba2
