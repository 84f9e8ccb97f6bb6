#include "passes/weight_recipes.h"

#include <cmath>
#include <cstring>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ir/parser.h"

namespace dsrt::passes {
namespace {

using ::testing::HasSubstr;

std::vector<float> RandomMatrix(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  std::vector<float> w(n);
  for (float& x : w) x = uniform(rng);
  return w;
}

// Every element comes back within half a step of its group's scale, and the largest
// |w| of each group maps to ±qmax.
void ExpectRoundTrip(int64_t rows, int64_t cols, int64_t group, int qmax) {
  const std::vector<float> w = RandomMatrix(rows * cols, rows * 1000 + cols);
  const QuantizedMatrix q = QuantizeGroupwise(w, rows, cols, group, qmax);
  const int64_t groups = (cols + group - 1) / group;
  ASSERT_EQ(static_cast<int64_t>(q.scales.size()), rows * groups);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      float max_abs = 0;
      int max_q = 0;
      const float scale = q.scales[r * groups + g];
      for (int64_t j = g * group; j < std::min(cols, (g + 1) * group); ++j) {
        const int v = q.values[r * cols + j];
        ASSERT_LE(std::abs(v), qmax);
        EXPECT_LE(std::abs(w[r * cols + j] - v * scale), scale / 2 * (1 + 1e-5f)) << r << "," << j;
        max_abs = std::max(max_abs, std::abs(w[r * cols + j]));
        max_q = std::max(max_q, std::abs(v));
      }
      EXPECT_FLOAT_EQ(scale, max_abs / qmax);
      EXPECT_EQ(max_q, qmax);
    }
  }
}

TEST(QuantizeGroupwise, Int8ErrorIsAtMostHalfAScale) { ExpectRoundTrip(5, 256, 128, 127); }
TEST(QuantizeGroupwise, Int4ErrorIsAtMostHalfAScale) { ExpectRoundTrip(5, 256, 32, 7); }
TEST(QuantizeGroupwise, LastGroupMayBePartial) {
  ExpectRoundTrip(3, 100, 32, 127);  // groups of 32, 32, 32, 4
  ExpectRoundTrip(3, 7, 128, 7);     // one group narrower than group_size
}

TEST(QuantizeGroupwise, GroupsAreIndependentAndZeroGroupsStayZero) {
  // Row 0: group 0 small, group 1 large; row 1: all zero.
  const std::vector<float> w = {0.1f, -0.2f, 10.0f, 5.0f, 0, 0, 0, 0};
  const QuantizedMatrix q = QuantizeGroupwise(w, 2, 4, 2, 127);
  EXPECT_FLOAT_EQ(q.scales[0], 0.2f / 127);
  EXPECT_FLOAT_EQ(q.scales[1], 10.0f / 127);
  EXPECT_EQ(q.values[0], 64);  // 0.1 / (0.2/127) = 63.5 → 64 (nearest even: 64)
  EXPECT_EQ(q.values[1], -127);
  EXPECT_EQ(q.values[2], 127);
  EXPECT_EQ(q.values[3], 64);
  for (int j = 4; j < 8; ++j) EXPECT_EQ(q.values[j], 0);
  EXPECT_FLOAT_EQ(q.scales[2], 1.0f);
}

TEST(PackInt4, LowNibbleFirstTwoAByte) {
  const std::vector<int8_t> values = {1, -1, 7, -8, 3};
  const std::vector<uint8_t> packed = PackInt4(values);
  ASSERT_EQ(packed.size(), 3u);
  EXPECT_EQ(packed[0], 0xF1);  // element 0 (1) low, element 1 (-1 = 0xF) high
  EXPECT_EQ(packed[1], 0x87);
  EXPECT_EQ(packed[2], 0x03);
  for (size_t k = 0; k < values.size(); ++k) EXPECT_EQ(UnpackInt4(packed.data(), k), values[k]) << k;
}

std::unique_ptr<ir::Graph> Constant(absl::string_view attrs, absl::string_view type) {
  auto graph = ir::ParseGraph(absl::StrCat("graph main {\n  %w = Constant() {", attrs, "} : ", type,
                                           "\n  return %w\n}"));
  EXPECT_TRUE(graph.ok()) << graph.status();
  return std::move(graph).value();
}

constexpr char kSource[] = "layer.weight";

absl::StatusOr<std::vector<float>> LoadSource(const std::string& name, const std::vector<int64_t>& shape) {
  if (name != kSource || shape != std::vector<int64_t>{2, 6}) return absl::NotFoundError(name);
  return std::vector<float>{1, 2, 3, 4, 5, 6, -6, -5, -4, -3, -2, -1};
}

TEST(DeriveWeight, QuantizesTheSourceIntoValuesAndScales) {
  const std::string common =
      R"(derive="quantize", source="layer.weight", source_shape=[2, 6], scheme="int4", group_size=4, )";
  auto values = Constant(common + R"(part="values", weight="v")", "i4[2,6]");
  auto scales = Constant(common + R"(part="scales", weight="s")", "f32[2,2]");
  const ir::Node& v = *values->nodes()[0];
  const ir::Node& s = *scales->nodes()[0];
  EXPECT_TRUE(IsDerivedWeight(v));
  EXPECT_EQ(DerivedWeightScheme(v), "int4-g4");
  ASSERT_EQ(DerivedWeightBytes(v), 6);
  ASSERT_EQ(DerivedWeightBytes(s), 16);
  std::vector<uint8_t> packed(6);
  ASSERT_TRUE(DeriveWeight(v, LoadSource, packed.data(), 6).ok());
  std::vector<float> scale(4);
  ASSERT_TRUE(DeriveWeight(s, LoadSource, scale.data(), 16).ok());
  EXPECT_FLOAT_EQ(scale[0], 4.0f / 7);  // row 0, columns 0-3
  EXPECT_FLOAT_EQ(scale[1], 6.0f / 7);  // row 0, columns 4-5 (partial)
  EXPECT_FLOAT_EQ(scale[2], 6.0f / 7);
  EXPECT_FLOAT_EQ(scale[3], 2.0f / 7);
  // round(w / scale); 2 / (4/7) and -1 / (2/7) are 3.4999998 in f32.
  const std::vector<int> expected = {2, 3, 5, 7, 6, 7, -7, -6, -5, -4, -7, -3};
  for (int k = 0; k < 12; ++k) EXPECT_EQ(UnpackInt4(packed.data(), k), expected[k]) << k;
  EXPECT_THAT(DeriveWeight(v, LoadSource, packed.data(), 5).message(), HasSubstr("'v'"));
}

TEST(DeriveWeight, RejectsMalformedRecipesNamingTheWeight) {
  auto wrong_type = Constant(
      R"(derive="quantize", source="layer.weight", source_shape=[2, 6], scheme="int8", group_size=4, part="values", weight="v")",
      "i4[2,6]");
  EXPECT_EQ(DerivedWeightBytes(*wrong_type->nodes()[0]), -1);
  std::vector<uint8_t> buffer(64);
  EXPECT_THAT(DeriveWeight(*wrong_type->nodes()[0], LoadSource, buffer.data(), 12).message(),
              HasSubstr("derived weight 'v': values must be i8[2,6]"));
  auto bad_scheme = Constant(
      R"(derive="quantize", source="layer.weight", source_shape=[2, 6], scheme="int3", group_size=4, part="values", weight="v")",
      "i8[2,6]");
  EXPECT_THAT(DeriveWeight(*bad_scheme->nodes()[0], LoadSource, buffer.data(), 12).message(),
              HasSubstr("unknown scheme 'int3'"));
  auto missing = Constant(
      R"(derive="quantize", source="other.weight", source_shape=[2, 6], scheme="int8", group_size=4, part="values", weight="v")",
      "i8[2,6]");
  EXPECT_THAT(DeriveWeight(*missing->nodes()[0], LoadSource, buffer.data(), 12).message(), HasSubstr("other.weight"));
}

}  // namespace
}  // namespace dsrt::passes
