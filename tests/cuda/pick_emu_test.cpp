// The on-device token pick (backend/cuda/sample.cuh) run by the host emulator against the host
// reference of sample/pick_rule.h: random rows of several widths, several rows per launch (each
// with its own u), every step of the rule alone and combined, ties at the cuts, NaN/-inf, padded
// rows. The kernel's id must equal the reference's wherever the reference's margin says that no
// summation order could change it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cuda/emu_backend.h"
#include "sample/pick_rule.h"

// Last: the emulator defines CUDA's keywords as macros for the kernel text that follows.
#include "cuda/cuda_emu.h"
#define M2_KERNEL_NS cuda_emu
#include "backend/cuda/sample.cuh"

#include "cuda/cuda_emu_end.h"

namespace mamba2::testing {

void EmuLaunchPick(const float* logits, int64_t ld, int64_t n_rows, const PickParams& p, uint64_t* draw,
                   int32_t* out_ids) {
  cuda_emu::LaunchPick(logits, ld, n_rows, p, draw, out_ids, nullptr);
}

namespace {

namespace emu = ::mamba2::cuda_emu;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// Below this the reference's own decision sits within rounding of a boundary.
constexpr double kMarginFloor = 1e-12;

enum class Shape {
  kNormal,     // normal logits, stddev `scale`
  kQuantized,  // normal, rounded to multiples of 0.25: many exact ties at every cut
  kFlat,       // uniform in [0, scale): most of the row within a nat of the max
  kSpiky,      // a few large logits over a low flat floor
  kSpecial,    // normal with NaN, -inf sprinkled in
  kAdjacent,   // consecutive floats just below 2: with T = 1.9 (x just above 1, twice as coarse
               // relative to its size) distinct logits divide into ties
};

struct RowSpec {
  Shape shape;
  float scale;
};

std::vector<float> MakeRow(const RowSpec& s, int width, std::mt19937& gen) {
  std::vector<float> v(width);
  std::normal_distribution<float> normal(0.0f, s.scale);
  std::uniform_real_distribution<float> uni(0.0f, s.scale);
  for (int i = 0; i < width; ++i) {
    switch (s.shape) {
      case Shape::kNormal: v[i] = normal(gen); break;
      case Shape::kQuantized: v[i] = std::round(normal(gen) * 4.0f) / 4.0f; break;
      case Shape::kFlat: v[i] = uni(gen); break;
      case Shape::kSpiky: v[i] = gen() % 97 == 0 ? 8.0f + normal(gen) : -3.0f + 0.01f * normal(gen); break;
      case Shape::kSpecial: {
        const uint32_t r = gen() % 16;
        v[i] = r == 0 ? kNaN : r == 1 ? -kInf : normal(gen);
        break;
      }
      case Shape::kAdjacent: {
        uint32_t bits = 0x3fffffffu - gen() % 4096;  // the 4096 floats below 2.0
        std::memcpy(&v[i], &bits, 4);
        break;
      }
    }
  }
  return v;
}

PickParams Params(float temperature, int top_k, float top_p, float min_p) {
  PickParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  return p;
}

struct Tally {
  int compared = 0;
  int near_boundary = 0;
  int mismatched = 0;
};

// One launch over `rows` rows of `width` (row stride ld >= width); ids >= n_valid are padding
// filled with logits that would win if the kernel looked at them.
void RunLaunch(const std::string& what, const RowSpec& spec, int width, int n_valid, int ld, int rows, PickParams p,
               int threads, uint32_t seed, Tally& tally) {
  std::mt19937 gen(seed);
  std::vector<float> logits(size_t(rows) * ld, kNaN);
  for (int r = 0; r < rows; ++r) {
    const std::vector<float> row = MakeRow(spec, width, gen);
    std::copy(row.begin(), row.end(), logits.begin() + size_t(r) * ld);
    for (int i = n_valid; i < width; ++i) logits[size_t(r) * ld + i] = i % 2 ? 1e30f : kInf;
  }
  p.n_valid = n_valid;
  p.seed = seed * 7919u + 1;
  const uint64_t draw0 = seed % 5 == 0 ? 0 : uint64_t(seed) * 1000003u;
  uint64_t draw = draw0;
  std::vector<int32_t> out(rows, -1);
  emu::LaunchPickWith(threads, logits.data(), ld, rows, p, &draw, out.data(), nullptr);
  EXPECT_EQ(draw, draw0 + 1) << what << ": the draw counter must advance by one per launch";
  for (int r = 0; r < rows; ++r) {
    const double u = PickUniform(p.seed, draw0, uint64_t(r));
    double margin = 0.0;
    const int32_t want = PickReference(logits.data() + size_t(r) * ld, p, u, &margin);
    if (margin <= kMarginFloor) {
      ++tally.near_boundary;
      continue;
    }
    ++tally.compared;
    if (out[r] != want) ++tally.mismatched;
    EXPECT_EQ(out[r], want) << what << " row " << r << " u " << u << " margin " << margin << " T " << p.temperature
                            << " k " << p.top_k << " p " << p.top_p << " min_p " << p.min_p;
  }
}

struct Setting {
  const char* name;
  PickParams p;
};

const Setting kSettings[] = {
    {"greedy", Params(0.0f, 0, 1.0f, 0.0f)},
    {"temperature", Params(1.0f, 0, 1.0f, 0.0f)},
    {"cold", Params(0.3f, 0, 1.0f, 0.0f)},
    {"top_k1", Params(1.0f, 1, 1.0f, 0.0f)},
    {"top_k40", Params(0.8f, 40, 1.0f, 0.0f)},
    {"top_k700", Params(1.0f, 700, 1.0f, 0.0f)},
    {"top_p0.9", Params(1.0f, 0, 0.9f, 0.0f)},
    {"top_p0.3", Params(0.7f, 0, 0.3f, 0.0f)},
    {"top_p0.999", Params(1.5f, 0, 0.999f, 0.0f)},
    {"min_p", Params(1.0f, 0, 1.0f, 0.05f)},
    {"k+p", Params(0.8f, 50, 0.95f, 0.0f)},
    {"k+p+min_p", Params(1.2f, 100, 0.9f, 0.02f)},
    {"p+min_p", Params(1.0f, 0, 0.8f, 0.2f)},
    // T = 1.9 merges the adjacent-float rows' distinct logits into ties of x at the cuts.
    {"merging k", Params(1.9f, 40, 1.0f, 0.0f)},
    {"merging k+p", Params(1.9f, 40, 0.9f, 0.0f)},
};

const RowSpec kSpecs[] = {{Shape::kNormal, 2.0f}, {Shape::kQuantized, 1.5f}, {Shape::kFlat, 0.7f},
                          {Shape::kSpiky, 1.0f},  {Shape::kSpecial, 2.5f},   {Shape::kAdjacent, 1.0f}};

void Report(const char* name, const Tally& t) {
  std::printf("[pick_emu] %s: %d rows compared, %d skipped within %.0e of a boundary, %d mismatched\n", name,
              t.compared, t.near_boundary, kMarginFloor, t.mismatched);
}

// Small and odd widths, every setting and row shape, several rows per launch, small blocks (the
// emulator runs a block's threads as fibers, so small blocks keep this fast).
TEST(PickKernelEmu, MatchesReferenceOnSmallRows) {
  Tally tally;
  uint32_t seed = 1;
  const int widths[] = {1, 5, 33, 100, 777, 2500};
  for (const Setting& s : kSettings)
    for (const RowSpec& spec : kSpecs)
      for (int w : widths) {
        const int n_valid = w > 4 && seed % 3 == 0 ? w - w / 5 : w;  // some rows padded
        const int threads = seed % 2 ? 64 : 96;
        const int ld = w + int(seed % 3);
        RunLaunch(std::string(s.name) + " w" + std::to_string(w), spec, w, n_valid, ld, 3, s.p, threads, seed, tally);
        ++seed;
      }
  Report("small rows", tally);
  EXPECT_EQ(tally.mismatched, 0);
  EXPECT_GT(tally.compared, 1000);
}

// Full vocabulary width with the device block size, and a wide row at 1024 threads.
TEST(PickKernelEmu, MatchesReferenceOnVocabRows) {
  Tally tally;
  uint32_t seed = 5000;
  const int kVocab = 50280;
  const Setting* picks[] = {&kSettings[1], &kSettings[4], &kSettings[6], &kSettings[9], &kSettings[10],
                            &kSettings[11]};
  for (const Setting* s : picks)
    for (const RowSpec& spec : {kSpecs[0], kSpecs[2], kSpecs[1]})
      RunLaunch(std::string(s->name) + " vocab", spec, kVocab, kVocab - 3, kVocab + 8, 2, s->p, 512, seed++, tally);
  RunLaunch("greedy vocab", kSpecs[4], kVocab, kVocab, kVocab, 2, kSettings[0].p, 512, seed++, tally);
  RunLaunch("k+p 1024 threads", kSpecs[0], 20000, 20000, 20000, 1, kSettings[10].p, 1024, seed++, tally);
  Report("vocab rows", tally);
  EXPECT_EQ(tally.mismatched, 0);
}

// Ties that only exist after the division (adjacent floats just below 2.0 over T = 1.9): every
// cut must keep the whole tie of x, which the kernel's logit-key searches have to extend down to.
// One extra id of near-equal weight changes the picked id in only a few percent of the rows,
// hence many rows.
TEST(PickKernelEmu, TiesCreatedByTheDivision) {
  Tally tally;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    RunLaunch("merge p", kSpecs[5], 300, 300, 300, 4, Params(1.9f, 0, 0.6f, 0.0f), 64, 20000 + seed, tally);
    RunLaunch("merge k+p", kSpecs[5], 300, 300, 300, 4, Params(1.9f, 40, 0.6f, 0.0f), 64, 30000 + seed, tally);
    RunLaunch("merge k", kSpecs[5], 300, 300, 300, 4, Params(1.9f, 25, 1.0f, 0.0f), 64, 40000 + seed, tally);
  }
  Report("division ties", tally);
  EXPECT_EQ(tally.mismatched, 0);
}

// Hand-made rows for the edges: ties exactly at the cuts, no proper distribution, overflow.
TEST(PickKernelEmu, Edges) {
  std::vector<int32_t> out(1);
  uint64_t draw = 0;
  auto run = [&](const std::vector<float>& row, PickParams p, int n_valid) {
    p.n_valid = n_valid;
    emu::LaunchPickWith(64, row.data(), int64_t(row.size()), 1, p, &draw, out.data(), nullptr);
    return out[0];
  };
  // All -inf/NaN: id 0, greedy or not. A +inf: the lowest id holding it.
  EXPECT_EQ(run({-kInf, kNaN, -kInf}, Params(0.0f, 0, 1.0f, 0.0f), 3), 0);
  EXPECT_EQ(run({-kInf, kNaN, -kInf}, Params(1.0f, 2, 0.5f, 0.1f), 3), 0);
  EXPECT_EQ(run({1.0f, kInf, 2.0f, kInf}, Params(1.0f, 0, 0.5f, 0.0f), 4), 1);
  // 100/1e-37 and 200/1e-37 both overflow to +inf: the lower id wins.
  EXPECT_EQ(run({-1.0f, 100.0f, 200.0f}, Params(1e-37f, 0, 1.0f, 0.0f), 3), 1);
  // One candidate.
  EXPECT_EQ(run({5.0f, 1e30f}, Params(1.0f, 0, 0.9f, 0.0f), 1), 0);
  // top_k = 1 with a tie at the top keeps both: across draws both must come up.
  std::vector<int> hits(4, 0);
  for (int d = 0; d < 64; ++d) ++hits[run({1.0f, 3.0f, 3.0f, 2.0f}, Params(1.0f, 1, 1.0f, 0.0f), 4)];
  EXPECT_EQ(hits[0] + hits[3], 0);
  EXPECT_GT(hits[1], 0);
  EXPECT_GT(hits[2], 0);
  // A weight exactly at the min-p cut is kept (the kernel skips exps only well below it).
  float min_p = float(std::exp(-2.0));
  if (double(min_p) > std::exp(-2.0)) min_p = std::nextafter(min_p, 0.0f);
  const std::vector<float> at_cut = {2.0f, 0.0f, -5.0f};
  PickParams mp = Params(1.0f, 0, 1.0f, min_p);
  mp.n_valid = 3;
  int ones = 0;
  for (int d = 0; d < 64; ++d) {
    const uint64_t this_draw = draw;
    const int32_t id = run(at_cut, mp, 3);
    EXPECT_EQ(id, PickReference(at_cut.data(), mp, PickUniform(mp.seed, this_draw, 0)));
    ones += id == 1;
  }
  EXPECT_GT(ones, 0);
  // The draw counter: one per launch, also for a launch with no rows.
  const uint64_t before = draw;
  PickParams none = Params(1.0f, 0, 1.0f, 0.0f);
  none.n_valid = 1;
  emu::LaunchPickWith(64, nullptr, 1, 0, none, &draw, out.data(), nullptr);
  EXPECT_EQ(draw, before + 1);
}

}  // namespace
}  // namespace mamba2::testing
