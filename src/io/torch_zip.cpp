#include "io/torch_zip.h"

#include <cstring>
#include <string_view>

#include "io/checked_math.h"
#include "io/pickle.h"
#include "io/zip_reader.h"

namespace mamba2 {
namespace {

using io_detail::AddU64;
using io_detail::MulU64;

// torch names the root folder after the file (or "archive"), so find it from data.pkl.
Result<std::string> FindRoot(const ZipArchive& zip, const std::string& file) {
  std::string root;
  int found = 0;
  for (const ZipEntry& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    if (slash != std::string::npos && e.name.compare(slash, std::string::npos, "/data.pkl") == 0) {
      if (found++ == 0) root = e.name.substr(0, slash);
    }
  }
  if (found == 0)
    return Status::Error(file + ": zip has no <root>/data.pkl entry; not a PyTorch (>= 1.6) checkpoint");
  if (found > 1) return Status::Error(file + ": zip has " + std::to_string(found) + " <root>/data.pkl entries");
  return root;
}

Status CheckByteorder(const ZipArchive& zip, const std::string& root, const std::string& file) {
  const ZipEntry* e = zip.Find(root + "/byteorder");
  if (!e) return Status::Ok();  // torch before 2.1 wrote none, and only little-endian
  std::string_view v(reinterpret_cast<const char*>(zip.EntryData(*e)), size_t(e->size));
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' ')) v.remove_suffix(1);
  if (v == "little") return Status::Ok();
  if (v == "big") return Status::Error(file + ": checkpoint was saved big-endian (" + root + "/byteorder); not supported");
  return Status::Error(file + ": unrecognised " + root + "/byteorder '" + std::string(v.substr(0, 16)) + "'");
}

// Torch's contiguity: strides match row-major, ignoring dims of size 1 (their stride is moot).
bool IsContiguous(const PickledTensor& t) {
  int64_t expected = 1;
  for (size_t k = t.sizes.size(); k-- > 0;) {
    if (t.sizes[k] == 1) continue;
    if (t.strides[k] != expected) return false;
    expected *= t.sizes[k];
  }
  return true;
}

// Gathers a strided tensor into row-major order, one element at a time (rare, small tensors).
void GatherStrided(const uint8_t* base, const PickledTensor& t, size_t esize, uint8_t* dst) {
  const int nd = int(t.sizes.size());
  int64_t idx[kMaxDims] = {0, 0, 0, 0};
  uint64_t numel = 1;
  for (int64_t s : t.sizes) numel *= uint64_t(s);
  for (uint64_t i = 0; i < numel; ++i) {
    uint64_t off = 0;
    for (int k = 0; k < nd; ++k) off += uint64_t(idx[k]) * uint64_t(t.strides[k]);
    std::memcpy(dst + i * esize, base + off * esize, esize);
    for (int k = nd - 1; k >= 0; --k) {
      if (++idx[k] < t.sizes[k]) break;
      idx[k] = 0;
    }
  }
}

Status ResolveOne(const ZipArchive& zip, const std::string& root, const PickledTensor& t, const std::string& file,
                  TensorSet* set) {
  const std::string where = file + ": tensor '" + t.name + "'";
  const std::string entry_name = root + "/data/" + t.storage_key;
  const ZipEntry* e = zip.Find(entry_name);
  if (!e) return Status::Error(where + ": its storage entry " + entry_name + " is missing from the zip");
  if (t.storage_nbytes > e->size)
    return Status::Error(where + ": storage " + entry_name + " (" + t.storage_type + ") claims " +
                         std::to_string(t.storage_nbytes) + " bytes but the entry holds " + std::to_string(e->size));

  const size_t esize = DTypeSize(t.dtype);
  uint64_t numel = 1, last = uint64_t(t.storage_offset);  // last element touched, in elements
  bool ok = true;
  for (size_t k = 0; k < t.sizes.size(); ++k) {
    ok = ok && MulU64(numel, uint64_t(t.sizes[k]), &numel);
    uint64_t span = 0;
    if (t.sizes[k] > 0) ok = ok && MulU64(uint64_t(t.sizes[k] - 1), uint64_t(t.strides[k]), &span) && AddU64(last, span, &last);
  }
  uint64_t end_bytes = 0, nbytes = 0;
  ok = ok && numel <= uint64_t(INT64_MAX) && AddU64(last, 1, &end_bytes) && MulU64(end_bytes, esize, &end_bytes) &&
       MulU64(numel, esize, &nbytes);
  if (!ok) return Status::Error(where + ": size/stride/offset overflow");
  Shape shape;
  for (int64_t s : t.sizes) shape.dims[shape.ndim++] = s;
  const std::string layout = "size " + shape.str() + ", offset " + std::to_string(t.storage_offset);
  if (numel > 0 && end_bytes > t.storage_nbytes)
    return Status::Error(where + ": " + layout + " reaches byte " + std::to_string(end_bytes) + " of storage " +
                         entry_name + ", which has " + std::to_string(t.storage_nbytes) + " bytes");

  StoredTensor st;
  st.name = t.name;
  st.file = file;
  st.view.dtype = t.dtype;
  st.view.shape = shape;
  const uint8_t* base = zip.EntryData(*e);
  if (numel == 0 || IsContiguous(t)) {
    st.view.data = const_cast<uint8_t*>(base + (numel ? uint64_t(t.storage_offset) * esize : 0));
    // torch aligns entries to 64 bytes; a hand-made zip may not.
    if (reinterpret_cast<uintptr_t>(st.view.data) % esize != 0) {
      Status s = CopyIntoOwned(*set, st.view);
      if (!s.ok()) return s.With(where);
    }
  } else {
    // A copy is never larger than its storage unless strides overlap or broadcast, which a
    // state dict does not need; refusing them bounds memory by the file size.
    if (nbytes > t.storage_nbytes)
      return Status::Error(where + ": strides overlap or broadcast (" + layout + "), which is not supported");
    Result<AlignedBuffer> buf = AlignedBuffer::Allocate(size_t(nbytes));
    if (!buf.ok()) return buf.status().With(where);
    GatherStrided(base + uint64_t(t.storage_offset) * esize, t, esize, buf->data());
    st.view.data = buf->data();
    set->owned.push_back(std::move(buf).value());
  }
  set->tensors.push_back(std::move(st));
  return Status::Ok();
}

}  // namespace

Result<TensorSet> ResolveTorchZip(const uint8_t* data, size_t size, const std::string& file) {
  ASSIGN_OR_RETURN(ZipArchive zip, ZipArchive::Parse(data, size, file));
  ASSIGN_OR_RETURN(std::string root, FindRoot(zip, file));
  RETURN_IF_ERROR(CheckByteorder(zip, root, file));
  const ZipEntry* pkl = zip.Find(root + "/data.pkl");
  ASSIGN_OR_RETURN(std::vector<PickledTensor> tensors,
                   ParseTorchPickle(zip.EntryData(*pkl), size_t(pkl->size), file + " (" + pkl->name + ")"));
  TensorSet set;
  set.tensors.reserve(tensors.size());
  for (const PickledTensor& t : tensors) RETURN_IF_ERROR(ResolveOne(zip, root, t, file, &set));
  return set;
}

}  // namespace mamba2
