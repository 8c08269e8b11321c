#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "io/checked_math.h"

namespace mamba2 {
namespace {

using io_detail::CheckedNumel;
using io_detail::MulU64;
using json = nlohmann::json;

bool DTypeFromSafetensors(const std::string& s, DType* out) {
  if (s == "F32") *out = DType::F32;
  else if (s == "F16") *out = DType::F16;
  else if (s == "BF16") *out = DType::BF16;
  else if (s == "F64") *out = DType::F64;
  else if (s == "I32") *out = DType::I32;
  else if (s == "I64") *out = DType::I64;
  else return false;
  return true;
}

std::string Where(const std::string& file, const std::string& name) {
  return file + ": tensor '" + name + "'";
}

// Shows a value in messages without recursing into it (headers can nest arbitrarily deep):
// flat arrays of numbers in full, anything else by type.
std::string Dump(const json& j) {
  if (j.is_number_unsigned()) return std::to_string(j.get<uint64_t>());
  if (j.is_number_integer()) return std::to_string(j.get<int64_t>());
  if (j.is_array()) {
    std::string s = "[";
    for (size_t i = 0; i < j.size(); ++i) {
      if (i == 8) return s + ", ...]";
      const json& e = j[i];
      s += (i ? ", " : "") + (e.is_number_integer() ? Dump(e) : std::string(e.type_name()));
    }
    return s + "]";
  }
  return j.type_name();
}

Status ParseEntry(const std::string& file, const std::string& name, const json& info, uint64_t data_start,
                  uint64_t data_size, SafetensorsEntry* e) {
  const std::string where = Where(file, name);
  if (!info.is_object()) return Status::Error(where + ": header entry must be an object, found " + Dump(info));
  e->name = name;

  auto dt = info.find("dtype");
  if (dt == info.end() || !dt->is_string()) return Status::Error(where + ": missing or non-string \"dtype\"");
  const std::string dts = dt->get<std::string>();
  if (!DTypeFromSafetensors(dts, &e->dtype))
    return Status::Error(where + ": dtype " + dts + " is not supported (supported: F32, F16, BF16, F64, I32, I64)");

  auto sh = info.find("shape");
  if (sh == info.end() || !sh->is_array()) return Status::Error(where + ": missing or non-array \"shape\"");
  if (sh->size() > size_t(kMaxDims))
    return Status::Error(where + ": shape " + Dump(*sh) + " has " + std::to_string(sh->size()) +
                         " dims, at most " + std::to_string(kMaxDims) + " are supported");
  e->shape = Shape();
  for (const json& d : *sh) {
    if (!d.is_number_integer()) return Status::Error(where + ": shape " + Dump(*sh) + " holds a non-integer");
    if (d.is_number_unsigned()) {
      const uint64_t u = d.get<uint64_t>();
      if (u > uint64_t(INT64_MAX)) return Status::Error(where + ": shape " + Dump(*sh) + " dim too large");
      e->shape.dims[e->shape.ndim++] = int64_t(u);
    } else {
      const int64_t v = d.get<int64_t>();
      if (v < 0) return Status::Error(where + ": shape " + Dump(*sh) + " has a negative dim");
      e->shape.dims[e->shape.ndim++] = v;
    }
  }
  uint64_t numel = 0, nbytes = 0;
  if (!CheckedNumel(e->shape.dims.data(), e->shape.ndim, &numel) || !MulU64(numel, DTypeSize(e->dtype), &nbytes))
    return Status::Error(where + ": shape " + e->shape.str() + " overflows the element count");

  auto off = info.find("data_offsets");
  if (off == info.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    return Status::Error(where + ": \"data_offsets\" must be [begin, end] with non-negative integers, found " +
                         (off == info.end() ? std::string("nothing") : Dump(*off)));
  const uint64_t b = (*off)[0].get<uint64_t>(), en = (*off)[1].get<uint64_t>();
  const std::string range = "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "]";
  if (en < b) return Status::Error(where + ": " + range + " ends before it begins");
  if (en > data_size)
    return Status::Error(where + ": " + range + " runs past the end of the data section (" +
                         std::to_string(data_size) + " bytes; file truncated?)");
  if (en - b != nbytes)
    return Status::Error(where + ": " + range + " holds " + std::to_string(en - b) + " bytes but shape " +
                         e->shape.str() + " x " + dts + " needs " + std::to_string(nbytes));
  e->begin = data_start + b;
  e->end = data_start + en;
  return Status::Ok();
}

}  // namespace

Result<std::vector<SafetensorsEntry>> ParseSafetensorsHeader(const uint8_t* data, size_t size,
                                                             const std::string& file) {
  if (size < 8)
    return Status::Error(file + ": " + std::to_string(size) + " bytes is too small for a safetensors file");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > size - 8)
    return Status::Error(file + ": safetensors header length " + std::to_string(n) + " runs past the end of the " +
                         std::to_string(size) + "-byte file (truncated, or not a safetensors file)");
  if (n < 2) return Status::Error(file + ": safetensors header of " + std::to_string(n) + " bytes cannot be a JSON object");
  const uint64_t data_start = 8 + n;
  const uint64_t data_size = size - data_start;

  const char* hb = reinterpret_cast<const char*>(data + 8);
  json header;
  try {
    header = json::parse(hb, hb + n);
  } catch (const std::exception& ex) {
    return Status::Error(file + ": safetensors header is not valid JSON: " + ex.what());
  }
  if (!header.is_object())
    return Status::Error(file + ": safetensors header must be a JSON object, found " + std::string(header.type_name()));

  std::vector<SafetensorsEntry> entries;
  entries.reserve(header.size());
  try {
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") continue;  // free-form strings; nothing we need
      SafetensorsEntry e;
      RETURN_IF_ERROR(ParseEntry(file, it.key(), it.value(), data_start, data_size, &e));
      entries.push_back(std::move(e));
    }
  } catch (const std::exception& ex) {
    return Status::Error(file + ": malformed safetensors header: " + ex.what());
  }

  std::stable_sort(entries.begin(), entries.end(),
                   [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
                     // Empty tensors sharing a begin go first, as a sequential writer puts them.
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  // Sorted by begin, ranges are disjoint iff each non-empty one starts at or after the
  // furthest end seen so far.
  const SafetensorsEntry* furthest = nullptr;
  for (const SafetensorsEntry& e : entries) {
    if (e.begin == e.end) continue;
    if (furthest && e.begin < furthest->end)
      return Status::Error(Where(file, e.name) + ": data_offsets [" + std::to_string(e.begin - data_start) + ", " +
                           std::to_string(e.end - data_start) + "] overlap tensor '" + furthest->name + "' [" +
                           std::to_string(furthest->begin - data_start) + ", " +
                           std::to_string(furthest->end - data_start) + "]");
    if (!furthest || e.end > furthest->end) furthest = &e;
  }
  return entries;
}

Result<TensorSet> ResolveSafetensors(const uint8_t* data, size_t size, const std::string& file) {
  ASSIGN_OR_RETURN(std::vector<SafetensorsEntry> entries, ParseSafetensorsHeader(data, size, file));
  TensorSet set;
  set.tensors.reserve(entries.size());
  for (SafetensorsEntry& e : entries) {
    StoredTensor t;
    t.name = std::move(e.name);
    t.file = file;
    t.view.dtype = e.dtype;
    t.view.shape = e.shape;
    t.view.data = const_cast<uint8_t*>(data + e.begin);
    // The header length is arbitrary, so the data need not be aligned; kernels assume it is.
    if (reinterpret_cast<uintptr_t>(t.view.data) % DTypeSize(e.dtype) != 0) {
      Status st = CopyIntoOwned(set, t.view);
      if (!st.ok()) return st.With(Where(file, t.name));
    }
    set.tensors.push_back(std::move(t));
  }
  return set;
}

}  // namespace mamba2
