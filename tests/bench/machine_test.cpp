// The last-level cache size the bench reads from sysfs, and the note it prints when a decode
// step's bytes could sit in that cache (its "of read bw" then can exceed 100%).
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "lib/machine.h"
#include "lib/report.h"

namespace mamba2::bench {
namespace {

namespace fs = std::filesystem;

TEST(CacheSize, ParsesSysfsSizes) {
  EXPECT_EQ(ParseCacheSize("307200K"), size_t(307200) * 1024);
  EXPECT_EQ(ParseCacheSize("32M\n"), size_t(32) << 20);
  EXPECT_EQ(ParseCacheSize("1G"), size_t(1) << 30);
  EXPECT_EQ(ParseCacheSize("512"), size_t(512));
  EXPECT_EQ(ParseCacheSize(""), size_t(0));
  EXPECT_EQ(ParseCacheSize("K"), size_t(0));
  EXPECT_EQ(ParseCacheSize("12X"), size_t(0));
}

void WriteIndex(const fs::path& root, int index, const std::string& type, const std::string& size) {
  const fs::path dir = root / ("index" + std::to_string(index));
  fs::create_directories(dir);
  std::ofstream(dir / "type") << type << "\n";
  std::ofstream(dir / "size") << size << "\n";
}

TEST(CacheSize, TakesTheLargestDataOrUnifiedCache) {
  const fs::path root = fs::temp_directory_path() / ("m2_cache_" + std::to_string(::getpid()));
  fs::remove_all(root);
  WriteIndex(root, 0, "Data", "48K");
  WriteIndex(root, 1, "Instruction", "999M");  // never the answer
  WriteIndex(root, 2, "Unified", "2048K");
  EXPECT_EQ(LastLevelCacheBytes(root.string()), size_t(2048) * 1024);
  WriteIndex(root, 3, "Unified", "307200K");
  EXPECT_EQ(LastLevelCacheBytes(root.string()), size_t(307200) * 1024);
  fs::remove_all(root);
  EXPECT_EQ(LastLevelCacheBytes(root.string()), size_t(0));
}

std::string Table(const BenchReport& r) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  PrintTable(f, r);
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

TEST(CacheNote, PrintedOnlyWhenDecodeBytesFitTwiceTheCache) {
  BenchReport r;
  r.backend = "cpu-bf16";
  r.runs.decode_s_per_token = 0.01;
  r.read_bandwidth_bytes_per_s = 30e9;
  r.decode_bytes.weights = 258.5e6;
  r.decode_bytes.state = 19.6e6;
  r.machine.last_level_cache_bytes = size_t(300) << 20;
  EXPECT_NE(Table(r).find("note: the 278 MB read per token are within twice the 300 MiB"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(ToJson(r))["decode_may_hit_cache"], true);

  r.decode_bytes.weights = 5409.7e6;  // 2.7b: far beyond the cache
  EXPECT_EQ(Table(r).find("note:"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(ToJson(r))["decode_may_hit_cache"], false);

  r.decode_bytes.weights = 258.5e6;
  r.machine.last_level_cache_bytes = size_t(32) << 20;  // a desktop L3
  EXPECT_EQ(Table(r).find("note:"), std::string::npos);

  r.machine.last_level_cache_bytes = size_t(300) << 20;
  r.backend = "cuda-bf16";  // the host's cache says nothing about a GPU's memory
  r.host_backend = false;
  EXPECT_EQ(Table(r).find("note:"), std::string::npos);

  r.backend = "cpu";
  r.host_backend = true;
  r.machine.last_level_cache_bytes = 0;  // unknown
  EXPECT_EQ(Table(r).find("note:"), std::string::npos);
}

TEST(PeakRss, SaysWhenTheBandwidthProbeIsPartOfIt) {
  BenchReport r;
  r.backend = "cpu";
  r.weight_bytes = 258500000;
  r.peak_rss_bytes = 926600000;
  EXPECT_NE(Table(r).find("peak RSS 926.6 MB (3.58x the weights); bench took"), std::string::npos);
  r.host_probe_bytes = kHostProbeBytes;
  EXPECT_NE(Table(r).find("(3.58x the weights; includes the bandwidth probe's 512 MiB buffer: --no-limits leaves "
                          "it out); bench took"),
            std::string::npos);
}

}  // namespace
}  // namespace mamba2::bench
