#include "io/zip_reader.h"

#include <algorithm>

#include "io/checked_math.h"

namespace mamba2 {
namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22, kZip64LocatorSize = 20, kZip64EndSize = 56;
constexpr size_t kCentralHeaderSize = 46, kLocalHeaderSize = 30;

uint16_t U16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t U32(const uint8_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24); }
uint64_t U64(const uint8_t* p) { return uint64_t(U32(p)) | (uint64_t(U32(p + 4)) << 32); }

struct Directory {
  uint64_t entries = 0, cd_size = 0, cd_offset = 0;
};

Result<Directory> FindDirectory(const uint8_t* data, size_t size, const std::string& file) {
  if (size < kEndSize) return Status::Error(file + ": too small to be a zip archive");
  // The end record sits at the end, followed only by a comment of at most 65535 bytes.
  const size_t lowest = size - kEndSize >= 65535 ? size - kEndSize - 65535 : 0;
  size_t eocd = SIZE_MAX;
  for (size_t p = size - kEndSize + 1; p-- > lowest;) {
    if (U32(data + p) == kEndSig && p + kEndSize + U16(data + p + 20) == size) {
      eocd = p;
      break;
    }
  }
  if (eocd == SIZE_MAX) return Status::Error(file + ": no zip end-of-central-directory record (not a zip, or truncated)");
  const uint8_t* e = data + eocd;
  if (U16(e + 4) != 0 || U16(e + 6) != 0) return Status::Error(file + ": multi-disk zip archives are not supported");
  Directory d;
  d.entries = U16(e + 10);
  d.cd_size = U32(e + 12);
  d.cd_offset = U32(e + 16);

  // torch always writes the zip64 records; their values are authoritative when present.
  const bool saturated = d.entries == 0xffff || d.cd_size == 0xffffffffu || d.cd_offset == 0xffffffffu;
  const bool has_locator = eocd >= kZip64LocatorSize && U32(data + eocd - kZip64LocatorSize) == kZip64LocatorSig;
  if (has_locator) {
    const uint8_t* loc = data + eocd - kZip64LocatorSize;
    const uint64_t rec = U64(loc + 8);
    if (rec > size || size - rec < kZip64EndSize || U32(data + rec) != kZip64EndSig)
      return Status::Error(file + ": zip64 end-of-central-directory locator points at offset " + std::to_string(rec) +
                           ", where there is no zip64 end record");
    const uint8_t* z = data + rec;
    if (U32(z + 16) != 0 || U32(z + 20) != 0) return Status::Error(file + ": multi-disk zip archives are not supported");
    d.entries = U64(z + 32);
    d.cd_size = U64(z + 40);
    d.cd_offset = U64(z + 48);
  } else if (saturated) {
    return Status::Error(file + ": zip end record needs zip64 values but there is no zip64 locator");
  }
  uint64_t cd_end = 0;
  if (!io_detail::AddU64(d.cd_offset, d.cd_size, &cd_end) || cd_end > size)
    return Status::Error(file + ": zip central directory [" + std::to_string(d.cd_offset) + ", +" +
                         std::to_string(d.cd_size) + ") runs past the end of the " + std::to_string(size) +
                         "-byte file (truncated?)");
  // Each entry needs at least a fixed header; this also caps the reserve below.
  if (d.entries > d.cd_size / kCentralHeaderSize)
    return Status::Error(file + ": zip directory claims " + std::to_string(d.entries) + " entries in " +
                         std::to_string(d.cd_size) + " bytes");
  return d;
}

// Replaces saturated 32-bit fields by the zip64 extra field's 64-bit values, which appear in
// a fixed order and only for the fields that are saturated.
Status ApplyZip64Extra(const uint8_t* extra, size_t len, uint64_t* usize, uint64_t* csize, uint64_t* offset,
                       const std::string& where) {
  const bool need_u = *usize == 0xffffffffu, need_c = *csize == 0xffffffffu, need_o = *offset == 0xffffffffu;
  if (!need_u && !need_c && !need_o) return Status::Ok();
  size_t p = 0;
  while (p + 4 <= len) {
    const uint16_t id = U16(extra + p), n = U16(extra + p + 2);
    if (p + 4 + n > len) break;
    if (id == 0x0001) {
      const uint8_t* f = extra + p + 4;
      size_t q = 0;
      auto take = [&](uint64_t* v) {
        if (q + 8 > n) return false;
        *v = U64(f + q);
        q += 8;
        return true;
      };
      if ((need_u && !take(usize)) || (need_c && !take(csize)) || (need_o && !take(offset)))
        return Status::Error(where + ": zip64 extra field too short");
      return Status::Ok();
    }
    p += 4 + size_t(n);
  }
  return Status::Error(where + ": sizes need a zip64 extra field, but there is none");
}

}  // namespace

Result<ZipArchive> ZipArchive::Parse(const uint8_t* data, size_t size, const std::string& file) {
  ASSIGN_OR_RETURN(Directory d, FindDirectory(data, size, file));
  ZipArchive z;
  z.data_ = data;
  z.entries_.reserve(size_t(d.entries));
  uint64_t p = d.cd_offset;
  const uint64_t cd_end = d.cd_offset + d.cd_size;
  for (uint64_t i = 0; i < d.entries; ++i) {
    const std::string at = file + ": zip central directory entry " + std::to_string(i);
    if (cd_end - p < kCentralHeaderSize || U32(data + p) != kCentralHeaderSig)
      return Status::Error(at + ": bad or truncated header at offset " + std::to_string(p));
    const uint8_t* h = data + p;
    const uint16_t flags = U16(h + 8), method = U16(h + 10);
    uint64_t csize = U32(h + 20), usize = U32(h + 24), offset = U32(h + 42);
    const size_t name_len = U16(h + 28), extra_len = U16(h + 30), comment_len = U16(h + 32);
    if (cd_end - p - kCentralHeaderSize < name_len + extra_len + comment_len)
      return Status::Error(at + ": name/extra/comment run past the central directory");
    ZipEntry e;
    e.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_len);
    const std::string where = file + ": zip entry '" + e.name + "'";
    RETURN_IF_ERROR(ApplyZip64Extra(h + kCentralHeaderSize + name_len, extra_len, &usize, &csize, &offset, where));
    if (flags & 1) return Status::Error(where + " is encrypted; not supported");
    if (method != 0)
      return Status::Error(where + " is compressed (method " + std::to_string(method) +
                           "); only stored (uncompressed) entries are supported, as torch.save writes them");
    if (csize != usize)
      return Status::Error(where + ": stored entry has compressed size " + std::to_string(csize) +
                           " != uncompressed size " + std::to_string(usize));
    // The local header may carry a different extra field (torch pads it to align the data),
    // so the data start comes from the local header itself.
    if (offset > size || size - offset < kLocalHeaderSize || U32(data + offset) != kLocalHeaderSig)
      return Status::Error(where + ": no local header at offset " + std::to_string(offset));
    const uint64_t start = offset + kLocalHeaderSize + U16(data + offset + 26) + U16(data + offset + 28);
    if (start > size || size - start < usize)
      return Status::Error(where + ": " + std::to_string(usize) + " bytes at offset " + std::to_string(start) +
                           " run past the end of the " + std::to_string(size) + "-byte file (truncated?)");
    e.data_offset = start;
    e.size = usize;
    z.entries_.push_back(std::move(e));
    p += kCentralHeaderSize + name_len + extra_len + comment_len;
  }
  std::sort(z.entries_.begin(), z.entries_.end(), [](const ZipEntry& a, const ZipEntry& b) { return a.name < b.name; });
  for (size_t i = 1; i < z.entries_.size(); ++i)
    if (z.entries_[i].name == z.entries_[i - 1].name)
      return Status::Error(file + ": zip entry '" + z.entries_[i].name + "' appears twice");
  return z;
}

const ZipEntry* ZipArchive::Find(std::string_view name) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), name,
                             [](const ZipEntry& e, std::string_view n) { return e.name < n; });
  if (it == entries_.end() || it->name != name) return nullptr;
  return &*it;
}

}  // namespace mamba2
