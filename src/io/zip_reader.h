// Just enough of the zip format for PyTorch checkpoints: the central directory (zip64 too)
// and STORED entries, whose bytes are then used in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mamba2 {

struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;  // where the entry's bytes start in the archive (from its local header)
  uint64_t size = 0;
};

class ZipArchive {
 public:
  // Reads the central directory of the archive held in `data` and locates every entry's
  // bytes, bounds-checked. Compressed or encrypted entries are refused. `file` is only used
  // in messages. Safe on arbitrary bytes (fuzzed).
  static Result<ZipArchive> Parse(const uint8_t* data, size_t size, const std::string& file);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* Find(std::string_view name) const;  // nullptr if absent
  const uint8_t* EntryData(const ZipEntry& e) const { return data_ + e.data_offset; }

 private:
  const uint8_t* data_ = nullptr;
  std::vector<ZipEntry> entries_;  // sorted by name for Find
};

}  // namespace mamba2
