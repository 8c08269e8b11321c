#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace mamba2 {

Result<AtomicFile> AtomicFile::Create(const std::string& path) {
  AtomicFile f;
  f.path_ = path;
  f.tmp_path_ = path + ".tmp";
  f.fd_ = ::open(f.tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd_ < 0) return Status::Error(f.tmp_path_ + ": cannot create: " + std::strerror(errno));
  return f;
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept { *this = std::move(other); }

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    Drop();
    path_ = std::move(other.path_);
    tmp_path_ = std::move(other.tmp_path_);
    fd_ = std::exchange(other.fd_, -1);
    end_ = other.end_;
    committed_ = std::exchange(other.committed_, true);  // the moved-from object removes nothing
  }
  return *this;
}

AtomicFile::~AtomicFile() { Drop(); }

void AtomicFile::Drop() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!committed_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
  committed_ = true;
}

Status AtomicFile::WriteAt(uint64_t offset, const void* data, size_t bytes) const {
  CHECK_MSG(fd_ >= 0, tmp_path_ + ": written after Commit");
  const auto* p = static_cast<const uint8_t*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd_, p, bytes, off_t(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error(tmp_path_ + ": write failed: " + std::strerror(errno) + "; " + path_ + " was not written");
    }
    p += n;
    bytes -= size_t(n);
    offset += uint64_t(n);
  }
  return Status::Ok();
}

Status AtomicFile::Append(const void* data, size_t bytes) {
  if (Status st = WriteAt(end_, data, bytes); !st.ok()) return st;
  end_ += bytes;
  return Status::Ok();
}

Status AtomicFile::Resize(uint64_t bytes) const {
  CHECK_MSG(fd_ >= 0, tmp_path_ + ": resized after Commit");
  if (::ftruncate(fd_, off_t(bytes)) != 0)
    return Status::Error(tmp_path_ + ": cannot size to " + std::to_string(bytes) + " bytes: " + std::strerror(errno) +
                         "; " + path_ + " was not written");
  return Status::Ok();
}

Status AtomicFile::Commit() {
  CHECK_MSG(fd_ >= 0, tmp_path_ + ": committed twice");
  const int fd = std::exchange(fd_, -1);
  // Delayed write errors (a full disk, a network file system) may only show at close.
  if (::close(fd) != 0) {
    const int err = errno;
    Drop();
    return Status::Error(tmp_path_ + ": close failed: " + std::strerror(err) + "; " + path_ + " was not written");
  }
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    Drop();
    return Status::Error(path_ + ": cannot move " + tmp_path_ + " into place: " + std::strerror(err));
  }
  committed_ = true;
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, std::string_view bytes) {
  Result<AtomicFile> f = AtomicFile::Create(path);
  if (!f.ok()) return f.status();
  if (Status st = f->Append(bytes); !st.ok()) return st;
  return f->Commit();
}

}  // namespace mamba2
