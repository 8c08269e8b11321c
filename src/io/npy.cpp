#include "io/npy.h"

#include "io/atomic_file.h"
#include "io/read_file.h"

#include <cstring>
#include <sstream>

namespace mamba2 {

Status WriteNpyF32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dims;
  int64_t n = 1;
  for (int64_t d : shape) {
    dims += std::to_string(d) + ",";
    n *= d;
  }
  if (shape.size() > 1) dims.pop_back();
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Magic (6) + version (2) + header length (2) + header, padded with spaces to 64 bytes, ending in \n.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  Result<AtomicFile> f = AtomicFile::Create(path);
  if (!f.ok()) return f.status();
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  const uint16_t hlen = uint16_t(header.size());
  RETURN_IF_ERROR(f->Append(magic, 8));
  RETURN_IF_ERROR(f->Append(&hlen, 2));
  RETURN_IF_ERROR(f->Append(header));
  RETURN_IF_ERROR(f->Append(data, size_t(n) * sizeof(float)));
  return f->Commit();
}

Result<NpyArray> ReadNpy(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string buf, ReadFile(path));
  if (buf.size() < 10 || buf.compare(0, 6, "\x93NUMPY") != 0) return Status::Error(path + ": not a .npy file");
  size_t hlen = 0, hstart = 0;
  if (buf[6] == 1) {
    hlen = uint8_t(buf[8]) | (size_t(uint8_t(buf[9])) << 8);
    hstart = 10;
  } else {
    if (buf.size() < 12) return Status::Error(path + ": truncated .npy header");
    hlen = uint8_t(buf[8]) | (size_t(uint8_t(buf[9])) << 8) | (size_t(uint8_t(buf[10])) << 16) |
           (size_t(uint8_t(buf[11])) << 24);
    hstart = 12;
  }
  if (hstart + hlen > buf.size()) return Status::Error(path + ": truncated .npy header");
  const std::string header = buf.substr(hstart, hlen);
  size_t elem = 0;
  if (header.find("'<f4'") != std::string::npos) elem = 4;
  else if (header.find("'<f8'") != std::string::npos) elem = 8;
  else return Status::Error(path + ": only little-endian float32/float64 .npy is supported");
  if (header.find("'fortran_order': True") != std::string::npos)
    return Status::Error(path + ": Fortran-order arrays are not supported");
  NpyArray out;
  const size_t open = header.find('(', header.find("'shape'"));
  const size_t close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos) return Status::Error(path + ": no shape in header");
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  std::string tok;
  int64_t n = 1;
  while (std::getline(dims, tok, ',')) {
    if (tok.find_first_not_of(' ') == std::string::npos) continue;
    out.shape.push_back(std::stoll(tok));
    n *= out.shape.back();
  }
  const size_t data_start = hstart + hlen;
  if (buf.size() - data_start < size_t(n) * elem)
    return Status::Error(path + ": data shorter than shape says");
  out.data.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    if (elem == 4) {
      float v;
      std::memcpy(&v, buf.data() + data_start + size_t(i) * 4, 4);
      out.data[size_t(i)] = v;
    } else {
      std::memcpy(&out.data[size_t(i)], buf.data() + data_start + size_t(i) * 8, 8);
    }
  }
  return out;
}

}  // namespace mamba2
