// The .npy writer: the bytes NumPy's format 1.0 specifies, read back by hand (ReadNpy itself is
// checked against files NumPy wrote, in fixture_test), and failures that leave nothing behind.
#include "io/npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io/io_test_util.h"

namespace mamba2 {
namespace {

TEST(Npy, WritesVersion1HeaderAndLittleEndianFloats) {
  iotest::TempDir dir;
  const std::string path = dir.path() + "/a.npy";
  const std::vector<float> v = {1.0f, -2.5f, 3.25f, 0.0f, 1e-30f, -7.0f};
  ASSERT_TRUE(WriteNpyF32(path, v.data(), {2, 3}).ok());
  const std::string bytes = iotest::ReadFile(path);
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t hlen = uint8_t(bytes[8]) | (size_t(uint8_t(bytes[9])) << 8);
  // Data starts at a multiple of 64 bytes; the header ends in a newline.
  ASSERT_EQ((10 + hlen) % 64, 0u);
  const std::string header = bytes.substr(10, hlen);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << header;
  EXPECT_NE(header.find("'shape': (2,3)"), std::string::npos) << header;
  EXPECT_EQ(header.back(), '\n');
  ASSERT_EQ(bytes.size(), 10 + hlen + v.size() * sizeof(float));
  std::vector<float> back(v.size());
  std::memcpy(back.data(), bytes.data() + 10 + hlen, back.size() * sizeof(float));
  EXPECT_EQ(back, v);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Npy, OneDimensionalShapeHasATrailingComma) {
  iotest::TempDir dir;
  const std::string path = dir.path() + "/v.npy";
  const float v[3] = {1, 2, 3};
  ASSERT_TRUE(WriteNpyF32(path, v, {3}).ok());
  EXPECT_NE(iotest::ReadFile(path).find("'shape': (3,)"), std::string::npos);
  Result<NpyArray> r = ReadNpy(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value().shape, std::vector<int64_t>{3});
  EXPECT_EQ(r.value().data, (std::vector<double>{1, 2, 3}));
}

TEST(Npy, AFailedWriteNamesThePathAndLeavesNothing) {
  iotest::TempDir dir;
  const float v[1] = {1};
  // A folder where the file should go: the rename fails, and the temporary file goes too.
  const std::string folder = dir.path() + "/out";
  std::filesystem::create_directory(folder);
  Status st = WriteNpyF32(folder, v, {1});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(folder), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("directory"), std::string::npos) << st.message();
  EXPECT_FALSE(std::filesystem::exists(folder + ".tmp"));
  EXPECT_TRUE(std::filesystem::is_empty(folder));
  // A missing folder: nothing can be opened, and the reason is given.
  st = WriteNpyF32(dir.path() + "/missing/x.npy", v, {1});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("missing/x.npy.tmp"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("No such file"), std::string::npos) << st.message();
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);  // only "out"
}

}  // namespace
}  // namespace mamba2
