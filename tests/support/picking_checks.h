// Checks of decoding with the token picked on the backend (Mamba2Model::StartPicking /
// StepPicked), shared by the host-backend suite and the CUDA / emulated suite: every picked id
// must be the id the rule's host reference (sample/pick_rule.h) picks from the logits that
// the same backend's ordinary Prefill/Step give for the same history, with the uniform of that
// draw. The recorded step is relaunched many times, survives interleaved ordinary steps of
// another slot, a workspace that moves, and a change of parameters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/mamba2_model.h"
#include "sample/pick_rule.h"
#include "support/model_run.h"

namespace mamba2::testing {

// Picks n_tokens after `prompt` in slot 0 while replaying the same history eagerly in slot 1.
// Returns the picked ids. A pick may differ from the reference only where the reference's
// margin says summation order could flip it (counted in *near_ties when given).
inline std::vector<int32_t> CheckPickedAgainstEager(Mamba2Model& m, const std::vector<int32_t>& prompt,
                                                    const PickParams& p, int64_t n_tokens, int* near_ties = nullptr) {
  const int64_t V = m.config().vocab_rows;
  const int32_t s0 = 0, s1 = 1;
  std::vector<float> logits(static_cast<size_t>(V));
  m.ResetSlot(s0);
  m.ResetSlot(s1);
  std::vector<int32_t> picked;
  Status st = m.Prefill(prompt, {&s0, 1}, LogitsMode::kLast, nullptr);
  EXPECT_TRUE(st.ok()) << st.message();
  Result<int32_t> id = m.StartPicking(s0, p);
  EXPECT_TRUE(id.ok()) << id.status().message();
  if (!id.ok()) return picked;
  st = m.Prefill(prompt, {&s1, 1}, LogitsMode::kLast, logits.data());
  EXPECT_TRUE(st.ok()) << st.message();
  for (int64_t i = 0; i < n_tokens; ++i) {
    if (i > 0) {
      id = m.StepPicked();
      EXPECT_TRUE(id.ok()) << id.status().message();
      if (!id.ok()) return picked;
      const int32_t prev = picked.back();
      st = m.Step({&prev, 1}, {&s1, 1}, logits.data());
      EXPECT_TRUE(st.ok()) << st.message();
    }
    double margin = 1.0;
    const int32_t expect = PickReference(logits.data(), p, PickUniform(p.seed, uint64_t(i), 0), &margin);
    if (*id != expect) {
      if (margin < 1e-6 && near_ties) {
        ++*near_ties;
      } else {
        ADD_FAILURE() << "token " << i << ": picked " << *id << ", the rule gives " << expect << " (margin "
                      << margin << ")";
        return picked;
      }
    }
    picked.push_back(*id);  // the picked id is what the model continues from
  }
  return picked;
}

// The suite every backend runs: greedy and sampled parameter sets, the recorded step kept
// across a moved workspace and across a parameter change.
inline void RunPickingSuite(Backend* backend, const std::string& dir, int64_t n_tokens) {
  ModelOptions opt;
  opt.max_slots = 2;
  auto m = Mamba2Model::Load(dir, backend, opt);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int32_t V = int32_t((*m)->config().vocab_rows);
  const auto prompt = RandomIds(7, V, 11);
  PickParams greedy;
  greedy.temperature = 0.0f;
  greedy.n_valid = V;
  PickParams sampled;
  sampled.temperature = 1.3f;  // random models are nearly uniform: sharpen nothing, spread more
  sampled.top_k = 20;
  sampled.top_p = 0.9f;
  sampled.min_p = 0.01f;
  sampled.n_valid = V - 5;  // padded rows are never candidates
  sampled.seed = 1234;
  PickParams plain;
  plain.n_valid = V;
  plain.seed = 99;
  int near_ties = 0;
  const auto g = CheckPickedAgainstEager(**m, prompt, greedy, n_tokens, &near_ties);
  EXPECT_EQ(int64_t(g.size()), n_tokens);
  const auto a = CheckPickedAgainstEager(**m, prompt, sampled, n_tokens, &near_ties);
  EXPECT_EQ(int64_t(a.size()), n_tokens);
  for (int32_t id : a) EXPECT_LT(id, sampled.n_valid);
  // A longer prefill moves the workspace: the recorded step must follow it.
  const auto long_prompt = RandomIds(3 * (*m)->chunk_size() + 5, V, 12);
  const auto b = CheckPickedAgainstEager(**m, long_prompt, plain, n_tokens, &near_ties);
  EXPECT_EQ(int64_t(b.size()), n_tokens);
  // Pipelined: steps queued up to 3 ahead of the token taken give the same ids.
  {
    const int32_t s0 = 0;
    (*m)->ResetSlot(s0);
    ASSERT_TRUE((*m)->Prefill(prompt, {&s0, 1}, LogitsMode::kLast, nullptr).ok());
    auto first = (*m)->StartPicking(s0, sampled);
    ASSERT_TRUE(first.ok()) << first.status().message();
    std::vector<int32_t> piped = {*first};
    int64_t queued = 0;
    while (int64_t(piped.size()) < n_tokens) {
      while (queued < n_tokens - 1 && (*m)->queued_picks() < 3) {
        ASSERT_TRUE((*m)->QueueStepPicked().ok());
        ++queued;
      }
      auto id = (*m)->TakePicked();
      ASSERT_TRUE(id.ok()) << id.status().message();
      piped.push_back(*id);
    }
    EXPECT_EQ(piped, a) << "queued steps differ from one-at-a-time steps";
    EXPECT_FALSE((*m)->TakePicked().ok()) << "TakePicked with nothing queued";
    for (int i = 0; i < Mamba2Model::kMaxQueuedPicks; ++i) ASSERT_TRUE((*m)->QueueStepPicked().ok());
    EXPECT_FALSE((*m)->QueueStepPicked().ok()) << "more steps queued than allowed";
    EXPECT_FALSE((*m)->StepPicked().ok()) << "StepPicked with queued steps";
  }
  // Back to the first parameters: the same seed gives the same ids again (StartPicking drops
  // the steps still queued).
  EXPECT_EQ(CheckPickedAgainstEager(**m, prompt, sampled, n_tokens, &near_ties), a);
  EXPECT_LE(near_ties, 1) << "picks that differ from the reference at a rounding boundary";
  // Misuse is an error, not a crash.
  const int32_t s0 = 0;
  ASSERT_TRUE((*m)->Prefill(prompt, {&s0, 1}, LogitsMode::kLast, nullptr).ok());
  ASSERT_TRUE((*m)->StartPicking(s0, greedy).ok());
  EXPECT_FALSE((*m)->StartPicking(s0, greedy).ok()) << "StartPicking twice from the same logits";
  PickParams bad = greedy;
  bad.n_valid = V + 1;
  EXPECT_FALSE((*m)->StartPicking(s0, bad).ok());
  EXPECT_FALSE((*m)->StartPicking(5, greedy).ok());
}

}  // namespace mamba2::testing
