// The continuous-batching scheduler on a small random model:
//  - one request alone gives what the single-sequence Generator gives (an independent loop),
//  - requests batched together, queued and interleaved give what each gives alone,
//  - a prompt resumed from a cached state gives bit-identical output to a cold run,
//  - cancelled requests leave and free their slot, a full queue refuses, bad requests are refused.
#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include "serve/scheduler.h"
#include "serve/serve_test_util.h"

namespace mamba2::testing {
namespace {

using serve::GenRequest;
using serve::Metrics;
using serve::RequestHandle;
using serve::Scheduler;
using serve::SchedulerOptions;
using serve::SubmitStatus;
using serve::Update;

// Runs the loop on this thread until every handle has finished.
std::vector<Update> Drain(Scheduler& s, const std::vector<std::shared_ptr<RequestHandle>>& hs) {
  std::vector<Update> out(hs.size());
  for (int guard = 0; guard < 100000; ++guard) {
    bool all = true;
    for (size_t i = 0; i < hs.size(); ++i) {
      hs[i]->Take(&out[i], std::chrono::milliseconds(0));
      all = all && out[i].finished;
    }
    if (all) return out;
    s.RunOnce();
  }
  ADD_FAILURE() << "requests did not finish";
  return out;
}

std::unique_ptr<Scheduler> MakeScheduler(Bundle& b, const SchedulerOptions& o, Metrics* m) {
  auto s = Scheduler::Create(b.model.get(), b.tokenizer.get(), o, m);
  CHECK_MSG(s.ok(), s.status().message());
  return std::move(s).value();
}

std::shared_ptr<RequestHandle> SubmitOk(Scheduler& s, GenRequest r) {
  std::shared_ptr<RequestHandle> h;
  std::string why;
  EXPECT_EQ(s.Submit(std::move(r), &h, &why), SubmitStatus::kOk) << why;
  return h;
}

std::vector<int32_t> TokenIds(const Update& u) {
  std::vector<int32_t> ids;
  for (const auto& t : u.tokens) ids.push_back(t.id);
  return ids;
}

// A spread of requests: prompt lengths around and across the piece boundary, greedy and seeded
// sampling, stop strings, repetition penalty.
std::vector<GenRequest> MixedRequests(const Tokenizer& tok) {
  const char* prompts[] = {"a",
                           "To be, or not to be",
                           "The quick brown fox jumps over the lazy dog. The quick brown fox jumps again.",
                           "0123456789",
                           "Now is the winter of our discontent made glorious summer by this sun of York",
                           "xyz"};
  std::vector<GenRequest> rs;
  for (size_t i = 0; i < std::size(prompts); ++i) {
    GenRequest r;
    r.prompt = Ids(tok, prompts[i]);
    r.max_tokens = 12 + int64_t(i) * 5;
    r.logprobs = 2;
    if (i % 2 == 1) {
      r.sampling.temperature = 0.9f;
      r.sampling.top_k = 40;
      r.sampling.top_p = 0.95f;
      r.sampling.seed = 1000 + i;
    } else {
      r.sampling.temperature = 0.0f;
    }
    if (i == 4) r.sampling.repetition_penalty = 1.3f;
    rs.push_back(r);
  }
  return rs;
}

Update RunAlone(Bundle& b, const SchedulerOptions& o, const GenRequest& r) {
  Metrics m;
  auto s = MakeScheduler(b, o, &m);
  return Drain(*s, {SubmitOk(*s, r)})[0];
}

TEST(Scheduler, AloneMatchesGenerator) {
  Bundle b = LoadServeModel("ref", 2);
  SchedulerOptions o;
  o.max_seqs = 2;
  o.snapshot_interval = 256;  // every prompt here is one piece, as in Generator
  o.cache_bytes = 0;
  for (const GenRequest& r : MixedRequests(*b.tokenizer)) {
    SCOPED_TRACE("prompt of " + std::to_string(r.prompt.size()) + " tokens");
    const Update u = RunAlone(b, o, r);
    Generator gen(b.model.get(), b.tokenizer.get());
    GenerateOptions go;
    go.max_tokens = r.max_tokens;
    go.sampling = r.sampling;
    go.stop = r.stop;
    go.pick_on_backend = false;  // the server samples on the host (it reports logprobs)
    auto want = gen.Generate(r.prompt, go, nullptr);
    ASSERT_TRUE(want.ok()) << want.status().message();
    EXPECT_EQ(u.text, want->text);
    EXPECT_EQ(TokenIds(u), want->tokens);
    EXPECT_EQ(u.completion_tokens, int64_t(want->tokens.size()));
    EXPECT_EQ(u.prompt_tokens, int64_t(r.prompt.size()));
    EXPECT_EQ(u.finish_reason, want->finish_reason == "eos" ? "stop" : want->finish_reason);
  }
}

TEST(Scheduler, StopStringEndsBeforeIt) {
  Bundle b = LoadServeModel("ref", 1);
  SchedulerOptions o;
  o.max_seqs = 1;
  GenRequest r;
  r.prompt = Ids(*b.tokenizer, "Once upon a time");
  r.max_tokens = 40;
  r.sampling.temperature = 0.0f;
  const Update full = RunAlone(b, o, r);
  ASSERT_GE(full.text.size(), 12u);
  // A stop string taken from the middle of the free-running text.
  r.stop = {full.text.substr(6, 3)};
  const size_t at = full.text.find(r.stop[0]);
  const Update cut = RunAlone(b, o, r);
  EXPECT_EQ(cut.finish_reason, "stop");
  EXPECT_EQ(cut.text, full.text.substr(0, at));
  EXPECT_LT(cut.completion_tokens, full.completion_tokens);
}

TEST(Scheduler, BatchedAndInterleavedEqualsAlone) {
  Bundle b = LoadServeModel("ref", 4);
  SchedulerOptions o;
  o.max_seqs = 4;  // 6 requests: two wait in the queue and take freed slots
  o.snapshot_interval = 8;
  o.prefill_budget = 8;  // one piece per iteration: prompts interleave with decoding
  o.cache_bytes = 0;
  const std::vector<GenRequest> rs = MixedRequests(*b.tokenizer);
  std::vector<Update> alone;
  for (const GenRequest& r : rs) alone.push_back(RunAlone(b, o, r));

  Metrics m;
  auto s = MakeScheduler(b, o, &m);
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (const GenRequest& r : rs) hs.push_back(SubmitOk(*s, r));
  const std::vector<Update> together = Drain(*s, hs);
  for (size_t i = 0; i < rs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    EXPECT_EQ(together[i].text, alone[i].text);
    EXPECT_EQ(TokenIds(together[i]), TokenIds(alone[i]));
    ASSERT_EQ(together[i].tokens.size(), alone[i].tokens.size());
    for (size_t t = 0; t < alone[i].tokens.size(); ++t) {
      EXPECT_EQ(together[i].tokens[t].logprob, alone[i].tokens[t].logprob);
      EXPECT_EQ(together[i].tokens[t].text_offset, alone[i].tokens[t].text_offset);
      ASSERT_EQ(together[i].tokens[t].top.size(), 2u);
      EXPECT_EQ(together[i].tokens[t].top[0].id, alone[i].tokens[t].top[0].id);
    }
    EXPECT_EQ(together[i].finish_reason, alone[i].finish_reason);
  }
  // The batch really was shared: fewer steps than sequences advanced.
  EXPECT_LT(m.decode_steps.load(), m.decode_rows.load());
  EXPECT_EQ(m.running.load(), 0);
  EXPECT_EQ(m.queue_length.load(), 0);
}

TEST(Scheduler, ThreadedClientsEqualAlone) {
  Bundle b = LoadServeModel("ref", 3);
  SchedulerOptions o;
  o.max_seqs = 3;
  o.snapshot_interval = 16;
  const std::vector<GenRequest> rs = MixedRequests(*b.tokenizer);
  std::vector<Update> alone;
  for (const GenRequest& r : rs) alone.push_back(RunAlone(b, o, r));

  Metrics m;
  auto s = MakeScheduler(b, o, &m);
  s->Start();
  std::vector<Update> got(rs.size() * 2);
  std::vector<std::thread> clients;
  for (size_t c = 0; c < got.size(); ++c)
    clients.emplace_back([&, c] {
      std::shared_ptr<RequestHandle> h;
      if (s->Submit(rs[c % rs.size()], &h) != SubmitStatus::kOk) return;
      got[c] = h->Wait();
    });
  for (auto& t : clients) t.join();
  s->Stop();
  for (size_t c = 0; c < got.size(); ++c) {
    SCOPED_TRACE("client " + std::to_string(c));
    EXPECT_TRUE(got[c].finished);
    EXPECT_EQ(got[c].text, alone[c % rs.size()].text);
  }
}

// On the cpu backend a prompt fed in different pieces rounds differently; resuming only at piece
// boundaries a cold run also passes through makes a cache hit bit-identical anyway.
TEST(Scheduler, CacheHitIsBitIdenticalToColdRun) {
  Bundle b = LoadServeModel("cpu", 2);
  SchedulerOptions o;
  o.max_seqs = 2;
  o.snapshot_interval = 8;
  o.cache_bytes = 64 << 20;
  GenRequest a;
  a.prompt = Ids(*b.tokenizer, "It was the best of times, it was the worst");  // 42 tokens
  a.max_tokens = 24;
  a.sampling.temperature = 0.0f;
  a.logprobs = 1;
  GenRequest c = a;  // shares the first 35 tokens with a, then goes elsewhere
  c.prompt.resize(35);
  for (int32_t id : Ids(*b.tokenizer, " of all ages, said the man")) c.prompt.push_back(id);

  SchedulerOptions cold = o;
  cold.cache_bytes = 0;
  const Update a_cold = RunAlone(b, cold, a);
  const Update c_cold = RunAlone(b, cold, c);

  Metrics m;
  auto s = MakeScheduler(b, o, &m);
  const Update a1 = Drain(*s, {SubmitOk(*s, a)})[0];
  EXPECT_EQ(a1.cached_tokens, 0);
  EXPECT_EQ(m.cache_misses.load(), 1);
  EXPECT_EQ(m.prefill_tokens.load(), int64_t(a.prompt.size()));
  // Snapshots at 8, 16, 24, 32, 40 and the prompt end (42).
  EXPECT_EQ(s->cache().entries(), 6u);

  const Update c1 = Drain(*s, {SubmitOk(*s, c)})[0];
  EXPECT_EQ(c1.cached_tokens, 32);  // the deepest boundary inside the shared 35 tokens
  EXPECT_EQ(m.cache_hits.load(), 1);
  EXPECT_EQ(m.cache_hit_tokens.load(), 32);
  EXPECT_EQ(m.prefill_tokens.load(), int64_t(a.prompt.size() + c.prompt.size() - 32));
  EXPECT_EQ(c1.text, c_cold.text);
  ASSERT_EQ(c1.tokens.size(), c_cold.tokens.size());
  for (size_t t = 0; t < c1.tokens.size(); ++t) {
    EXPECT_EQ(c1.tokens[t].id, c_cold.tokens[t].id);
    EXPECT_EQ(c1.tokens[t].logprob, c_cold.tokens[t].logprob) << "token " << t;  // bit-identical
  }

  // Why the boundaries matter: the same prompt fed in one piece rounds differently on this
  // backend (reported, not asserted: a backend may be exact under re-association).
  SchedulerOptions one_piece = cold;
  one_piece.snapshot_interval = 1024;
  const Update c_one = RunAlone(b, one_piece, c);
  bool differs = c_one.tokens.size() != c_cold.tokens.size();
  for (size_t t = 0; !differs && t < c_one.tokens.size(); ++t) differs = c_one.tokens[t].logprob != c_cold.tokens[t].logprob;
  std::printf("[ info ] one-piece prefill %s the piece-wise prefill bit for bit\n", differs ? "differs from" : "equals");

  // The same prompt again resumes from its end (logits stored with the snapshot): no prefill.
  const int64_t before = m.prefill_tokens.load();
  const Update a2 = Drain(*s, {SubmitOk(*s, a)})[0];
  EXPECT_EQ(a2.cached_tokens, int64_t(a.prompt.size()));
  EXPECT_EQ(m.prefill_tokens.load(), before);
  EXPECT_EQ(m.cache_hits.load(), 2);
  EXPECT_EQ(a2.text, a_cold.text);
  ASSERT_EQ(a2.tokens.size(), a_cold.tokens.size());
  for (size_t t = 0; t < a2.tokens.size(); ++t) EXPECT_EQ(a2.tokens[t].logprob, a_cold.tokens[t].logprob);
  EXPECT_EQ(a1.text, a_cold.text);
}

TEST(Scheduler, CancelFreesTheSlot) {
  Bundle b = LoadServeModel("ref", 1);
  SchedulerOptions o;
  o.max_seqs = 1;
  Metrics m;
  auto s = MakeScheduler(b, o, &m);
  GenRequest r;
  r.prompt = Ids(*b.tokenizer, "hello");
  r.max_tokens = 1000;
  r.sampling.temperature = 0.0f;
  r.stop_at_eos = false;
  auto long_one = SubmitOk(*s, r);
  auto queued = SubmitOk(*s, r);  // waits: one slot
  for (int i = 0; i < 5; ++i) s->RunOnce();
  EXPECT_EQ(m.running.load(), 1);
  EXPECT_EQ(m.queue_length.load(), 1);
  queued->Cancel();
  long_one->Cancel();
  s->RunOnce();
  Update u1, u2;
  ASSERT_TRUE(long_one->Take(&u1, std::chrono::milliseconds(0)));
  EXPECT_TRUE(u1.finished);
  EXPECT_EQ(u1.finish_reason, "cancelled");
  EXPECT_GT(u1.completion_tokens, 0);
  EXPECT_LT(u1.completion_tokens, 1000);
  ASSERT_TRUE(queued->Take(&u2, std::chrono::milliseconds(0)));
  EXPECT_EQ(u2.finish_reason, "cancelled");
  EXPECT_EQ(u2.completion_tokens, 0);
  EXPECT_EQ(m.cancelled.load(), 2);
  EXPECT_EQ(m.running.load(), 0);
  // The slot is free again.
  r.max_tokens = 3;
  const Update u3 = Drain(*s, {SubmitOk(*s, r)})[0];
  EXPECT_EQ(u3.finish_reason, "length");
  EXPECT_EQ(u3.completion_tokens, 3);
}

TEST(Scheduler, FullQueueAndBadRequestsAreRefused) {
  Bundle b = LoadServeModel("ref", 1);
  SchedulerOptions o;
  o.max_seqs = 1;
  o.max_queue = 2;
  Metrics m;
  auto s = MakeScheduler(b, o, &m);
  GenRequest r;
  r.prompt = {1, 2, 3};
  std::shared_ptr<RequestHandle> h;
  EXPECT_EQ(s->Submit(r, &h), SubmitStatus::kOk);
  EXPECT_EQ(s->Submit(r, &h), SubmitStatus::kOk);
  EXPECT_EQ(s->Submit(r, &h), SubmitStatus::kQueueFull);
  s->RunOnce();  // admits one: room in the queue again
  EXPECT_EQ(s->Submit(r, &h), SubmitStatus::kOk);

  std::string why;
  GenRequest bad = r;
  bad.prompt.clear();
  EXPECT_EQ(s->Submit(bad, &h, &why), SubmitStatus::kInvalid);
  bad = r;
  bad.prompt = {1, 272};
  EXPECT_EQ(s->Submit(bad, &h, &why), SubmitStatus::kInvalid);
  EXPECT_NE(why.find("272"), std::string::npos) << why;
  bad = r;
  bad.max_tokens = 0;
  EXPECT_EQ(s->Submit(bad, &h, &why), SubmitStatus::kInvalid);
  bad = r;
  bad.sampling.top_p = 0.0f;
  EXPECT_EQ(s->Submit(bad, &h, &why), SubmitStatus::kInvalid);
  EXPECT_NE(why.find("top_p"), std::string::npos) << why;

  s->Stop();
  EXPECT_EQ(s->Submit(r, &h), SubmitStatus::kStopped);
}

TEST(Scheduler, CreateChecksOptions) {
  Bundle b = LoadServeModel("ref", 2);
  Metrics m;
  SchedulerOptions o;
  o.max_seqs = 3;  // more than the model's slots
  EXPECT_FALSE(Scheduler::Create(b.model.get(), b.tokenizer.get(), o, &m).ok());
  o.max_seqs = 0;
  EXPECT_FALSE(Scheduler::Create(b.model.get(), b.tokenizer.get(), o, &m).ok());
  o.max_seqs = 2;
  o.snapshot_interval = 0;
  EXPECT_FALSE(Scheduler::Create(b.model.get(), b.tokenizer.get(), o, &m).ok());
}

}  // namespace
}  // namespace mamba2::testing
