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

// A random i8 [rows, k] or i4 (two a byte) weight with scales, and its VNNI packing.
struct PackedWeight {
  std::vector<uint8_t> raw;
  std::vector<float> raw_scales;
  std::vector<uint8_t> values;
  std::vector<float> scales;
  VnniWeight w;

  PackedWeight(int64_t rows, int64_t k, int64_t group, bool int4, uint32_t seed) {
    std::mt19937 rng(seed);
    raw.resize(int4 ? rows * k / 2 : rows * k);
    for (uint8_t& b : raw) b = static_cast<uint8_t>(int4 ? rng() : rng() % 255 + 129);  // i8: −127 … 127
    raw_scales = Random(rows * ((k + group - 1) / group), seed + 1);
    values.resize(VnniValueBytes(rows, k, int4));
    scales.resize(VnniScaleCount(rows, k, group));
    w = {values.data(), scales.data(), rows, k, group, int4};
    // Packed in two calls, as two threads would.
    PackVnniBlocks({{raw.data(), raw_scales.data(), rows}}, w, 0, 1);
    PackVnniBlocks({{raw.data(), raw_scales.data(), rows}}, w, 1, w.blocks());
  }
  int Value(int64_t r, int64_t j) const {
    const int64_t k = w.k, i = r * k + j;
    if (!w.int4) return static_cast<int8_t>(raw[i]);
    const int v = i % 2 == 0 ? (raw[i / 2] & 0x0f) : (raw[i / 2] >> 4);
    return v >= 8 ? v - 16 : v;
  }
};

TEST(CpuKernels, PackedWeightsDequantizeToValuesTimesScales) {
  for (bool int4 : {false, true}) {
    const PackedWeight p(70, 48, 16, int4, 21);  // a padded last block
    std::vector<float> out(70 * 48);
    DequantizeVnniRows(p.w, 0, 70, out.data());
    for (int64_t r = 0; r < 70; ++r) {
      for (int64_t j = 0; j < 48; ++j) {
        ASSERT_EQ(out[r * 48 + j], p.Value(r, j) * p.raw_scales[r * 3 + j / 16]) << "row " << r << " column " << j;
      }
    }
  }
}

TEST(CpuKernels, StackedPartsPackAsTheirJoinedRows) {
  for (bool int4 : {false, true}) {
    const PackedWeight joined(70, 48, 16, int4, 22);
    const int64_t split = 40, row_bytes = int4 ? 24 : 48, groups = 3;
    std::vector<uint8_t> values(joined.values.size());
    std::vector<float> scales(joined.scales.size());
    VnniWeight w = joined.w;
    w.values = values.data();
    w.scales = scales.data();
    PackVnniBlocks({{joined.raw.data(), joined.raw_scales.data(), split},
                    {joined.raw.data() + split * row_bytes, joined.raw_scales.data() + split * groups, 70 - split}},
                   w, 0, w.blocks());
    EXPECT_EQ(values, joined.values) << (int4 ? "int4" : "int8");
    EXPECT_EQ(scales, joined.scales) << (int4 ? "int4" : "int8");
  }
}

// Per-group quantized activations and weights: the VNNI dot products must equal the
// integer sums they stand for, scaled. 130 rows leave a last block of 2; k = 320 in
// groups of 128 leaves a short last group. The blocks are computed as two ranges, as two
// threads would take them; 1 to 9 tokens cover the token tiles and their remainders.
void ExpectPackedRowsEqualIntegerSums(int64_t k, int64_t group, bool int4, int64_t tokens) {
  const int64_t rows = 130, groups = (k + group - 1) / group;
  const std::vector<float> x = Random(tokens * k, 4);
  std::vector<int8_t> qx(tokens * k);
  std::vector<float> x_scales(tokens * groups);
  std::vector<int32_t> x_sums(tokens * groups);
  QuantizeActivations(x.data(), tokens, k, group, qx.data(), x_scales.data(), x_sums.data());
  const QuantizedActivations qa{qx.data(), x_scales.data(), x_sums.data(), tokens};
  const PackedWeight p(rows, k, group, int4, 5);
  auto expected = [&](int64_t m, int64_t r) {
    double total = 0;
    for (int64_t g = 0; g < groups; ++g) {
      int64_t sum = 0;
      for (int64_t j = g * group; j < std::min(k, (g + 1) * group); ++j) sum += p.Value(r, j) * qx[m * k + j];
      total += static_cast<double>(p.raw_scales[r * groups + g]) * x_scales[m * groups + g] * sum;
    }
    return total;
  };
  BothPaths([&](bool vector) {
    std::vector<float> y(tokens * rows, -1.0f);
    VnniRowBlocks(qa, p.w, 0, 1, y.data(), rows);
    VnniRowBlocks(qa, p.w, 1, p.w.blocks(), y.data(), rows);
    for (int64_t m = 0; m < tokens; ++m) {
      for (int64_t r = 0; r < rows; ++r) {
        ASSERT_NEAR(y[m * rows + r], expected(m, r), 1e-3 * (1 + std::abs(expected(m, r))))
            << (vector ? "avx512" : "plain") << (int4 ? " int4" : " int8") << " token " << m << " of " << tokens
            << " row " << r;
      }
    }
  });
}

TEST(CpuKernels, PackedRowsEqualTheirIntegerSums) {
  for (bool int4 : {false, true}) {
    for (int64_t tokens : {1, 2, 3, 4, 5, 9}) ExpectPackedRowsEqualIntegerSums(256, 128, int4, tokens);
  }
}
TEST(CpuKernels, PackedRowsHandleAShortLastGroup) {
  for (bool int4 : {false, true}) {
    for (int64_t tokens : {1, 6}) ExpectPackedRowsEqualIntegerSums(320, 128, int4, tokens);
  }
}
TEST(CpuKernels, PackedRowsTakeSmallGroups) {
  ExpectPackedRowsEqualIntegerSums(48, 8, true, 3);
  ExpectPackedRowsEqualIntegerSums(44, 4, false, 3);
}
TEST(CpuKernels, PackingNeedsWholeColumnSteps) {
  EXPECT_TRUE(VnniPackable(2048, 128, true));
  EXPECT_TRUE(VnniPackable(44, 4, false));
  EXPECT_FALSE(VnniPackable(44, 4, true));
  EXPECT_FALSE(VnniPackable(64, 6, false));
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
  QuantizeActivations(x.data(), 1, k, group, q.data(), scales.data(), sums.data());
  for (int64_t j = 0; j < k; ++j) EXPECT_LE(std::abs(q[j] * scales[j / group] - x[j]), scales[j / group] * 0.5f + 1e-6);
}

TEST(CpuKernels, ActivationQuantizationIsTheSameOnBothPaths) {
  const int64_t tokens = 2, k = 448, group = 128, groups = 4;  // a short last group
  const std::vector<float> x = Random(tokens * k, 10, 2.0f);
  struct Result {
    std::vector<int8_t> values = std::vector<int8_t>(tokens * k);
    std::vector<float> scales = std::vector<float>(tokens * groups);
    std::vector<int32_t> sums = std::vector<int32_t>(tokens * groups);
  };
  Result results[2];
  BothPaths([&](bool vector) {
    Result& r = results[vector];
    QuantizeActivations(x.data(), tokens, k, group, r.values.data(), r.scales.data(), r.sums.data());
  });
  EXPECT_EQ(results[0].values, results[1].values);
  EXPECT_EQ(results[0].scales, results[1].scales);
  EXPECT_EQ(results[0].sums, results[1].sums);
}

}  // namespace
}  // namespace dsrt::backends::onednn
