#include "lib/model_writer.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"

namespace mamba2::bench {
namespace {

const char* SafetensorsDType(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  return "?";
}

}  // namespace

Status WriteModelDir(const std::string& dir, const std::string& config_json, const TensorSet& set) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return Status::Error("cannot create " + dir + ": " + std::strerror(errno));
  nlohmann::json header = nlohmann::json::object();
  std::vector<const StoredTensor*> order;
  std::set<const void*> seen;
  size_t offset = 0;
  for (const StoredTensor& t : set.tensors) {
    if (!seen.insert(t.view.data).second) continue;
    std::vector<int64_t> shape(t.view.shape.dims.begin(), t.view.shape.dims.begin() + t.view.shape.ndim);
    header[t.name] = {{"dtype", SafetensorsDType(t.view.dtype)},
                      {"shape", shape},
                      {"data_offsets", {offset, offset + t.view.nbytes()}}};
    offset += t.view.nbytes();
    order.push_back(&t);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data starts 8-aligned
  // The weights first, then config.json: a folder missing its config is not taken for a model.
  Result<AtomicFile> f = AtomicFile::Create(dir + "/model.safetensors");
  if (!f.ok()) return f.status();
  const uint64_t n = h.size();
  RETURN_IF_ERROR(f->Append(&n, 8));
  RETURN_IF_ERROR(f->Append(h));
  for (const StoredTensor* t : order) RETURN_IF_ERROR(f->Append(t->view.data, t->view.nbytes()));
  RETURN_IF_ERROR(f->Commit());
  return WriteFileAtomic(dir + "/config.json", config_json + "\n");
}

}  // namespace mamba2::bench
