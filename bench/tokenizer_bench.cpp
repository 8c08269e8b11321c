// Encode/decode throughput of the GPT-NeoX tokenizer on wikitext-103 valid (1.1 MB).
//   build-*/bench/tokenizer_bench [--benchmark_filter=...]
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <benchmark/benchmark.h>

#include "tokenizer/tokenizer.h"

namespace {

const std::string kDir = MAMBA2_SHARED_DATA;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "tokenizer_bench: missing %s\n", path.c_str());
    std::exit(1);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string& Text() {
  static const std::string t = ReadFile(kDir + "/wikitext-103-raw-valid.txt");
  return t;
}

std::unique_ptr<mamba2::Tokenizer> LoadNeox() {
  auto r = mamba2::Tokenizer::Load(kDir + "/gpt-neox-20b/tokenizer.json");
  if (!r.ok()) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", r.status().message().c_str());
    std::exit(1);
  }
  return std::make_unique<mamba2::Tokenizer>(std::move(r).value());
}

// Steady state: the per-word cache already holds the text's words.
void BM_EncodeWarm(benchmark::State& state) {
  auto tok = LoadNeox();
  const std::string& text = Text();
  benchmark::DoNotOptimize(tok->Encode(text));
  size_t n = 0;
  for (auto _ : state) {
    auto ids = tok->Encode(text);
    n = ids->size();
    benchmark::DoNotOptimize(ids);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["ids"] = static_cast<double>(n);
}
BENCHMARK(BM_EncodeWarm)->Unit(benchmark::kMillisecond);

// A fresh tokenizer each time, so every distinct word goes through the merge loop once.
void BM_EncodeCold(benchmark::State& state) {
  const std::string& text = Text();
  for (auto _ : state) {
    state.PauseTiming();
    auto tok = LoadNeox();
    state.ResumeTiming();
    benchmark::DoNotOptimize(tok->Encode(text));
    state.PauseTiming();
    tok.reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_EncodeCold)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_Decode(benchmark::State& state) {
  auto tok = LoadNeox();
  const std::vector<int32_t> ids = tok->Encode(Text()).value();
  for (auto _ : state) benchmark::DoNotOptimize(tok->Decode(ids));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * Text().size()));
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

void BM_Load(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(LoadNeox());
}
BENCHMARK(BM_Load)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
