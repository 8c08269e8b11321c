#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "sample/sampler.h"

namespace mamba2 {
namespace {

void ExpectRejected(const SamplingParams& p, const std::string& field, const std::string& value) {
  const Status st = ValidateSamplingParams(p);
  ASSERT_FALSE(st.ok()) << field << "=" << value << " accepted";
  EXPECT_NE(st.message().find(field), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(value), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find('\n'), std::string::npos) << "one line: " << st.message();
  EXPECT_FALSE(Sampler::Create(p).ok());
}

TEST(SamplingParams, DefaultsAreValid) {
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams{}).ok());
  EXPECT_TRUE(Sampler::Create(SamplingParams{}).ok());
}

TEST(SamplingParams, BoundaryValuesAreValid) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 1.0f;
  p.repetition_penalty = 1e-3f;
  p.n_valid = 1;
  p.repeat_last_n = -1;
  EXPECT_TRUE(ValidateSamplingParams(p).ok()) << ValidateSamplingParams(p).message();
  p.min_p = 0.0f;
  p.top_p = 1e-6f;
  p.n_valid = -1;
  EXPECT_TRUE(ValidateSamplingParams(p).ok()) << ValidateSamplingParams(p).message();
}

TEST(SamplingParams, RejectsEachBadField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  {
    SamplingParams p;
    p.temperature = -0.5f;
    ExpectRejected(p, "temperature", "-0.5");
    p.temperature = nan;
    ExpectRejected(p, "temperature", "nan");
    p.temperature = inf;
    ExpectRejected(p, "temperature", "inf");
  }
  {
    SamplingParams p;
    p.top_k = -3;
    ExpectRejected(p, "top_k", "-3");
  }
  {
    SamplingParams p;
    p.top_p = 0.0f;
    ExpectRejected(p, "top_p", "0");
    p.top_p = 1.5f;
    ExpectRejected(p, "top_p", "1.5");
    p.top_p = -0.25f;
    ExpectRejected(p, "top_p", "-0.25");
    p.top_p = nan;
    ExpectRejected(p, "top_p", "nan");
  }
  {
    SamplingParams p;
    p.min_p = -0.25f;
    ExpectRejected(p, "min_p", "-0.25");
    p.min_p = 1.25f;
    ExpectRejected(p, "min_p", "1.25");
  }
  {
    SamplingParams p;
    p.repetition_penalty = 0.0f;
    ExpectRejected(p, "repetition_penalty", "0");
    p.repetition_penalty = -1.0f;
    ExpectRejected(p, "repetition_penalty", "-1");
    p.repetition_penalty = nan;
    ExpectRejected(p, "repetition_penalty", "nan");
  }
  {
    SamplingParams p;
    p.n_valid = 0;
    ExpectRejected(p, "n_valid", "0");
    p.n_valid = -2;
    ExpectRejected(p, "n_valid", "-2");
  }
}

TEST(Sampler, ChainFollowsParams) {
  auto names = [](const SamplingParams& p) {
    std::vector<std::string> out;
    for (const char* n : Sampler(p).StepNames()) out.emplace_back(n);
    return out;
  };
  EXPECT_TRUE(names(SamplingParams{}).empty());
  SamplingParams all;
  all.temperature = 0.8f;
  all.top_k = 40;
  all.top_p = 0.9f;
  all.min_p = 0.05f;
  all.repetition_penalty = 1.1f;
  EXPECT_EQ(names(all),
            (std::vector<std::string>{"repetition_penalty", "temperature", "top_k", "top_p", "min_p"}));
  SamplingParams greedy = all;
  greedy.temperature = 0.0f;
  EXPECT_EQ(names(greedy), (std::vector<std::string>{"repetition_penalty"}));
  EXPECT_TRUE(Sampler(greedy).greedy());
}

}  // namespace
}  // namespace mamba2
