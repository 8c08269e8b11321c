// safetensors reader: values from files written by an independent writer (io_test_util.h),
// and one clear error for each kind of corrupt header.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "io/mapped_file.h"
#include "io_test_util.h"

namespace mamba2 {
namespace {

using iotest::BuildSafetensors;
using iotest::Bytes;
using iotest::RawSafetensors;
using iotest::StEntry;

Result<std::vector<SafetensorsEntry>> Parse(const std::string& file_bytes) {
  return ParseSafetensorsHeader(reinterpret_cast<const uint8_t*>(file_bytes.data()), file_bytes.size(),
                                "bad.safetensors");
}

// Expects failure with a message that names the file and contains every fragment.
void ExpectError(const std::string& file_bytes, std::initializer_list<std::string> fragments) {
  auto r = Parse(file_bytes);
  ASSERT_FALSE(r.ok()) << "parsed a corrupt file";
  const std::string msg = r.status().message();
  EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
  for (const std::string& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "missing '" << f << "' in: " << msg;
}

std::string OneTensorHeader(const std::string& body) { return "{\"t\":" + body + "}"; }

TEST(Safetensors, ReadsEveryDtypeAsViewsIntoTheMap) {
  const std::vector<float> f32 = {1.5f, -2.f, 3.25f, 0.f, 1e-3f, -7.f};
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x3800, 0x7bff};  // 1, -2, 0.5, 65504
  const std::vector<uint16_t> bf16 = {0x3f80, 0x4040, 0xbf00, 0x0000};  // 1, 3, -0.5, 0
  const std::vector<double> f64 = {1.0 / 3.0, -1e300};
  const std::vector<int32_t> i32 = {-5, 0, 2147483647};
  const std::vector<int64_t> i64 = {-(int64_t(1) << 50), 42};
  const std::vector<float> scalar = {9.5f};
  // Widest dtypes first keeps every tensor aligned, as the safetensors writer orders them.
  std::string file = BuildSafetensors({{"d.f64", "F64", {2}, Bytes(f64)},
                                       {"f.i64", "I64", {1, 2}, Bytes(i64)},
                                       {"a.f32", "F32", {2, 3}, Bytes(f32)},
                                       {"e.i32", "I32", {3}, Bytes(i32)},
                                       {"g.scalar", "F32", {}, Bytes(scalar)},
                                       {"h.empty", "F32", {0, 5}, ""},
                                       {"b.f16", "F16", {4}, Bytes(f16)},
                                       {"c.bf16", "BF16", {2, 2}, Bytes(bf16)}},
                                      8, "{\"format\":\"pt\"}");
  iotest::TempDir dir;
  iotest::WriteFile(dir / "m.safetensors", file);
  auto map = MappedFile::Open(dir / "m.safetensors");
  ASSERT_TRUE(map.ok()) << map.status().message();
  auto set = ResolveSafetensors(map->data(), map->size(), map->path());
  ASSERT_TRUE(set.ok()) << set.status().message();
  ASSERT_EQ(set->tensors.size(), 8u);
  EXPECT_TRUE(set->owned.empty()) << "aligned data should not be copied";
  std::map<std::string, const StoredTensor*> by;
  for (const StoredTensor& s : set->tensors) by[s.name] = &s;
  EXPECT_EQ(set->tensors[0].name, "d.f64");
  EXPECT_EQ(set->tensors[7].name, "c.bf16");
  const StoredTensor* t[8] = {by["a.f32"], by["b.f16"], by["c.bf16"], by["d.f64"],
                              by["e.i32"], by["f.i64"], by["g.scalar"], by["h.empty"]};
  for (const StoredTensor* p : t) ASSERT_NE(p, nullptr);
  for (const StoredTensor& s : set->tensors) {
    EXPECT_EQ(s.file, dir / "m.safetensors");
    if (s.view.numel() > 0) {
      EXPECT_GE(static_cast<const uint8_t*>(s.view.data), map->data());
      EXPECT_LE(static_cast<const uint8_t*>(s.view.data) + s.view.nbytes(), map->data() + map->size());
    }
  }
  EXPECT_EQ(t[0]->name, "a.f32");
  EXPECT_EQ(t[0]->view.dtype, DType::F32);
  EXPECT_EQ(t[0]->view.shape, (Shape{2, 3}));
  for (size_t i = 0; i < f32.size(); ++i) EXPECT_EQ(t[0]->view.as<float>()[i], f32[i]);
  EXPECT_EQ(t[1]->view.dtype, DType::F16);
  EXPECT_EQ(LoadAsF32(t[1]->view.data, DType::F16, 1), -2.f);
  EXPECT_EQ(LoadAsF32(t[1]->view.data, DType::F16, 3), 65504.f);
  EXPECT_EQ(t[2]->view.dtype, DType::BF16);
  EXPECT_EQ(LoadAsF32(t[2]->view.data, DType::BF16, 1), 3.f);
  EXPECT_EQ(LoadAsF32(t[2]->view.data, DType::BF16, 2), -0.5f);
  EXPECT_EQ(t[3]->view.dtype, DType::F64);
  EXPECT_EQ(t[3]->view.as<double>()[1], -1e300);
  EXPECT_EQ(t[4]->view.dtype, DType::I32);
  EXPECT_EQ(t[4]->view.as<int32_t>()[2], 2147483647);
  EXPECT_EQ(t[5]->view.dtype, DType::I64);
  EXPECT_EQ(t[5]->view.shape, (Shape{1, 2}));
  EXPECT_EQ(t[5]->view.as<int64_t>()[0], -(int64_t(1) << 50));
  EXPECT_EQ(t[6]->view.shape.ndim, 0);
  EXPECT_EQ(t[6]->view.numel(), 1);
  EXPECT_EQ(t[6]->view.as<float>()[0], 9.5f);
  EXPECT_EQ(t[7]->view.numel(), 0);
}

TEST(Safetensors, ReturnsTensorsInDataOrder) {
  // Header keys sort one way, the data another.
  const std::string h =
      "{\"z\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
  auto r = Parse(RawSafetensors(h, std::string(8, '\0')));
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].name, "z");
  EXPECT_EQ((*r)[1].name, "a");
  EXPECT_EQ((*r)[0].begin, 8 + h.size());
}

TEST(Safetensors, CopiesMisalignedTensorsToAlignedMemory) {
  const std::vector<float> a = {1.f, 2.f, 3.f};
  const std::vector<double> b = {-4.0, 5.5};
  // No header padding; pick a header length that leaves the data 1 byte past alignment.
  std::string file;
  for (int extra = 0; extra < 8; ++extra) {
    file = BuildSafetensors({{"a", "F32", {3}, Bytes(a)}, {"b", "F64", {2}, Bytes(b)}}, 1,
                            "{\"pad\":\"" + std::string(size_t(extra), 'x') + "\"}");
    const uint64_t hlen = uint64_t(uint8_t(file[0])) | (uint64_t(uint8_t(file[1])) << 8);
    if ((8 + hlen) % 8 == 1) break;
  }
  // From a 64-aligned base, data offset 8+hlen == 1 (mod 8) is misaligned for both dtypes.
  auto base = AlignedBuffer::Allocate(file.size());
  ASSERT_TRUE(base.ok());
  std::memcpy(base->data(), file.data(), file.size());
  auto set = ResolveSafetensors(base->data(), file.size(), "mis.safetensors");
  ASSERT_TRUE(set.ok()) << set.status().message();
  ASSERT_EQ(set->owned.size(), 2u);
  for (const StoredTensor& t : set->tensors)
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.view.data) % 64, 0u) << t.name;
  EXPECT_EQ(set->tensors[0].view.as<float>()[2], 3.f);
  EXPECT_EQ(set->tensors[1].view.as<double>()[1], 5.5);
}

TEST(Safetensors, EveryTruncationFailsCleanly) {
  const std::vector<float> a = {1.f, 2.f, 3.f, 4.f};
  const std::string file = BuildSafetensors({{"a", "F32", {4}, Bytes(a)}, {"b", "F32", {2}, Bytes(a).substr(0, 8)}});
  ASSERT_TRUE(Parse(file).ok());
  for (size_t n = 0; n < file.size(); ++n) {
    auto r = Parse(file.substr(0, n));
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
  }
}

TEST(Safetensors, RefusesTooSmallFile) { ExpectError("1234", {"too small"}); }

TEST(Safetensors, RefusesHeaderLengthPastEnd) {
  ExpectError(iotest::U64Le(uint64_t(1) << 63) + "{}", {"header length", "past the end"});
  ExpectError(iotest::U64Le(3) + "{}", {"header length 3", "past the end"});
}

TEST(Safetensors, RefusesBadJson) {
  ExpectError(RawSafetensors("{\"t\": {", ""), {"not valid JSON"});
  ExpectError(RawSafetensors("{\"t\": 1} trailing", ""), {"not valid JSON"});
}

TEST(Safetensors, RefusesNonObjectHeader) {
  ExpectError(RawSafetensors("[1, 2, 3]", ""), {"must be a JSON object", "array"});
}

TEST(Safetensors, RefusesNonObjectEntry) { ExpectError(RawSafetensors(OneTensorHeader("[1]"), ""), {"'t'", "object"}); }

TEST(Safetensors, RefusesMissingDtype) {
  ExpectError(RawSafetensors(OneTensorHeader("{\"shape\":[1],\"data_offsets\":[0,4]}"), "abcd"), {"'t'", "dtype"});
}

TEST(Safetensors, RefusesUnsupportedDtypesNamingTensorAndDtype) {
  for (const char* dt : {"F8_E4M3", "BOOL", "U8", "I8", "U16", "F8_E5M2"}) {
    ExpectError(RawSafetensors(OneTensorHeader(std::string("{\"dtype\":\"") + dt +
                                               "\",\"shape\":[1],\"data_offsets\":[0,1]}"),
                               "a"),
                {"'t'", std::string("dtype ") + dt, "not supported"});
  }
}

TEST(Safetensors, RefusesBadShapes) {
  ExpectError(RawSafetensors(OneTensorHeader("{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}"), "abcd"),
              {"'t'", "negative"});
  ExpectError(RawSafetensors(OneTensorHeader("{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}"), "abcd"),
              {"'t'", "non-integer"});
  ExpectError(RawSafetensors(OneTensorHeader("{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,4]}"), "abcd"),
              {"'t'", "shape"});
  ExpectError(RawSafetensors(OneTensorHeader("{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}"), "abcd"),
              {"'t'", "5 dims"});
  // 2^62 * 2^62 overflows 64 bits; 2^32 * 2^32 * 4 bytes too.
  ExpectError(RawSafetensors(OneTensorHeader("{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],"
                                             "\"data_offsets\":[0,4]}"),
                             "abcd"),
              {"'t'", "overflow"});
  ExpectError(RawSafetensors(OneTensorHeader("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                                             "\"data_offsets\":[0,4]}"),
                             "abcd"),
              {"'t'", "overflow"});
  ExpectError(RawSafetensors(OneTensorHeader("{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
                                             "\"data_offsets\":[0,4]}"),
                             "abcd"),
              {"'t'", "non-integer"});
}

TEST(Safetensors, RefusesBadOffsets) {
  const std::string data(16, '\0');
  auto with = [&](const std::string& offsets) {
    return RawSafetensors(OneTensorHeader("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + offsets + "}"), data);
  };
  ExpectError(with("[8,0]"), {"'t'", "[8, 0]", "ends before it begins"});
  ExpectError(with("[12,20]"), {"'t'", "past the end of the data section", "16 bytes"});
  ExpectError(with("[0,18446744073709551615]"), {"'t'", "past the end"});
  ExpectError(with("[0,12]"), {"'t'", "holds 12 bytes", "needs 8"});
  ExpectError(with("[-4,4]"), {"'t'", "data_offsets"});
  ExpectError(with("[0]"), {"'t'", "data_offsets"});
  ExpectError(with("\"0,8\""), {"'t'", "data_offsets"});
}

TEST(Safetensors, RefusesTruncatedData) {
  const std::vector<float> a = {1.f, 2.f, 3.f, 4.f};
  const std::string file = BuildSafetensors({{"weight", "F32", {4}, Bytes(a)}});
  ExpectError(file.substr(0, file.size() - 1), {"'weight'", "past the end of the data section", "truncated"});
}

TEST(Safetensors, RefusesOverlappingTensorsNamingBoth) {
  const std::string h =
      "{\"first\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"second\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
  ExpectError(RawSafetensors(h, std::string(12, '\0')), {"'second'", "overlap", "'first'"});
  // Containment overlaps too, also when an earlier long range covers a later one.
  const std::string h2 =
      "{\"long\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
  ExpectError(RawSafetensors(h2, std::string(16, '\0')), {"overlap", "'long'"});
  const std::string h3 =
      "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"long\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[4,16]},"
      "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
  ExpectError(RawSafetensors(h3, std::string(16, '\0')), {"'y'", "overlap", "'long'"});
}

TEST(Safetensors, AllowsEmptyTensorsAnywhere) {
  const std::string h =
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}";
  auto r = Parse(RawSafetensors(h, std::string(8, '\0')));
  EXPECT_TRUE(r.ok()) << r.status().message();
}

}  // namespace
}  // namespace mamba2
