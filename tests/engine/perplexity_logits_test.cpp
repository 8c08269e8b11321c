// The --save-logits file (written, read back byte for byte as documented, refused when
// damaged) and the KL / top-1 arithmetic of --kl-base against values computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/dtype.h"
#include "engine/perplexity.h"
#include "engine/perplexity_logits.h"
#include "support/random_model.h"

namespace mamba2 {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(PerplexityLogits, LayoutAsDocumented) {
  const std::string dir = testing::MakeTempDir();
  const std::string path = dir + "/lp.bin";
  const std::vector<int32_t> targets = {3, 1, 2};
  {
    auto w = LogprobWriter::Create(path, LogprobDType::kF32, 4, targets, 0x1122334455667788ull);
    ASSERT_TRUE(w.ok()) << w.status().message();
    const float r0[4] = {-1, -2, -3, -4}, r1[4] = {-5, -6, -7, -8}, r2[4] = {-0.5f, -1.5f, -2.5f, -3.5f};
    // Rows in any order.
    ASSERT_TRUE((*w)->WriteRow(2, r2).ok());
    ASSERT_TRUE((*w)->WriteRow(0, r0).ok());
    ASSERT_TRUE((*w)->WriteRow(1, r1).ok());
    EXPECT_FALSE(std::filesystem::exists(path));  // only PATH.tmp until Finish
    ASSERT_TRUE((*w)->Finish(12.25).ok());
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const std::string raw = ReadAll(path);
  // 64-byte header, 3 targets (12 bytes) padded to 128, 3 rows of 4 floats.
  ASSERT_EQ(raw.size(), 128u + 3 * 4 * 4);
  EXPECT_EQ(raw.substr(0, 8), "M2LOGPRB");
  uint32_t u32;
  uint64_t u64;
  double f64;
  std::memcpy(&u32, raw.data() + 8, 4);
  EXPECT_EQ(u32, 1u);
  std::memcpy(&u32, raw.data() + 12, 4);
  EXPECT_EQ(u32, 0u);
  std::memcpy(&u64, raw.data() + 16, 8);
  EXPECT_EQ(u64, 3u);
  std::memcpy(&u64, raw.data() + 24, 8);
  EXPECT_EQ(u64, 4u);
  std::memcpy(&f64, raw.data() + 32, 8);
  EXPECT_EQ(f64, 12.25);
  std::memcpy(&u64, raw.data() + 40, 8);
  EXPECT_EQ(u64, 0x1122334455667788ull);
  int32_t t1;
  std::memcpy(&t1, raw.data() + 64 + 4, 4);
  EXPECT_EQ(t1, 1);
  float v;
  std::memcpy(&v, raw.data() + 128 + (1 * 4 + 2) * 4, 4);  // row 1, value 2
  EXPECT_EQ(v, -7.0f);

  auto f = LogprobFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->header().n_rows, 3);
  EXPECT_EQ(f->header().vocab_rows, 4);
  EXPECT_EQ(f->header().sum_nll, 12.25);
  EXPECT_EQ(f->target(0), 3);
  float row[4];
  f->ReadRow(2, row);
  EXPECT_EQ(row[3], -3.5f);
}

TEST(PerplexityLogits, Float16Rows) {
  const std::string path = testing::MakeTempDir() + "/lp16.bin";
  const std::vector<int32_t> targets = {0};
  {
    auto w = LogprobWriter::Create(path, LogprobDType::kF16, 3, targets, 0);
    ASSERT_TRUE(w.ok());
    const float r[3] = {-0.125f, -1e6f, -3.0009765625f};
    ASSERT_TRUE((*w)->WriteRow(0, r).ok());
    ASSERT_TRUE((*w)->Finish(0.125).ok());
  }
  EXPECT_EQ(std::filesystem::file_size(path), 128u + 3 * 2);
  auto f = LogprobFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  float row[3];
  f->ReadRow(0, row);
  EXPECT_EQ(row[0], -0.125f);
  EXPECT_EQ(row[1], -65504.0f);  // clamped, not -inf
  EXPECT_EQ(row[2], -3.0f);      // halfway between 3 and 3 + 2^-9: ties to even give 3
}

TEST(PerplexityLogits, UnfinishedWriterLeavesNothing) {
  const std::string path = testing::MakeTempDir() + "/gone.bin";
  {
    const std::vector<int32_t> targets = {1, 2};
    auto w = LogprobWriter::Create(path, LogprobDType::kF32, 2, targets, 0);
    ASSERT_TRUE(w.ok());
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(PerplexityLogits, DamagedFilesAreRefused) {
  const std::string dir = testing::MakeTempDir();
  const std::string good = dir + "/good.bin";
  {
    const std::vector<int32_t> targets = {1, 2};
    auto w = LogprobWriter::Create(good, LogprobDType::kF32, 2, targets, 0);
    const float r[2] = {-1, -2};
    ASSERT_TRUE((*w)->WriteRow(0, r).ok());
    ASSERT_TRUE((*w)->WriteRow(1, r).ok());
    ASSERT_TRUE((*w)->Finish(1).ok());
  }
  const std::string raw = ReadAll(good);
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
    return dir + "/" + name;
  };
  auto truncated = LogprobFile::Open(write("trunc.bin", raw.substr(0, raw.size() - 1)));
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("truncated"), std::string::npos);
  std::string bad_magic = raw;
  bad_magic[0] = 'X';
  EXPECT_FALSE(LogprobFile::Open(write("magic.bin", bad_magic)).ok());
  std::string bad_version = raw;
  bad_version[8] = 2;
  EXPECT_FALSE(LogprobFile::Open(write("version.bin", bad_version)).ok());
  std::string huge = raw;
  const uint64_t rows = uint64_t(1) << 62;
  std::memcpy(huge.data() + 16, &rows, 8);
  EXPECT_FALSE(LogprobFile::Open(write("huge.bin", huge)).ok());
  EXPECT_FALSE(LogprobFile::Open(write("empty.bin", "")).ok());
  EXPECT_FALSE(LogprobFile::Open(dir + "/missing.bin").ok());
}

TEST(PerplexityLogits, KlByHand) {
  // base p = (1/2, 1/2), current q = (1/4, 3/4): KL = 1/2 ln 2 + 1/2 ln(2/3) = 1/2 ln(4/3).
  const float base[2] = {float(std::log(0.5)), float(std::log(0.5))};
  const float cur[2] = {float(std::log(0.25)), float(std::log(0.75))};
  const KlRow r = CompareLogprobRows(base, cur, 2);
  EXPECT_NEAR(r.kl, 0.5 * std::log(4.0 / 3.0), 1e-7);
  EXPECT_FALSE(r.same_top1);  // base's tie goes to the first index, current's top is 1
  const KlRow same = CompareLogprobRows(cur, cur, 2);
  EXPECT_EQ(same.kl, 0.0);
  EXPECT_TRUE(same.same_top1);
  // A zero-probability base entry (-inf) contributes nothing.
  const float base_inf[2] = {0.0f, -INFINITY};
  EXPECT_NEAR(CompareLogprobRows(base_inf, cur, 2).kl, -std::log(0.25), 1e-6);
}

TEST(PerplexityLogits, Summary) {
  std::vector<double> kl = {0.4, 0.0, 0.2, 0.1, 0.3};
  const KlSummary s = SummarizeKl(kl, 4, 5 * std::log(2.0), 5 * std::log(4.0));
  EXPECT_NEAR(s.mean_kl, 0.2, 1e-15);
  EXPECT_DOUBLE_EQ(s.median_kl, 0.2);
  EXPECT_DOUBLE_EQ(s.max_kl, 0.4);
  EXPECT_DOUBLE_EQ(s.p99_kl, 0.4);
  EXPECT_DOUBLE_EQ(s.top1_agreement, 0.8);
  EXPECT_NEAR(s.base_ppl, 2.0, 1e-12);
  EXPECT_NEAR(s.current_ppl, 4.0, 1e-12);
}

TEST(PerplexityLogits, KlBaseMustScoreTheSameTokens) {
  const std::string path = testing::MakeTempDir() + "/base.bin";
  const std::vector<int32_t> targets = {4, 5, 6};
  {
    auto w = LogprobWriter::Create(path, LogprobDType::kF32, 8, targets, 0);
    std::vector<float> r(8, -std::log(8.0f));
    for (int i = 0; i < 3; ++i) ASSERT_TRUE((*w)->WriteRow(i, r.data()).ok());
    ASSERT_TRUE((*w)->Finish(3 * std::log(8.0)).ok());
  }
  auto f = LogprobFile::Open(path);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(CheckKlBase(*f, 8, targets).ok());
  EXPECT_FALSE(CheckKlBase(*f, 16, targets).ok());
  EXPECT_FALSE(CheckKlBase(*f, 8, {4, 5}).ok());
  const Status st = CheckKlBase(*f, 8, {4, 9, 6});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("scored token 1"), std::string::npos);
}

}  // namespace
}  // namespace mamba2
