// WeightStore: format detection, sharded checkpoints, lookups and lifetime.
#include "io/weight_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <utility>

#include "io_test_util.h"

namespace mamba2 {
namespace {

using iotest::BuildSafetensors;
using iotest::Bytes;
using iotest::TempDir;

std::string OneF32(const std::string& name, std::vector<float> v) {
  return BuildSafetensors({{name, "F32", {int64_t(v.size())}, Bytes(v)}});
}

void ExpectError(const Result<WeightStore>& r, std::initializer_list<std::string> fragments) {
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  for (const std::string& f : fragments) EXPECT_NE(m.find(f), std::string::npos) << "missing '" << f << "' in: " << m;
}

TEST(WeightStore, OpensSingleSafetensorsAndFindsByName) {
  TempDir d;
  iotest::WriteFile(d / "model.safetensors", BuildSafetensors({{"a", "F32", {2}, Bytes(std::vector<float>{1, 2})},
                                                               {"b", "F16", {1}, Bytes(std::vector<uint16_t>{0x3c00})}}));
  auto r = WeightStore::OpenDir(d.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format(), "safetensors");
  EXPECT_EQ(r->tensors().size(), 2u);
  EXPECT_EQ(r->total_bytes(), 10u);
  const StoredTensor* a = r->Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->view.as<float>()[1], 2.f);
  EXPECT_EQ(a->file, d / "model.safetensors");
  EXPECT_EQ(r->Find("missing"), nullptr);
  EXPECT_EQ(r->Find(std::string_view("abc", 1)), a);
}

TEST(WeightStore, StaysValidAfterMovesAndFileRemoval) {
  TempDir d;
  iotest::WriteFile(d / "w.safetensors", OneF32("x", {4, 5, 6}));
  auto r = WeightStore::OpenFile(d / "w.safetensors");
  ASSERT_TRUE(r.ok()) << r.status().message();
  WeightStore a = std::move(r).value();
  const void* p = a.Find("x")->view.data;
  WeightStore b = std::move(a);
  std::vector<WeightStore> v;
  v.push_back(std::move(b));
  std::filesystem::remove(d / "w.safetensors");  // the mapping keeps the bytes
  const StoredTensor* x = v[0].Find("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->view.data, p);
  EXPECT_EQ(x->view.as<float>()[2], 6.f);
}

TEST(WeightStore, PrefersFormatsInOrder) {
  TempDir d;
  std::filesystem::copy_file(iotest::FixturePath("module_fp16.bin"), d / "pytorch_model.bin");
  iotest::WriteFile(d / "consolidated.safetensors", OneF32("consolidated", {1}));
  auto r = WeightStore::OpenDir(d.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NE(r->Find("consolidated"), nullptr);
  iotest::WriteFile(d / "model.safetensors", OneF32("single", {1}));
  r = WeightStore::OpenDir(d.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NE(r->Find("single"), nullptr);
  EXPECT_EQ(r->Find("consolidated"), nullptr);
}

TEST(WeightStore, OpensPytorchZip) {
  TempDir d;
  std::filesystem::copy_file(iotest::FixturePath("basic.bin"), d / "pytorch_model.bin");
  auto r = WeightStore::OpenDir(d.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format(), "pytorch zip");
  EXPECT_EQ(r->tensors().size(), 15u);
  const StoredTensor* t = r->Find("transposed");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(LoadAsF32(t->view.data, t->view.dtype, 1), 10.f);  // transposed[0][1] = m[1][0]
  EXPECT_EQ(r->Find("emb.weight")->view.data, r->Find("lm_head.weight")->view.data);
  // Also through OpenFile, whatever the extension.
  std::filesystem::copy_file(iotest::FixturePath("basic.bin"), d / "weights.pt");
  EXPECT_TRUE(WeightStore::OpenFile(d / "weights.pt").ok());
}

void WriteShards(const TempDir& d, const std::string& map_json) {
  iotest::WriteFile(d / "model-00001-of-00002.safetensors",
                    BuildSafetensors({{"layer.0", "F32", {2}, Bytes(std::vector<float>{1, 2})},
                                      {"embed", "F32", {1}, Bytes(std::vector<float>{9})}}));
  iotest::WriteFile(d / "model-00002-of-00002.safetensors", OneF32("layer.1", {3, 4}));
  iotest::WriteFile(d / "model.safetensors.index.json",
                    "{\"metadata\": {\"total_size\": 20}, \"weight_map\": " + map_json + "}");
}

TEST(WeightStore, OpensShardedSafetensors) {
  TempDir d;
  WriteShards(d, "{\"layer.0\": \"model-00001-of-00002.safetensors\", \"embed\": \"model-00001-of-00002.safetensors\","
                 " \"layer.1\": \"model-00002-of-00002.safetensors\"}");
  auto r = WeightStore::OpenDir(d.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format(), "safetensors (2 shards)");
  ASSERT_EQ(r->tensors().size(), 3u);
  EXPECT_EQ(r->Find("layer.1")->view.as<float>()[1], 4.f);
  EXPECT_EQ(r->Find("layer.1")->file, d / "model-00002-of-00002.safetensors");
  EXPECT_EQ(r->Find("embed")->view.as<float>()[0], 9.f);
}

TEST(WeightStore, OpensShardedPytorchZips) {
  TempDir d;
  std::filesystem::copy_file(iotest::FixturePath("basic.bin"), d / "pytorch_model-00001-of-00002.bin");
  std::filesystem::copy_file(iotest::FixturePath("parameters.bin"), d / "pytorch_model-00002-of-00002.bin");
  iotest::WriteFile(d / "pytorch_model.bin.index.json",
                    "{\"weight_map\": {\"f32\": \"pytorch_model-00001-of-00002.bin\","
                    " \"stateful\": \"pytorch_model-00002-of-00002.bin\"}}");
  auto r = WeightStore::OpenDir(d.path());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format(), "pytorch zip (2 shards)");
  EXPECT_EQ(r->tensors().size(), 17u);
  EXPECT_EQ(r->Find("stateful")->view.as<float>()[1], 4.f);
}

TEST(WeightStore, ShardErrorsNameTheFileAndTensor) {
  {
    TempDir d;
    WriteShards(d, "{\"layer.0\": \"model-00001-of-00002.safetensors\", \"gone\": \"model-00003-of-00003.safetensors\"}");
    ExpectError(WeightStore::OpenDir(d.path()), {"shard", d / "model-00003-of-00003.safetensors", "missing"});
  }
  {
    TempDir d;
    WriteShards(d, "{\"layer.0\": \"model-00001-of-00002.safetensors\", \"layer.9\": \"model-00002-of-00002.safetensors\"}");
    ExpectError(WeightStore::OpenDir(d.path()), {"'layer.9'", "missing from", d / "model-00002-of-00002.safetensors"});
  }
  {
    TempDir d;
    WriteShards(d, "{\"layer.1\": \"model-00001-of-00002.safetensors\", \"layer.0\": \"model-00002-of-00002.safetensors\"}");
    ExpectError(WeightStore::OpenDir(d.path()), {"'layer.0'", "listed in", "found in"});
  }
  {
    TempDir d;
    WriteShards(d, "{\"layer.0\": \"../model-00001-of-00002.safetensors\"}");
    ExpectError(WeightStore::OpenDir(d.path()), {"'layer.0'", "not a file next to the index"});
  }
  {
    TempDir d;
    iotest::WriteFile(d / "a.safetensors", OneF32("dup", {1}));
    iotest::WriteFile(d / "b.safetensors", OneF32("dup", {2}));
    iotest::WriteFile(d / "model.safetensors.index.json",
                      "{\"weight_map\": {\"dup\": \"a.safetensors\", \"x\": \"b.safetensors\"}}");
    ExpectError(WeightStore::OpenDir(d.path()), {"'dup'", "appears in both", "a.safetensors", "b.safetensors"});
  }
  {
    TempDir d;
    iotest::WriteFile(d / "model.safetensors.index.json", "{\"weight_map\": [1, 2]}");
    ExpectError(WeightStore::OpenDir(d.path()), {"model.safetensors.index.json", "weight_map"});
  }
}

TEST(WeightStore, CorruptShardIsNamed) {
  TempDir d;
  WriteShards(d, "{\"layer.0\": \"model-00001-of-00002.safetensors\", \"layer.1\": \"model-00002-of-00002.safetensors\"}");
  iotest::WriteFile(d / "model-00002-of-00002.safetensors", "garbage!garbage!");
  ExpectError(WeightStore::OpenDir(d.path()), {d / "model-00002-of-00002.safetensors"});
}

TEST(WeightStore, NamesTheLegacyTorchFormat) {
  TempDir d;
  iotest::WriteFile(d / "pytorch_model.bin", std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 14));
  ExpectError(WeightStore::OpenDir(d.path()), {d / "pytorch_model.bin", "legacy"});
}

TEST(WeightStore, DirectoryErrors) {
  TempDir d;
  ExpectError(WeightStore::OpenDir(d.path()), {d.path(), "no weights found", "model.safetensors", "pytorch_model.bin"});
  ExpectError(WeightStore::OpenDir(d / "nope"), {d / "nope"});
  ExpectError(WeightStore::OpenFile(d / "nope.safetensors"), {d / "nope.safetensors", "No such file"});
}

}  // namespace
}  // namespace mamba2
