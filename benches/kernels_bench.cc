// Microbenchmarks of the oneDNN backend's kernels, each against the roofline of the
// bytes it must read: run with --benchmark_counters_tabular=true and compare every
// kernel's bytes_per_second with ReadBandwidth's, measured in the same run.
//
//   build/benches/kernels_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>

#include <omp.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "backends/onednn/cpu.h"
#include "backends/onednn/dnnl_matmul.h"
#include "backends/onednn/quantized_linear.h"
#include "ir/dtype.h"

namespace dsrt::backends::onednn {
namespace {

// Enough copies of a weight that together they overflow the last-level cache, so each
// call streams its weight from memory as a decode step does.
constexpr int64_t kStreamBytes = int64_t{1} << 29;

int64_t CopiesFor(int64_t bytes) { return std::max<int64_t>(2, kStreamBytes / bytes); }

std::vector<float> RandomFloats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

void ReadBandwidth(benchmark::State& state) {
  const int64_t n = kStreamBytes / 4;
  float* data = static_cast<float*>(std::aligned_alloc(64, n * 4));
  std::fill(data, data + n, 1.0f);
  for (auto _ : state) {
    float sum = 0;
#pragma omp parallel reduction(+ : sum)
    {
      const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
      sum += SumF32(data + n * t / threads, n / threads);
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(state.iterations() * n * 4);
  std::free(data);
}
BENCHMARK(ReadBandwidth)->UseRealTime();

// y[m, n] = x[m, k] · Wᵀ, bf16 weights packed for oneDNN. Args: m, n, k.
void PackedLinearBf16(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  Dnnl dnnl;
  WeightArena arena;
  const std::vector<float> w = RandomFloats(n * k, 1);
  std::vector<uint16_t> w_bf16(n * k);
  F32ToBf16(w.data(), w_bf16.data(), n * k);
  std::vector<std::unique_ptr<PackedLinear>> copies;
  for (int64_t c = 0; c < CopiesFor(n * k * 2); ++c) {
    copies.push_back(*PackedLinear::Create(dnnl, arena, {{w_bf16.data(), n}}, ir::DType::kBF16, k, "w"));
  }
  const std::vector<float> x = RandomFloats(m * k, 2);
  std::vector<float> y(m * n);
  size_t next = 0;
  for (auto _ : state) {
    copies[next++ % copies.size()]->Run(x.data(), m, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * n * k * 2);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * n * k * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(PackedLinearBf16)
    ->Args({1, 10944, 2048})     // bench-l4 dense MLP gate, one decoding token
    ->Args({1, 102400, 2048})    // LM head
    ->Args({1, 2816, 2048})      // one expert's gate and up
    ->Args({16, 10944, 2048})    // batch-16 decode
    ->Args({512, 10944, 2048})   // prefill
    ->UseRealTime();

// Weight-only int8/int4 (group 128). Args: m, n, k, bits, and optionally 1 to read one
// copy again and again from the cache: the kernel's arithmetic alone, its ceiling.
void QuantizedLinearBench(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2), bits = state.range(3);
  const bool cached = state.range(4) == 1;
  const int64_t group = 128, bytes = bits == 8 ? n * k : n * k / 2;
  Dnnl dnnl;
  std::mt19937 rng(3);
  std::vector<uint8_t> values(bytes);
  for (uint8_t& b : values) b = static_cast<uint8_t>(rng());
  const std::vector<float> scales = RandomFloats(n * k / group, 4);
  // Copied into huge pages, as the engine's executable does.
  WeightArena arena;
  std::vector<QuantizedLinear> copies;
  for (int64_t c = 0; c < (cached ? 1 : CopiesFor(bytes)); ++c) {
    ir::WeightView vv{bits == 8 ? ir::DType::kI8 : ir::DType::kI4, {n, k}, values.data(), bytes};
    ir::WeightView sv{ir::DType::kF32, {n, k / group}, scales.data(), static_cast<int64_t>(scales.size() * 4)};
    copies.push_back(*QuantizedLinear::Create(dnnl, vv, sv, group, arena));
  }
  const std::vector<float> x = RandomFloats(m * k, 5);
  std::vector<float> y(m * n);
  size_t next = 0;
  for (auto _ : state) {
    copies[next++ % copies.size()].Run(x.data(), m, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}
BENCHMARK(QuantizedLinearBench)
    ->Args({1, 512, 2048, 4, 1})  // from L2: the arithmetic's rate
    ->Args({1, 512, 2048, 8, 1})
    ->Args({1, 10944, 2048, 8, 0})
    ->Args({1, 10944, 2048, 4, 0})
    ->Args({1, 1408, 2048, 4, 0})
    ->Args({1, 2048, 1408, 4, 0})
    ->Args({16, 10944, 2048, 8, 0})
    ->Args({16, 10944, 2048, 4, 0})
    ->Args({32, 10944, 2048, 4, 0})
    ->Args({64, 10944, 2048, 4, 0})
    ->Args({64, 2816, 2048, 4, 0})   // an expert's gate and up, 64 prompt tokens
    ->Args({128, 10944, 2048, 4, 0})  // prefill
    ->Args({128, 2048, 2048, 4, 0})
    ->Args({128, 10944, 2048, 8, 0})
    ->Args({512, 10944, 2048, 4, 0})
    ->Args({512, 10944, 2048, 8, 0})
    ->UseRealTime();

// Repacking a quantized weight into VNNI blocks at load. Args: n, k, bits.
void PackVnniBench(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), group = 128;
  const bool int4 = state.range(2) == 4;
  const int64_t bytes = int4 ? n * k / 2 : n * k;
  std::vector<uint8_t> values(bytes, 0x5a);
  const std::vector<float> scales = RandomFloats(n * k / group, 4);
  std::vector<uint8_t> packed_values(VnniValueBytes(n, k, int4));
  std::vector<float> packed_scales(VnniScaleCount(n, k, group));
  const VnniWeight packed{packed_values.data(), packed_scales.data(), n, k, group, int4};
  for (auto _ : state) {
    PackVnniBlocks({{values.data(), scales.data(), n}}, packed, 0, packed.blocks());
    benchmark::DoNotOptimize(packed_values.data());
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}
BENCHMARK(PackVnniBench)->Args({10944, 2048, 4})->Args({10944, 2048, 8});

void ConvertF32ToBf16(benchmark::State& state) {
  const int64_t n = state.range(0);
  const std::vector<float> x = RandomFloats(n, 6);
  std::vector<uint16_t> y(n);
  for (auto _ : state) {
    F32ToBf16(x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * n * 6);
}
BENCHMARK(ConvertF32ToBf16)->Arg(2048)->Arg(512 * 2048);

}  // namespace
}  // namespace dsrt::backends::onednn

BENCHMARK_MAIN();
