// PyTorch zip checkpoints: tiny files written by torch (tools/io/make_torch_fixtures.py)
// compared with the values that script wrote independently to *.expected.safetensors, plus
// values recomputed here from the formulas the script documents.
#include "io/torch_zip.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "io_test_util.h"

namespace mamba2 {
namespace {

using iotest::FixturePath;

struct Loaded {
  MappedFile map;
  TensorSet set;
  const StoredTensor* Get(const std::string& name) const {
    for (const StoredTensor& t : set.tensors)
      if (t.name == name) return &t;
    ADD_FAILURE() << "no tensor " << name;
    return nullptr;
  }
  bool InMap(const StoredTensor& t) const {
    auto* p = static_cast<const uint8_t*>(t.view.data);
    return p >= map.data() && p + t.view.nbytes() <= map.data() + map.size();
  }
};

Loaded LoadTorch(const std::string& fixture) {
  Loaded l;
  auto m = MappedFile::Open(FixturePath(fixture));
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return l;
  l.map = std::move(m).value();
  auto s = ResolveTorchZip(l.map.data(), l.map.size(), l.map.path());
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (s.ok()) l.set = std::move(s).value();
  return l;
}

Loaded LoadExpected(const std::string& fixture) {
  Loaded l;
  auto m = MappedFile::Open(FixturePath(fixture));
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return l;
  l.map = std::move(m).value();
  auto s = ResolveSafetensors(l.map.data(), l.map.size(), l.map.path());
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (s.ok()) l.set = std::move(s).value();
  return l;
}

void ExpectSameTensors(const Loaded& got, const Loaded& want) {
  ASSERT_EQ(got.set.tensors.size(), want.set.tensors.size());
  for (size_t i = 0; i < want.set.tensors.size(); ++i) {
    const StoredTensor& g = got.set.tensors[i];
    const StoredTensor& w = want.set.tensors[i];
    EXPECT_EQ(g.name, w.name) << "order differs at " << i;
    EXPECT_EQ(g.view.dtype, w.view.dtype) << w.name;
    EXPECT_EQ(g.view.shape, w.view.shape) << w.name << ": " << g.view.shape.str() << " vs " << w.view.shape.str();
    ASSERT_EQ(g.view.nbytes(), w.view.nbytes()) << w.name;
    EXPECT_EQ(std::memcmp(g.view.data, w.view.data, w.view.nbytes()), 0) << w.name << " values differ";
    EXPECT_EQ(reinterpret_cast<uintptr_t>(g.view.data) % DTypeSize(g.view.dtype), 0u) << w.name << " misaligned";
  }
}

struct Case {
  const char* bin;
  const char* expected;
};

class TorchFixtures : public ::testing::TestWithParam<Case> {};

TEST_P(TorchFixtures, MatchValuesWrittenByTheScript) {
  ExpectSameTensors(LoadTorch(GetParam().bin), LoadExpected(GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(All, TorchFixtures,
                         ::testing::Values(Case{"basic.bin", "basic.expected.safetensors"},
                                           Case{"proto4.bin", "proto4.expected.safetensors"},
                                           Case{"zip64.bin", "basic.expected.safetensors"},
                                           Case{"unaligned.bin", "basic.expected.safetensors"},
                                           Case{"module_fp16.bin", "module_fp16.expected.safetensors"},
                                           Case{"parameters.bin", "parameters.expected.safetensors"},
                                           Case{"torch2_style.bin", "torch2_style.expected.safetensors"}));

float F(const StoredTensor* t, size_t i) { return LoadAsF32(t->view.data, t->view.dtype, i); }

TEST(TorchZip, BasicValuesFromTheirFormulas) {
  Loaded l = LoadTorch("basic.bin");
  ASSERT_EQ(l.set.tensors.size(), 15u);
  const StoredTensor* f32 = l.Get("f32");
  EXPECT_EQ(f32->view.shape, (Shape{2, 3}));
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(F(f32, i), float(i) * 0.25f - 1.f);
  const StoredTensor* f16 = l.Get("f16");
  EXPECT_EQ(f16->view.dtype, DType::F16);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(F(f16, i), float(i) * 0.5f + 1.f);
  const StoredTensor* bf16 = l.Get("bf16");
  EXPECT_EQ(bf16->view.dtype, DType::BF16);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(F(bf16, i), float(i) - 2.f);
  EXPECT_EQ(l.Get("f64")->view.as<double>()[0], 1.0 / 3.0);
  EXPECT_EQ(l.Get("i32")->view.as<int32_t>()[3], 2147483647);
  EXPECT_EQ(l.Get("i64")->view.as<int64_t>()[0], -(int64_t(1) << 40));
  EXPECT_EQ(l.Get("scalar")->view.shape.ndim, 0);
  EXPECT_EQ(F(l.Get("scalar"), 0), 3.5f);
  EXPECT_EQ(l.Get("empty")->view.shape, (Shape{0, 3}));

  // Tied: one storage, two names, both views of the same bytes.
  const StoredTensor* emb = l.Get("emb.weight");
  const StoredTensor* head = l.Get("lm_head.weight");
  EXPECT_EQ(emb->view.data, head->view.data);
  EXPECT_TRUE(l.InMap(*emb));
  for (size_t i = 0; i < 15; ++i) EXPECT_EQ(F(head, i), float(i) / 8.f);

  // m[r, c] = 10r + c in a [3, 4] storage.
  const StoredTensor* tr = l.Get("transposed");
  EXPECT_EQ(tr->view.shape, (Shape{4, 3}));
  EXPECT_FALSE(l.InMap(*tr)) << "a transpose must be copied to be contiguous";
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(F(tr, size_t(i * 3 + j)), float(10 * j + i));
  const StoredTensor* rows = l.Get("row_slice");
  EXPECT_TRUE(l.InMap(*rows)) << "a contiguous slice stays a view";
  EXPECT_EQ(rows->view.shape, (Shape{2, 4}));
  for (int i = 0; i < 8; ++i) EXPECT_EQ(F(rows, size_t(i)), float(10 * (1 + i / 4) + i % 4));
  const StoredTensor* col = l.Get("col_slice");
  EXPECT_EQ(col->view.shape, (Shape{3}));
  EXPECT_FALSE(l.InMap(*col));
  for (int r = 0; r < 3; ++r) EXPECT_EQ(F(col, size_t(r)), float(10 * r + 2));
  const StoredTensor* sl = l.Get("slice");
  EXPECT_TRUE(l.InMap(*sl));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(F(sl, size_t(i)), float(105 + i));
  // permuted[c, a, b] = p[a, b, c] = 100a + 10b + c.
  const StoredTensor* pm = l.Get("permuted");
  EXPECT_EQ(pm->view.shape, (Shape{4, 2, 3}));
  EXPECT_EQ(pm->view.dtype, DType::F16);
  for (int c = 0; c < 4; ++c)
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 3; ++b) EXPECT_EQ(F(pm, size_t((c * 2 + a) * 3 + b)), float(100 * a + 10 * b + c));
}

TEST(TorchZip, ModuleStateDictWithTiedFp16Weights) {
  Loaded l = LoadTorch("module_fp16.bin");
  const StoredTensor* emb = l.Get("embedding.weight");
  const StoredTensor* head = l.Get("lm_head.weight");
  ASSERT_TRUE(emb && head);
  EXPECT_EQ(emb->view.dtype, DType::F16);
  EXPECT_EQ(emb->view.shape, (Shape{7, 4}));
  EXPECT_EQ(emb->view.data, head->view.data);
  EXPECT_EQ(l.Get("norm.bias")->view.shape, (Shape{4}));
}

TEST(TorchZip, UnalignedEntriesAreCopiedToAlignedMemory) {
  Loaded l = LoadTorch("unaligned.bin");
  for (const StoredTensor& t : l.set.tensors)
    if (t.view.numel() > 0) {
      EXPECT_FALSE(l.InMap(t)) << t.name;
    }
}

void ExpectLoadError(const std::string& bytes, std::initializer_list<std::string> fragments) {
  auto r = ResolveTorchZip(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "ckpt.bin");
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find("ckpt.bin"), std::string::npos) << m;
  for (const std::string& f : fragments) EXPECT_NE(m.find(f), std::string::npos) << "missing '" << f << "' in: " << m;
}

TEST(TorchZip, RefusesCompressedEntries) {
  ExpectLoadError(iotest::ReadFile(FixturePath("deflated.bin")), {"basic/data.pkl", "compressed (method 8)"});
}

TEST(TorchZip, RefusesBigEndian) {
  ExpectLoadError(iotest::ReadFile(FixturePath("bigendian.bin")), {"big-endian", "archive/byteorder"});
}

TEST(TorchZip, RefusesNonZipAndMissingPickle) {
  ExpectLoadError("not a zip at all, just some bytes", {"end-of-central-directory"});
  ExpectLoadError(iotest::BuildZip({{"root/other", "x"}}), {"data.pkl"});
  ExpectLoadError(iotest::BuildZip({{"a/data.pkl", "."}, {"b/data.pkl", "."}}), {"2 <root>/data.pkl"});
}

TEST(TorchZip, RefusesMissingStorageEntryNamingIt) {
  // Rename the central directory's copy of "basic/data/3" so the storage cannot be found.
  std::string b = iotest::ReadFile(FixturePath("basic.bin"));
  const size_t at = b.rfind("basic/data/3");
  ASSERT_NE(at, std::string::npos);
  b[at + 11] = 'Z';
  ExpectLoadError(b, {"basic/data/3", "missing"});
}

std::string Ckpt(const iotest::Pk& pkl, std::vector<std::pair<std::string, std::string>> storages) {
  storages.insert(storages.begin(), {"r/data.pkl", pkl.b});
  return iotest::BuildZip(storages);
}

TEST(TorchZip, RefusesStoragesSmallerThanClaimedOrViewsPastTheirStorage) {
  using iotest::Pk;
  const std::string eight(8, '\0');
  // The persistent id claims 4 floats but the entry holds 8 bytes.
  ExpectLoadError(Ckpt(Pk().proto(2).op('}').str("w").tensor_v2("FloatStorage", "0", 4, 0, {2}, {1}).op('s').stop(),
                       {{"r/data/0", eight}}),
                  {"'w'", "claims 16 bytes", "holds 8"});
  // A view reaching past its storage: offset 1 + 2 elements of a 2-element storage.
  ExpectLoadError(Ckpt(Pk().proto(2).op('}').str("w").tensor_v2("FloatStorage", "0", 2, 1, {2}, {1}).op('s').stop(),
                       {{"r/data/0", eight}}),
                  {"'w'", "reaches byte 12", "has 8 bytes"});
  ExpectLoadError(Ckpt(Pk().proto(2).op('}').str("w").tensor_v2("FloatStorage", "0", 2, 0, {2, 2}, {1, 1}).op('s').stop(),
                       {{"r/data/0", eight}}),
                  {"'w'", "reaches byte 12"});
  // Broadcast strides inside the storage are refused rather than multiplied out.
  ExpectLoadError(Ckpt(Pk().proto(2).op('}').str("w").tensor_v2("FloatStorage", "0", 2, 0, {1000, 2}, {0, 1}).op('s').stop(),
                       {{"r/data/0", eight}}),
                  {"'w'", "overlap or broadcast"});
  // Huge sizes must not overflow the extent computation.
  ExpectLoadError(Ckpt(Pk().proto(2).op('}').str("w").tensor_v2("FloatStorage", "0", 2, 0, {2147483647, 2147483647, 2147483647},
                                                                 {2147483647, 2147483647, 1}).op('s').stop(),
                       {{"r/data/0", eight}}),
                  {"'w'"});
}

TEST(TorchZip, HandMadeCheckpointWithStrangeRootLoads) {
  using iotest::Pk;
  const std::vector<float> v = {1.f, 2.f, 3.f, 4.f, 5.f, 6.f};
  auto bytes = Ckpt(Pk().proto(2).op('}').str("w").tensor_v2("FloatStorage", "s", 6, 0, {3, 2}, {1, 3}).op('s').stop(),
                    {{"r/data/s", iotest::Bytes(v)}, {"r/byteorder", "little\n"}});
  // Copy into aligned memory: the stored zip has no alignment padding.
  auto buf = AlignedBuffer::Allocate(bytes.size());
  ASSERT_TRUE(buf.ok());
  std::memcpy(buf->data(), bytes.data(), bytes.size());
  auto r = ResolveTorchZip(buf->data(), bytes.size(), "ckpt.bin");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const TensorView& w = r->tensors[0].view;
  EXPECT_EQ(w.shape, (Shape{3, 2}));
  const float want[] = {1, 4, 2, 5, 3, 6};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(w.as<float>()[i], want[i]);
}

TEST(TorchZip, EveryTruncationFailsCleanly) {
  const std::string b = iotest::ReadFile(FixturePath("basic.bin"));
  for (size_t n = 0; n < b.size(); ++n) {
    auto r = ResolveTorchZip(reinterpret_cast<const uint8_t*>(b.data()), n, "cut.bin");
    EXPECT_FALSE(r.ok()) << "a " << n << "-byte prefix loaded";
    if (r.ok()) break;
  }
}

TEST(TorchZip, FlippingAnyByteNeverCrashes) {
  // Data bytes may flip harmlessly; headers, pickle and sizes must fail cleanly (ASan checks).
  const std::string orig = iotest::ReadFile(FixturePath("basic.bin"));
  size_t failures = 0;
  for (size_t i = 0; i < orig.size(); ++i) {
    std::string b = orig;
    b[i] = char(b[i] ^ 0xff);
    auto buf = AlignedBuffer::Allocate(b.size());
    ASSERT_TRUE(buf.ok());
    std::memcpy(buf->data(), b.data(), b.size());
    auto r = ResolveTorchZip(buf->data(), b.size(), "flip.bin");
    if (!r.ok()) {
      ++failures;
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  EXPECT_GT(failures, 100u);
}

}  // namespace
}  // namespace mamba2
