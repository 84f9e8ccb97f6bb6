// Encode / decode throughput on a ~1 MB mixed-language text built from the
// golden cases (testing::BuildBenchmarkText; bench_js.js builds the same text
// for the JavaScript comparison).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "runtime/text/test_data.h"
#include "runtime/text/tokenizer.h"

namespace dsrt::text {
namespace {

constexpr size_t kTextBytes = 1000000;

struct BenchData {
  std::unique_ptr<Tokenizer> tokenizer;
  std::string text;
  std::vector<int32_t> ids;
};

const BenchData& Data() {
  static const BenchData* data = [] {
    auto* d = new BenchData();
    absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = testing::LoadDeepSeekTokenizer();
    absl::StatusOr<std::vector<testing::GoldenCase>> cases = testing::LoadGoldenCases();
    if (!tokenizer.ok() || !cases.ok()) {
      std::fprintf(stderr, "%s\n",
                   std::string(!tokenizer.ok() ? tokenizer.status().message()
                                               : cases.status().message())
                       .c_str());
      std::exit(1);
    }
    d->tokenizer = *std::move(tokenizer);
    d->text = testing::BuildBenchmarkText(*cases, kTextBytes);
    d->ids = *d->tokenizer->Encode(d->text, false);
    std::fprintf(stderr, "benchmark text: %zu bytes, %zu tokens (C++)\n", d->text.size(),
                 d->ids.size());
    return d;
  }();
  return *data;
}

void SetRates(benchmark::State& state, size_t tokens, size_t bytes) {
  state.counters["tokens/s"] = benchmark::Counter(
      static_cast<double>(tokens) * state.iterations(), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
}

void BM_Encode(benchmark::State& state) {
  const BenchData& data = Data();
  for (auto _ : state) {
    absl::StatusOr<std::vector<int32_t>> ids = data.tokenizer->Encode(data.text, false);
    benchmark::DoNotOptimize(ids);
  }
  SetRates(state, data.ids.size(), data.text.size());
}
BENCHMARK(BM_Encode)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// The first encode after loading, with the word cache empty.
void BM_EncodeColdCache(benchmark::State& state) {
  const BenchData& data = Data();
  absl::StatusOr<std::string> json =
      testing::ReadTextFile(testing::TokenizerDir() + "/tokenizer.json");
  absl::StatusOr<std::string> config =
      testing::ReadTextFile(testing::TokenizerDir() + "/tokenizer_config.json");
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<Tokenizer> fresh = *Tokenizer::FromJson(*json, *config);
    state.ResumeTiming();
    absl::StatusOr<std::vector<int32_t>> ids = fresh->Encode(data.text, false);
    benchmark::DoNotOptimize(ids);
    state.PauseTiming();
    fresh.reset();
    state.ResumeTiming();
  }
  SetRates(state, data.ids.size(), data.text.size());
}
BENCHMARK(BM_EncodeColdCache)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_Decode(benchmark::State& state) {
  const BenchData& data = Data();
  for (auto _ : state) {
    absl::StatusOr<std::string> text = data.tokenizer->Decode(data.ids);
    benchmark::DoNotOptimize(text);
  }
  SetRates(state, data.ids.size(), data.text.size());
}
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond)->MinTime(1.0);

void BM_StreamDecode(benchmark::State& state) {
  const BenchData& data = Data();
  for (auto _ : state) {
    StreamDecoder decoder(*data.tokenizer);
    size_t total = 0;
    for (const int32_t id : data.ids) total += decoder.Push(id)->size();
    total += decoder.Finish().size();
    benchmark::DoNotOptimize(total);
  }
  SetRates(state, data.ids.size(), data.text.size());
}
BENCHMARK(BM_StreamDecode)->Unit(benchmark::kMillisecond)->MinTime(1.0);

void BM_Load(benchmark::State& state) {
  for (auto _ : state) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = testing::LoadDeepSeekTokenizer();
    benchmark::DoNotOptimize(tokenizer);
  }
}
BENCHMARK(BM_Load)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace
}  // namespace dsrt::text

BENCHMARK_MAIN();
