// HostBuffer: aligned, writable to its last byte, movable; large ones are 2 MiB-aligned mappings
// that the kernel takes as eligible for transparent huge pages (read back from /proc/self/smaps,
// where THP is on at all).
#include "core/host_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace mamba2 {
namespace {

// The "THPeligible:" value of the mapping that holds p, or -1 where smaps does not say.
int ThpEligible(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      inside = a >= lo && a < hi;
      continue;
    }
    if (inside && line.rfind("THPeligible:", 0) == 0) return std::stoi(line.substr(12));
  }
  return -1;
}

bool ThpOn() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(f, s);
  return !s.empty() && s.find("[never]") == std::string::npos;
}

TEST(HostBuffer, SmallAndLargeAreAlignedAndWritable) {
  for (size_t n : {size_t(0), size_t(1), size_t(4096), HostBuffer::kMappedFrom - 1, HostBuffer::kMappedFrom,
                   (size_t(3) << 20) + 5, size_t(64) << 20}) {
    Result<HostBuffer> b = HostBuffer::Allocate(n);
    ASSERT_TRUE(b.ok()) << n;
    ASSERT_NE(b->data(), nullptr) << n;
    EXPECT_EQ(b->size(), n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % HostBuffer::kAlignment, 0u) << n;
    const bool large = n >= HostBuffer::kMappedFrom;
    EXPECT_EQ(b->huge_page_advised(), large) << n;
    if (large) EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data()) % HostBuffer::kHugePage, 0u) << n;
    if (n) {
      std::memset(b->data(), 0x5a, n);
      EXPECT_EQ(b->data()[n - 1], 0x5a);
    }
  }
}

TEST(HostBuffer, LargeOnesAreEligibleForHugePages) {
  if (!ThpOn()) GTEST_SKIP() << "transparent huge pages are off on this machine";
  Result<HostBuffer> b = HostBuffer::Allocate(size_t(8) << 20);
  ASSERT_TRUE(b.ok());
  std::memset(b->data(), 1, b->size());
  const int eligible = ThpEligible(b->data());
  if (eligible < 0) GTEST_SKIP() << "this kernel's smaps has no THPeligible";
  EXPECT_EQ(eligible, 1) << "the mapping was not advised for huge pages";
  // A heap block of the same size would only be eligible where THP is "always".
}

TEST(HostBuffer, MovesOwnership) {
  Result<HostBuffer> a = HostBuffer::Allocate(size_t(2) << 20);
  ASSERT_TRUE(a.ok());
  uint8_t* p = a->data();
  HostBuffer b = std::move(a).value();
  EXPECT_EQ(b.data(), p);
  HostBuffer c;
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(b.data(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  std::vector<HostBuffer> v;
  v.push_back(std::move(c));
  v.emplace_back();
  EXPECT_EQ(v[0].data(), p);
}

}  // namespace
}  // namespace mamba2
