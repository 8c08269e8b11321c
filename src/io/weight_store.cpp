#include "io/weight_store.h"

#include <sys/stat.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "io/safetensors.h"
#include "io/torch_zip.h"

namespace mamba2 {
namespace {

bool IsFile(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

bool IsZip(const MappedFile& f) { return f.size() >= 4 && std::memcmp(f.data(), "PK\x03\x04", 4) == 0; }

}  // namespace

Status WeightStore::Add(TensorSet set) {
  for (StoredTensor& t : set.tensors) {
    auto [it, fresh] = index_.emplace(t.name, tensors_.size());
    if (!fresh)
      return Status::Error("tensor '" + t.name + "' appears in both " + tensors_[it->second].file + " and " + t.file);
    tensors_.push_back(std::move(t));
  }
  for (AlignedBuffer& b : set.owned) owned_.push_back(std::move(b));
  return Status::Ok();
}

Status WeightStore::AddFile(const std::string& path) {
  ASSIGN_OR_RETURN(MappedFile f, MappedFile::Open(path));
  // torch.save before 1.6 (or with _use_new_zipfile_serialization=False) writes a bare pickle.
  // A safetensors header length can start with the same two bytes (e.g. 640 = 0x80 0x02), so
  // a file whose JSON header opens at byte 8 is safetensors whatever its first bytes are.
  const bool safetensors_header = f.size() >= 9 && f.data()[8] == '{';
  if (!safetensors_header && f.size() >= 2 && f.data()[0] == 0x80 && f.data()[1] <= 5)
    return Status::Error(path + ": legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with "
                                "torch >= 1.6 or convert it to safetensors");
  Result<TensorSet> set = IsZip(f) ? ResolveTorchZip(f.data(), f.size(), path)
                                   : ResolveSafetensors(f.data(), f.size(), path);
  if (!set.ok()) return set.status();
  // The views point into the mapping, whose address survives this move.
  files_.push_back(std::move(f));
  return Add(std::move(set).value());
}

Result<WeightStore> WeightStore::OpenIndex(const std::string& index_path) {
  ASSIGN_OR_RETURN(MappedFile f, MappedFile::Open(index_path));
  nlohmann::json j;
  try {
    const char* p = reinterpret_cast<const char*>(f.data());
    j = nlohmann::json::parse(p, p + f.size());
  } catch (const std::exception& ex) {
    return Status::Error(index_path + ": not valid JSON: " + ex.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    return Status::Error(index_path + ": expected a JSON object with a \"weight_map\" object");
  const nlohmann::json& map = j["weight_map"];

  // Sorted by name, which is shard order for the usual model-0000k-of-0000n names.
  std::set<std::string> shards;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it.value().is_string())
      return Status::Error(index_path + ": weight_map entry for '" + it.key() + "' is not a file name");
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard[0] == '/' || shard == ".." || shard.rfind("../", 0) == 0 ||
        shard.find("/../") != std::string::npos)
      return Status::Error(index_path + ": weight_map entry for '" + it.key() + "' names '" + shard +
                           "', which is not a file next to the index");
    shards.insert(shard);
  }
  if (shards.empty()) return Status::Error(index_path + ": weight_map is empty");

  WeightStore ws;
  const std::string dir = DirOf(index_path);
  for (const std::string& shard : shards) {
    const std::string path = dir + "/" + shard;
    if (!IsFile(path)) return Status::Error(index_path + ": shard " + path + " is missing");
    Status st = ws.AddFile(path);
    if (!st.ok()) return st;
  }
  for (auto it = map.begin(); it != map.end(); ++it) {
    const std::string shard = dir + "/" + it.value().get<std::string>();
    const StoredTensor* t = ws.Find(it.key());
    if (!t) return Status::Error(index_path + ": tensor '" + it.key() + "' is listed but missing from " + shard);
    if (t->file != shard)
      return Status::Error(index_path + ": tensor '" + it.key() + "' is listed in " + shard + " but found in " + t->file);
  }
  const bool zip = ws.files_.empty() ? false : IsZip(ws.files_[0]);
  ws.format_ = std::string(zip ? "pytorch zip" : "safetensors") + " (" + std::to_string(shards.size()) + " shards)";
  return ws;
}

Result<WeightStore> WeightStore::OpenFile(const std::string& path) {
  if (EndsWith(path, ".index.json")) return OpenIndex(path);
  WeightStore ws;
  RETURN_IF_ERROR(ws.AddFile(path));
  ws.format_ = IsZip(ws.files_[0]) ? "pytorch zip" : "safetensors";
  return ws;
}

WeightStore WeightStore::FromTensorSet(TensorSet set, std::string format) {
  WeightStore ws;
  const Status st = ws.Add(std::move(set));
  CHECK_MSG(st.ok(), st.message());
  ws.format_ = std::move(format);
  return ws;
}

Result<WeightStore> WeightStore::OpenDir(const std::string& dir) {
  static const char* const kCandidates[] = {
      "model.safetensors",    "model.safetensors.index.json", "consolidated.safetensors",
      "pytorch_model.bin",    "pytorch_model.bin.index.json",
  };
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return Status::Error("cannot open model directory " + dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return Status::Error(dir + " is not a directory");
  for (const char* name : kCandidates) {
    const std::string path = dir + "/" + name;
    if (IsFile(path)) return OpenFile(path);
  }
  return Status::Error(dir + ": no weights found (looked for model.safetensors, model.safetensors.index.json, "
                             "consolidated.safetensors, pytorch_model.bin, pytorch_model.bin.index.json)");
}

const StoredTensor* WeightStore::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

size_t WeightStore::total_bytes() const {
  size_t n = 0;
  for (const StoredTensor& t : tensors_) n += t.view.nbytes();
  return n;
}

}  // namespace mamba2
