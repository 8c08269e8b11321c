// AtomicFile: PATH appears whole at Commit or not at all, whatever fails midway.
#include "io/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "io/io_test_util.h"

namespace mamba2 {
namespace {

namespace fs = std::filesystem;

size_t EntriesIn(const std::string& dir) { return size_t(std::distance(fs::directory_iterator(dir), {})); }

TEST(AtomicFile, CommitPutsTheBytesAtThePath) {
  iotest::TempDir dir;
  const std::string path = dir.path() + "/out.bin";
  Result<AtomicFile> f = AtomicFile::Create(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_TRUE(f->Resize(8).ok());               // "\0\0\0\0\0\0\0\0"
  ASSERT_TRUE(f->Append("ab").ok());            // at 0: "ab" (Resize does not move the append position)
  ASSERT_TRUE(f->WriteAt(6, "yz", 2).ok());     // "ab\0\0\0\0yz"
  ASSERT_TRUE(f->Append("cd").ok());            // "abcd\0\0yz"
  EXPECT_FALSE(fs::exists(path)) << "PATH must not appear before Commit";
  EXPECT_TRUE(fs::exists(path + ".tmp"));
  ASSERT_TRUE(f->Commit().ok());
  EXPECT_EQ(iotest::ReadFile(path), std::string("abcd\0\0yz", 8));
  EXPECT_EQ(EntriesIn(dir.path()), 1u);
}

TEST(AtomicFile, WithoutCommitTheOldFileStaysAndTheTmpGoes) {
  iotest::TempDir dir;
  const std::string path = dir.path() + "/report.json";
  iotest::WriteFile(path, "old");
  {
    Result<AtomicFile> f = AtomicFile::Create(path);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->Append("new and half").ok());
  }
  EXPECT_EQ(iotest::ReadFile(path), "old");
  EXPECT_EQ(EntriesIn(dir.path()), 1u);
}

TEST(AtomicFile, AMovedFileCommitsOnceAndTheSourceRemovesNothing) {
  iotest::TempDir dir;
  const std::string path = dir.path() + "/m.bin";
  Result<AtomicFile> f = AtomicFile::Create(path);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(f->Append("x").ok());
  {
    AtomicFile moved = std::move(f).value();
    ASSERT_TRUE(moved.Append("y").ok());
    ASSERT_TRUE(moved.Commit().ok());
  }
  EXPECT_EQ(iotest::ReadFile(path), "xy");
  EXPECT_EQ(EntriesIn(dir.path()), 1u);
}

TEST(AtomicFile, FailuresNameThePathAndTheReason) {
  iotest::TempDir dir;
  Result<AtomicFile> missing = AtomicFile::Create(dir.path() + "/no/such/x");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/no/such/x.tmp: cannot create: No such file or directory"),
            std::string::npos)
      << missing.status().message();

  const std::string folder = dir.path() + "/folder";
  fs::create_directory(folder);
  const Status st = WriteFileAtomic(folder, "data");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find(folder + ": cannot move"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("directory"), std::string::npos) << st.message();
  EXPECT_EQ(EntriesIn(dir.path()), 1u);  // the folder only: no .tmp beside it
}

// A full disk midway, as the file-size limit makes it: the write fails with the reason, and
// neither PATH nor PATH.tmp remains.
TEST(AtomicFile, AWriteThatRunsOutOfSpaceLeavesNothing) {
  iotest::TempDir dir;
  const std::string path = dir.path() + "/big.bin";
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);  // else the process is killed at the limit
  rlimit small = old;
  small.rlim_cur = 1 << 20;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  Status st;
  {
    Result<AtomicFile> f = AtomicFile::Create(path);
    ASSERT_TRUE(f.ok());
    const std::vector<char> block(1 << 19, 'x');
    for (int i = 0; i < 4 && st.ok(); ++i) st = f->Append(block.data(), block.size());
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("write failed: File too large"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(path + " was not written"), std::string::npos) << st.message();
  EXPECT_EQ(EntriesIn(dir.path()), 0u);
}

}  // namespace
}  // namespace mamba2
