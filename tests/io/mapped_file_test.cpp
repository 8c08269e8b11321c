#include "io/mapped_file.h"

#include <gtest/gtest.h>

#include <utility>

#include "io_test_util.h"

namespace mamba2 {
namespace {

TEST(MappedFile, MapsTheBytesAndSurvivesMoves) {
  iotest::TempDir dir;
  const std::string content = "hello, mapped world";
  iotest::WriteFile(dir / "f.bin", content);
  auto r = MappedFile::Open(dir / "f.bin");
  ASSERT_TRUE(r.ok()) << r.status().message();
  MappedFile a = std::move(r).value();
  const uint8_t* p = a.data();
  ASSERT_EQ(a.size(), content.size());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(p), a.size()), content);
  MappedFile b = std::move(a);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);
  MappedFile c;
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.path(), dir / "f.bin");
}

TEST(MappedFile, EmptyFileHasNoBytes) {
  iotest::TempDir dir;
  iotest::WriteFile(dir / "empty", "");
  auto r = MappedFile::Open(dir / "empty");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->size(), 0u);
}

TEST(MappedFile, MissingFileNamesPathAndReason) {
  auto r = MappedFile::Open("/nonexistent/dir/model.safetensors");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/dir/model.safetensors"), std::string::npos);
  EXPECT_NE(r.status().message().find("No such file"), std::string::npos) << r.status().message();
}

TEST(MappedFile, DirectoryIsRefused) {
  iotest::TempDir dir;
  auto r = MappedFile::Open(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("directory"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace mamba2
