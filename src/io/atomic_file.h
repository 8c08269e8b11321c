// Output files that appear at their path whole or not at all (logits, log-probabilities, JSON
// reports, model folders): written as PATH.tmp beside PATH and renamed into place by Commit, so
// an error or a full disk midway never leaves a half-written PATH, and the .tmp goes with it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mamba2 {

class AtomicFile {
 public:
  // Creates (or truncates) PATH.tmp.
  static Result<AtomicFile> Create(const std::string& path);
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // removes PATH.tmp unless Commit succeeded

  // Writes after the bytes appended so far.
  Status Append(const void* data, size_t bytes);
  Status Append(std::string_view s) { return Append(s.data(), s.size()); }
  // Writes at an offset (does not move the append position); safe from several threads at once
  // for distinct ranges.
  Status WriteAt(uint64_t offset, const void* data, size_t bytes) const;
  // Sets the file's size (zeros past the old end): a full disk shows up here, early.
  Status Resize(uint64_t bytes) const;
  // Closes (checked) and renames PATH.tmp to PATH. Nothing may be written afterwards.
  Status Commit();

 private:
  AtomicFile() = default;
  void Drop();
  std::string path_, tmp_path_;
  int fd_ = -1;
  uint64_t end_ = 0;  // append position
  bool committed_ = false;
};

// The whole of `bytes` as PATH, by way of an AtomicFile.
Status WriteFileAtomic(const std::string& path, std::string_view bytes);

}  // namespace mamba2
