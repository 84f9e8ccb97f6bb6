// The row kernels: the AVX-512 versions against the plain ones, and the quantized
// dot products against dequantize-then-multiply.

#include "backends/onednn/cpu.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "ir/dtype.h"

namespace dsrt::backends::onednn {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// Runs `fn` once with the vector kernels and once with the plain ones.
template <typename Fn>
void BothPaths(Fn fn) {
  ForcePlainKernels(false);
  fn(/*vector=*/UsingAvx512());
  ForcePlainKernels(true);
  fn(/*vector=*/false);
  ForcePlainKernels(false);
}

TEST(CpuKernels, Bf16ConversionRoundsToNearestEvenLikeTheIr) {
  std::vector<float> x = Random(1000, 1, 100.0f);
  x.push_back(1.0f + 1.0f / 256);  // a tie: rounds to even
  x.push_back(-0.0f);
  BothPaths([&](bool) {
    std::vector<uint16_t> bf16(x.size());
    F32ToBf16(x.data(), bf16.data(), static_cast<int64_t>(x.size()));
    std::vector<float> back(x.size());
    Bf16ToF32(bf16.data(), back.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_EQ(bf16[i], ir::F32ToBF16(x[i])) << "element " << i;
      ASSERT_EQ(back[i], ir::RoundToBF16(x[i]));
    }
  });
}

TEST(CpuKernels, DotsAndAxpyAgreeWithDoubleLoopsAtOddLengths) {
  for (int64_t n : {1, 15, 16, 33, 577}) {
    const std::vector<float> a = Random(n, 2), b = Random(n, 3);
    std::vector<uint16_t> b16(n);
    for (int64_t i = 0; i < n; ++i) b16[i] = ir::F32ToBF16(b[i]);
    double want = 0, want16 = 0;
    for (int64_t i = 0; i < n; ++i) {
      want += static_cast<double>(a[i]) * b[i];
      want16 += static_cast<double>(a[i]) * ir::BF16ToF32(b16[i]);
    }
    BothPaths([&](bool) {
      EXPECT_NEAR(DotF32(a.data(), b.data(), n), want, 1e-4 * std::sqrt(n));
      EXPECT_NEAR(DotBf16(a.data(), b16.data(), n), want16, 1e-4 * std::sqrt(n));
      std::vector<float> y(n, 1.0f);
      AxpyBf16(0.5f, b16.data(), y.data(), n);
      for (int64_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(y[i], 1.0f + 0.5f * ir::BF16ToF32(b16[i]));
    });
  }
}

// Per-group quantized activations and weights: the VNNI dot product must equal the
// integer sum it stands for, scaled. k = 320 leaves a last group of 64 columns.
// `tokens` 1 and 2 take the four-stream decode path, more the row-at-a-time one. The
// rows are computed as two ranges, as two threads would take them.
void ExpectQuantizedRowsEqualIntegerSums(int64_t k, int64_t group, bool test_int4, int64_t tokens) {
  const int64_t rows = 19, groups = (k + group - 1) / group;
  const std::vector<float> x = Random(tokens * k, 4);
  std::vector<int8_t> qx(tokens * k), even_odd(tokens * k);
  std::vector<float> x_scales(tokens * groups);
  std::vector<int32_t> x_sums(tokens * groups);
  QuantizeActivations(x.data(), tokens, k, group, qx.data(), even_odd.data(), x_scales.data(), x_sums.data());
  const QuantizedActivations qa{qx.data(), even_odd.data(), x_scales.data(), x_sums.data(), tokens};
  std::mt19937 rng(5);
  std::vector<int8_t> w8(rows * k);
  std::vector<uint8_t> w4(rows * k / 2);
  for (int8_t& w : w8) w = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  for (uint8_t& w : w4) w = static_cast<uint8_t>(rng());
  const std::vector<float> w_scales = Random(rows * groups, 6);
  auto nibble = [&](int64_t i) {
    const int v = i % 2 == 0 ? (w4[i / 2] & 0x0f) : (w4[i / 2] >> 4);
    return v >= 8 ? v - 16 : v;
  };
  auto expected = [&](bool int4, int64_t m, int64_t r) {
    double total = 0;
    for (int64_t g = 0; g < groups; ++g) {
      int64_t sum = 0;
      for (int64_t j = g * group; j < std::min(k, (g + 1) * group); ++j) {
        sum += (int4 ? nibble(r * k + j) : w8[r * k + j]) * qx[m * k + j];
      }
      total += static_cast<double>(w_scales[r * groups + g]) * x_scales[m * groups + g] * sum;
    }
    return total;
  };
  BothPaths([&](bool vector) {
    std::vector<float> y8(tokens * rows), y4(tokens * rows);
    const std::pair<int64_t, int64_t> ranges[] = {{0, 2}, {2, rows}};
    for (const auto& [begin, end] : ranges) {
      QuantizedRowsI8(qa, w8.data(), w_scales.data(), k, group, begin, end, y8.data(), rows);
      if (test_int4) QuantizedRowsI4(qa, w4.data(), w_scales.data(), k, group, begin, end, y4.data(), rows);
    }
    for (int64_t m = 0; m < tokens; ++m) {
      for (int64_t r = 0; r < rows; ++r) {
        ASSERT_NEAR(y8[m * rows + r], expected(false, m, r), 1e-3 * (1 + std::abs(expected(false, m, r))))
            << (vector ? "avx512" : "plain") << " int8 token " << m << " of " << tokens << " row " << r;
        if (!test_int4) continue;
        ASSERT_NEAR(y4[m * rows + r], expected(true, m, r), 1e-3 * (1 + std::abs(expected(true, m, r))))
            << (vector ? "avx512" : "plain") << " int4 token " << m << " of " << tokens << " row " << r;
      }
    }
  });
}

TEST(CpuKernels, QuantizedRowsEqualTheirIntegerSums) {
  for (int64_t tokens : {1, 2, 5}) ExpectQuantizedRowsEqualIntegerSums(256, 128, true, tokens);
}
TEST(CpuKernels, QuantizedRowsHandleAShortLastGroup) {
  for (int64_t tokens : {1, 2, 5}) ExpectQuantizedRowsEqualIntegerSums(320, 128, true, tokens);
}
TEST(CpuKernels, Int8RowsTakeGroupsOf64) {
  for (int64_t tokens : {1, 2, 5}) ExpectQuantizedRowsEqualIntegerSums(320, 64, false, tokens);
}

TEST(CpuKernels, SiluMulIsWithinAFewUlpsOfDoubleExpAcrossTheRange) {
  std::vector<float> gate = Random(997, 11, 8.0f);  // an odd length: a masked tail
  for (float g : {0.0f, -0.0f, 1e-30f, -1e-30f, 87.0f, 89.0f, -87.0f, -89.0f, -103.0f, -110.0f, 200.0f, -200.0f}) {
    gate.push_back(g);
  }
  const int64_t n = static_cast<int64_t>(gate.size());
  const std::vector<float> up = Random(n, 12);
  for (bool round : {false, true}) {
    BothPaths([&](bool vector) {
      std::vector<float> out(n);
      SiluMul(gate.data(), up.data(), n, round, out.data());
      for (int64_t i = 0; i < n; ++i) {
        const float silu = static_cast<float>(gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i]))));
        const float want = (round ? ir::RoundToBF16(silu) : silu) * up[i];
        // Rounding to bf16 can go the other way after an ulp of difference: one bf16 step
        // then. Below -88.7, 1 + e^-g overflows f32 and the vector silu is -0, not -1e-37.
        const float tolerance = std::max(std::fabs(want) * (round ? 8e-3f : 1e-6f), vector ? 1e-30f : 0.0f);
        ASSERT_NEAR(out[i], want, tolerance) << "gate " << gate[i] << ", vector " << vector << ", bf16 " << round;
      }
    });
  }
}

// y = x · W for a bf16 row and matrix, W given transposed or not, odd k, n across blocks.
TEST(CpuKernels, Bf16GemvEqualsItsProductsSummed) {
  for (auto [k, n] : {std::pair<int64_t, int64_t>{7, 5}, {128, 512}, {65, 130}}) {
    for (bool transposed : {false, true}) {
      std::vector<uint16_t> w(k * n), x(k);
      const std::vector<float> wf = Random(k * n, 13), xf = Random(k, 14);
      for (int64_t i = 0; i < k * n; ++i) w[i] = ir::F32ToBF16(wf[i]);
      for (int64_t i = 0; i < k; ++i) x[i] = ir::F32ToBF16(xf[i]);
      const int64_t k_stride = transposed ? 1 : n, n_stride = transposed ? k : 1;
      std::vector<uint16_t> packed(Bf16GemvPackedElements(k, n));
      PackBf16Gemv(w.data(), k, n, k_stride, n_stride, packed.data());
      BothPaths([&](bool vector) {
        std::vector<float> y(n);
        Bf16Gemv(x.data(), packed.data(), k, n, y.data());
        for (int64_t j = 0; j < n; ++j) {
          double want = 0, magnitude = 0;
          for (int64_t i = 0; i < k; ++i) {
            const double term = static_cast<double>(ir::BF16ToF32(x[i])) * ir::BF16ToF32(w[i * k_stride + j * n_stride]);
            want += term;
            magnitude += std::fabs(term);
          }
          ASSERT_NEAR(y[j], want, 1e-6 * magnitude) << "k " << k << " n " << n << " column " << j << ", vector " << vector;
        }
      });
    }
  }
}

TEST(CpuKernels, ActivationQuantizationKeepsEachGroupWithinHalfAStep) {
  const int64_t k = 256, group = 128;
  const std::vector<float> x = Random(k, 7, 3.0f);
  std::vector<int8_t> q(k);
  std::vector<float> scales(2);
  std::vector<int32_t> sums(2);
  QuantizeActivations(x.data(), 1, k, group, q.data(), nullptr, scales.data(), sums.data());
  for (int64_t j = 0; j < k; ++j) EXPECT_LE(std::abs(q[j] * scales[j / group] - x[j]), scales[j / group] * 0.5f + 1e-6);
}

TEST(CpuKernels, ActivationQuantizationIsTheSameOnBothPaths) {
  const int64_t tokens = 2, k = 448, group = 128, groups = 4;  // a short last group; a last 64 for even/odd
  const std::vector<float> x = Random(tokens * k, 10, 2.0f);
  struct Result {
    std::vector<int8_t> values = std::vector<int8_t>(tokens * k), even_odd = std::vector<int8_t>(tokens * k);
    std::vector<float> scales = std::vector<float>(tokens * groups);
    std::vector<int32_t> sums = std::vector<int32_t>(tokens * groups);
  };
  Result results[2];
  BothPaths([&](bool vector) {
    Result& r = results[vector];
    QuantizeActivations(x.data(), tokens, k, group, r.values.data(), r.even_odd.data(), r.scales.data(),
                        r.sums.data());
  });
  EXPECT_EQ(results[0].values, results[1].values);
  EXPECT_EQ(results[0].even_odd, results[1].even_odd);
  EXPECT_EQ(results[0].scales, results[1].scales);
  EXPECT_EQ(results[0].sums, results[1].sums);
}

TEST(CpuKernels, Bf16DequantizationEqualsRoundedValuesTimesScales) {
  const int64_t rows = 3, k = 192, group = 64;
  std::mt19937 rng(8);
  std::vector<uint8_t> w(rows * k);
  for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
  const std::vector<float> scales = Random(rows * k / group, 9);
  for (bool int4 : {false, true}) {
    std::vector<float> want(rows * k);
    DequantizeRowsF32(w.data(), int4, scales.data(), k, group, 0, rows, want.data());
    BothPaths([&](bool vector) {
      std::vector<uint16_t> got(rows * k);
      DequantizeRowsBf16(w.data(), int4, scales.data(), k, group, 0, rows, got.data());
      for (int64_t i = 0; i < rows * k; ++i) {
        ASSERT_EQ(got[i], ir::F32ToBF16(want[i])) << (vector ? "avx512" : "plain") << (int4 ? " int4 " : " int8 ") << i;
      }
    });
  }
}

TEST(CpuKernels, DequantizedRowsMatchValuesTimesScales) {
  const int64_t k = 6, group = 4;
  const int8_t w8[] = {1, -2, 3, -4, 5, -6};
  const float scales[] = {0.5f, 2.0f};
  std::vector<float> out(k);
  DequantizeRowsF32(w8, false, scales, k, group, 0, 1, out.data());
  EXPECT_EQ(out, (std::vector<float>{0.5f, -1.0f, 1.5f, -2.0f, 10.0f, -12.0f}));
  const uint8_t w4[] = {0x21, 0x43, 0xf8};  // 1, 2, 3, 4, -8, -1
  DequantizeRowsF32(w4, true, scales, k, group, 0, 1, out.data());
  EXPECT_EQ(out, (std::vector<float>{0.5f, 1.0f, 1.5f, 2.0f, -16.0f, -2.0f}));
}

}  // namespace
}  // namespace dsrt::backends::onednn
