// Helpers shared by the io tests: temp dirs, whole-file IO and an independent safetensors writer.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace mamba2::iotest {

inline std::string FixturePath(const std::string& name) { return std::string(MAMBA2_TEST_DATA) + "/io/" + name; }

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot read " << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(f.good()) << "cannot write " << path;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "mamba2_io_XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p) path_ = p;
    EXPECT_NE(p, nullptr);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

template <typename T>
std::string Bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

struct StEntry {
  std::string name;
  std::string dtype;  // safetensors spelling, e.g. "F32"
  std::vector<int64_t> shape;
  std::string bytes;
};

inline std::string U64Le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return s;
}

// header_json as is, preceded by its length and followed by data.
inline std::string RawSafetensors(const std::string& header_json, const std::string& data) {
  return U64Le(header_json.size()) + header_json + data;
}

// Writes entries back to back in the given order. The header is padded with spaces to a
// multiple of `pad` (1 = no padding, which leaves the data misaligned in general).
inline std::string BuildSafetensors(const std::vector<StEntry>& entries, size_t pad = 8,
                                    const std::string& metadata = "") {
  std::string h = "{";
  if (!metadata.empty()) h += "\"__metadata__\":" + metadata;
  std::string data;
  for (const StEntry& e : entries) {
    if (h.size() > 1) h += ",";
    h += "\"" + e.name + "\":{\"dtype\":\"" + e.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < e.shape.size(); ++i) {
      if (i) h += ",";
      h += std::to_string(e.shape[i]);
    }
    h += "],\"data_offsets\":[" + std::to_string(data.size()) + "," + std::to_string(data.size() + e.bytes.size()) +
         "]}";
    data += e.bytes;
  }
  h += "}";
  while ((8 + h.size()) % pad != 0) h += " ";
  return RawSafetensors(h, data);
}

// Assembles pickle bytes opcode by opcode.
struct Pk {
  std::string b;
  Pk& op(uint8_t o) { b += char(o); return *this; }
  Pk& raw(const std::string& s) { b += s; return *this; }
  Pk& u32(uint32_t v) { for (int i = 0; i < 4; ++i) b += char((v >> (8 * i)) & 0xff); return *this; }
  Pk& proto(uint8_t v) { return op(0x80).op(v); }
  Pk& global(const std::string& m, const std::string& n) { return op('c').raw(m + "\n" + n + "\n"); }
  Pk& str(const std::string& s) { return op('X').u32(uint32_t(s.size())).raw(s); }
  Pk& int1(uint8_t v) { return op('K').op(v); }
  Pk& binint(int32_t v) { return op('J').u32(uint32_t(v)); }
  Pk& mark() { return op('('); }
  Pk& tuple() { return op('t'); }
  Pk& put(uint8_t i) { return op('q').op(i); }
  Pk& get(uint8_t i) { return op('h').op(i); }
  Pk& reduce() { return op('R'); }
  Pk& stop() { return op('.'); }
  Pk& ints(std::initializer_list<int> v) {  // a tuple of small ints
    mark();
    for (int x : v) binint(x);
    return tuple();
  }
  Pk& ordered_dict() { return global("collections", "OrderedDict").op(')').reduce(); }
  // ('storage', torch.<type>, key, 'cpu', numel) via BINPERSID
  Pk& storage(const std::string& type, const std::string& key, int numel) {
    mark().str("storage").global("torch", type).str(key).str("cpu").binint(numel).tuple();
    return op('Q');
  }
  Pk& tensor_v2(const std::string& type, const std::string& key, int numel, int offset,
                std::initializer_list<int> size, std::initializer_list<int> stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    storage(type, key, numel).binint(offset).ints(size).ints(stride).op(0x89);
    ordered_dict();
    return tuple().reduce();
  }
};

// A zip of STORED entries (CRCs left 0: the reader does not check them).
inline std::string BuildZip(const std::vector<std::pair<std::string, std::string>>& entries) {
  auto u16 = [](std::string& s, uint16_t v) { s += char(v & 0xff); s += char(v >> 8); };
  auto u32 = [](std::string& s, uint32_t v) { for (int i = 0; i < 4; ++i) s += char((v >> (8 * i)) & 0xff); };
  std::string out, cd;
  for (const auto& [name, data] : entries) {
    const uint32_t offset = uint32_t(out.size());
    u32(out, 0x04034b50); u16(out, 20); u16(out, 0); u16(out, 0); u16(out, 0); u16(out, 0);
    u32(out, 0); u32(out, uint32_t(data.size())); u32(out, uint32_t(data.size()));
    u16(out, uint16_t(name.size())); u16(out, 0);
    out += name + data;
    u32(cd, 0x02014b50); u16(cd, 20); u16(cd, 20); u16(cd, 0); u16(cd, 0); u16(cd, 0); u16(cd, 0);
    u32(cd, 0); u32(cd, uint32_t(data.size())); u32(cd, uint32_t(data.size()));
    u16(cd, uint16_t(name.size())); u16(cd, 0); u16(cd, 0); u16(cd, 0); u16(cd, 0); u32(cd, 0); u32(cd, offset);
    cd += name;
  }
  const uint32_t cd_offset = uint32_t(out.size());
  out += cd;
  u32(out, 0x06054b50); u16(out, 0); u16(out, 0); u16(out, uint16_t(entries.size())); u16(out, uint16_t(entries.size()));
  u32(out, uint32_t(cd.size())); u32(out, cd_offset); u16(out, 0);
  return out;
}

}  // namespace mamba2::iotest
