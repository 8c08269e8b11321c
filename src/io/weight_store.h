// The one entry point the model uses to get at checkpoint tensors, whatever the file format.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "io/mapped_file.h"
#include "io/stored_tensor.h"

namespace mamba2 {

class WeightStore {
 public:
  // dir holds one of, checked in this order: model.safetensors; model.safetensors.index.json
  // plus its shards; consolidated.safetensors; pytorch_model.bin; pytorch_model.bin.index.json
  // plus its shards.
  static Result<WeightStore> OpenDir(const std::string& dir);
  // A single .safetensors file, a torch zip (.bin/.pt, recognised by its zip magic), or a
  // *.index.json naming shards next to it.
  static Result<WeightStore> OpenFile(const std::string& path);
  // Tensors built in memory (random weights for benchmarks); `format` is what format() reports.
  // The set is made by code, so a name given twice is a programmer error (CHECK).
  static WeightStore FromTensorSet(TensorSet set, std::string format);

  WeightStore() = default;
  WeightStore(WeightStore&&) noexcept = default;
  WeightStore& operator=(WeightStore&&) noexcept = default;
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  const StoredTensor* Find(std::string_view name) const;  // nullptr if absent
  // In file order (shard by shard), each name once.
  const std::vector<StoredTensor>& tensors() const { return tensors_; }
  // "safetensors", "safetensors (N shards)", "pytorch zip", "pytorch zip (N shards)".
  std::string format() const { return format_; }
  // Sum of every tensor's nbytes (tied tensors count once per name).
  size_t total_bytes() const;

 private:
  static Result<WeightStore> OpenIndex(const std::string& index_path);
  Status AddFile(const std::string& path);
  Status Add(TensorSet set);

  std::vector<MappedFile> files_;     // keep the views' bytes mapped
  std::vector<AlignedBuffer> owned_;  // copies for tensors that could not be views
  std::vector<StoredTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::string format_;
};

}  // namespace mamba2
