#include "models/safetensors.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "models/test_files.h"
#include "models/safetensors_writer.h"

namespace dsrt::models {
namespace {

using testing_files::GoldenDir;
using testing_files::ReadFile;
using testing_files::TestDir;
using testing_files::WriteFile;

using ::testing::HasSubstr;

std::string FloatBytes(std::vector<float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// A raw file: the 8-byte length, `header` as given, then `data`.
std::string RawFile(const std::string& header, const std::string& data) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  return bytes + header + data;
}

std::vector<SafetensorsBlob> SampleTensors() {
  return {
      {{"a.weight", ir::DType::kF32, {2, 3}}, FloatBytes({1, 2, 3, 4, 5, 6})},
      {{"b.bias", ir::DType::kBF16, {4}}, std::string("\x80\x3f\x00\x40\x40\x40\x80\x40", 8)},
      {{"c.codes", ir::DType::kF8E4M3, {3}}, std::string("\x38\x40\x48", 3)},
      {{"d.scalar", ir::DType::kI64, {}}, std::string("\x07\0\0\0\0\0\0\0", 8)},
      {{"e.empty", ir::DType::kF32, {0, 5}}, ""},
  };
}

TEST(SafetensorsTest, DTypeNamesRoundTrip) {
  for (ir::DType dtype : {ir::DType::kF32, ir::DType::kBF16, ir::DType::kF16, ir::DType::kF8E4M3, ir::DType::kI32,
                          ir::DType::kI64, ir::DType::kI8, ir::DType::kU8}) {
    absl::StatusOr<ir::DType> parsed = DTypeFromSafetensorsName(SafetensorsDTypeName(dtype));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, dtype);
  }
  EXPECT_EQ(*DTypeFromSafetensorsName("BOOL"), ir::DType::kU8);
  EXPECT_FALSE(DTypeFromSafetensorsName("F64").ok());
  EXPECT_EQ(SafetensorsDTypeName(ir::DType::kI4), "");
}

TEST(SafetensorsTest, WrittenFileReadsBack) {
  const std::string path = TestDir("roundtrip") + "/model.safetensors";
  ASSERT_TRUE(WriteSafetensorsFile(path, SampleTensors()).ok());

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->path(), path);
  ASSERT_EQ((*file)->tensors().size(), 5u);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  for (const SafetensorsBlob& blob : SampleTensors()) {
    absl::StatusOr<ir::WeightView> view = (*file)->View(blob.entry.name);
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ(view->dtype, blob.entry.dtype) << blob.entry.name;
    EXPECT_EQ(view->shape, blob.entry.shape) << blob.entry.name;
    ASSERT_EQ(view->bytes, static_cast<int64_t>(blob.bytes.size())) << blob.entry.name;
    EXPECT_EQ(std::memcmp(view->data, blob.bytes.data(), blob.bytes.size()), 0) << blob.entry.name;
  }
  EXPECT_EQ((*file)->Find("missing"), nullptr);
  EXPECT_THAT((*file)->View("missing").status().message(), HasSubstr("no tensor 'missing'"));

  // HF pads the header so that the data starts 8-byte aligned.
  const std::string bytes = ReadFile(path);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  EXPECT_EQ((8 + header_bytes) % 8, 0u);
}

TEST(SafetensorsTest, GoldenFileOpens) {
  const std::string path = std::string(DSRT_REPO_DIR) + "/../shared/golden/tiny-v3/model.safetensors";
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors().size(), 383u);
  const SafetensorsTensor* tensor = (*file)->Find("model.layers.1.self_attn.kv_a_proj_with_mqa.weight");
  ASSERT_NE(tensor, nullptr);
  EXPECT_EQ(tensor->dtype, ir::DType::kF8E4M3);
  EXPECT_EQ(tensor->shape, (std::vector<int64_t>{176, 192}));
}

TEST(SafetensorsTest, TruncatedFileNamesTheFile) {
  const std::string dir = TestDir("truncated");
  const std::string bytes = [&] {
    const std::string path = dir + "/whole.safetensors";
    EXPECT_TRUE(WriteSafetensorsFile(path, SampleTensors()).ok());
    return ReadFile(path);
  }();
  const std::string path = dir + "/cut.safetensors";
  WriteFile(path, bytes.substr(0, bytes.size() - 3));
  absl::Status status = SafetensorsFile::Open(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("truncated"));

  WriteFile(path, bytes.substr(0, 100));
  status = SafetensorsFile::Open(path).status();
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("header length"));

  WriteFile(path, bytes.substr(0, 5));
  EXPECT_THAT(SafetensorsFile::Open(path).status().message(), HasSubstr("fewer than the 8-byte header length"));
  WriteFile(path, "");
  EXPECT_THAT(SafetensorsFile::Open(path).status().message(), HasSubstr(path));
  EXPECT_EQ(SafetensorsFile::Open(dir + "/absent.safetensors").status().code(), absl::StatusCode::kNotFound);
}

TEST(SafetensorsTest, MalformedHeadersAreErrors) {
  const std::string data(16, '\0');
  struct Case {
    std::string header;
    std::string message;
  } cases[] = {
      {"{not json", "not valid JSON"},
      {"[1]", "not a JSON object"},
      {R"({"t": 3})", "tensor 't' is not a JSON object"},
      {R"({"t": {"shape": [1], "data_offsets": [0, 4]}})", "tensor 't' has no dtype"},
      {R"({"t": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})", "tensor 't' has an unsupported dtype 'F64'"},
      {R"({"t": {"dtype": "F32", "data_offsets": [0, 4]}})", "tensor 't' has no shape"},
      {R"({"t": {"dtype": "F32", "shape": [1]}})", "tensor 't' has no data_offsets"},
      {R"({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", "invalid shape"},
      {R"({"t": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", "invalid shape"},
      {R"({"t": {"dtype": "F32", "shape": 4, "data_offsets": [0, 4]}})", "shape that is not a list"},
      {R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", "invalid data_offsets"},
      {R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", "outside the data region"},
      {R"({"t": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}})", "outside the data region"},
      {R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", "has 8 bytes of data, but F32 [3] needs 12"},
      {R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 16]}})", "more than"},
      {R"({"__metadata__": [1]})", "__metadata__ is not a JSON object"},
  };
  for (const Case& test : cases) {
    const std::string bytes = RawFile(test.header, data);
    absl::Status status = ParseSafetensorsHeader(bytes, static_cast<int64_t>(bytes.size()), "x.safetensors").status();
    EXPECT_FALSE(status.ok()) << test.header;
    EXPECT_THAT(status.message(), HasSubstr("x.safetensors")) << test.header;
    EXPECT_THAT(status.message(), HasSubstr(test.message)) << test.header;
  }
}

TEST(SafetensorsTest, WriterRejectsMisuse) {
  const std::string dir = TestDir("writer");
  absl::StatusOr<std::unique_ptr<SafetensorsWriter>> writer =
      SafetensorsWriter::Create(dir + "/w.safetensors", {{"a", ir::DType::kF32, {2}}, {"b", ir::DType::kBF16, {2}}});
  ASSERT_TRUE(writer.ok()) << writer.status();
  const float values[3] = {1, 2, 3};
  EXPECT_THAT((*writer)->Append(values, 12).message(), HasSubstr("has room for 8"));
  EXPECT_TRUE((*writer)->Append(values, 4).ok());
  EXPECT_TRUE((*writer)->Append(values, 4).ok());
  EXPECT_EQ((*writer)->current()->name, "b");
  EXPECT_THAT((*writer)->Close().message(), HasSubstr("before tensor 'b' was completely written"));

  EXPECT_THAT(SafetensorsWriter::Create(dir + "/i4.safetensors", {{"q", ir::DType::kI4, {2}}}).status().message(),
              HasSubstr("safetensors cannot store"));
  EXPECT_THAT(
      SafetensorsWriter::Create(dir + "/dup.safetensors", {{"q", ir::DType::kF32, {2}}, {"q", ir::DType::kF32, {2}}})
          .status()
          .message(),
      HasSubstr("listed twice"));
  EXPECT_THAT(WriteSafetensorsFile(dir + "/short.safetensors", {{{"q", ir::DType::kF32, {2}}, "abc"}}).message(),
              HasSubstr("has 3 bytes"));
}

// Mutated headers, lengths and truncations of a valid file never crash the parser, and
// whatever it accepts lies inside the file.
TEST(SafetensorsTest, FuzzedFilesNeverCrash) {
  const std::string dir = TestDir("fuzz");
  const std::string path = dir + "/seed.safetensors";
  ASSERT_TRUE(WriteSafetensorsFile(path, SampleTensors()).ok());
  const std::string seed = ReadFile(path);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, seed.data(), 8);

  std::mt19937_64 random(20240601);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  const char kInteresting[] = "{}[]\":,-0123456789eE.x \\\x00\xff";
  int accepted = 0;
  int iterations = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string bytes = seed;
    const int mutations = 1 + static_cast<int>(random() % 4);
    for (int m = 0; m < mutations; ++m) {
      const uint64_t choice = random() % 6;
      if (choice == 0) {
        bytes.resize(random() % (bytes.size() + 1));  // truncate
      } else if (choice == 1 && bytes.size() >= 8) {
        bytes[random() % 8] = static_cast<char>(random());  // length field
      } else if (choice == 2 && bytes.size() > 8) {
        const size_t at = 8 + random() % std::min<size_t>(bytes.size() - 8, header_bytes);
        bytes[at] = kInteresting[random() % (sizeof(kInteresting) - 1)];
      } else if (choice == 3 && bytes.size() > 8) {
        const size_t at = 8 + random() % std::min<size_t>(bytes.size() - 8, header_bytes);
        bytes.insert(at, 1, kInteresting[random() % (sizeof(kInteresting) - 1)]);
      } else if (choice == 4 && bytes.size() > 8) {
        const size_t at = 8 + random() % std::min<size_t>(bytes.size() - 8, header_bytes);
        bytes.erase(at, 1 + random() % 4);
      } else {
        bytes[random() % bytes.size()] = static_cast<char>(random());
      }
      if (bytes.empty()) break;
    }
    ++iterations;
    absl::StatusOr<SafetensorsHeader> header =
        ParseSafetensorsHeader(bytes, static_cast<int64_t>(bytes.size()), "fuzz.safetensors");
    if (!header.ok()) {
      EXPECT_THAT(header.status().message(), HasSubstr("fuzz.safetensors"));
      continue;
    }
    ++accepted;
    uint64_t checksum = 0;
    for (const SafetensorsTensor& tensor : header->tensors) {
      ASSERT_GE(tensor.offset, header->data_start);
      ASSERT_LE(tensor.offset + tensor.bytes, static_cast<int64_t>(bytes.size()));
      for (int64_t i = 0; i < tensor.bytes; ++i) checksum += static_cast<uint8_t>(bytes[tensor.offset + i]);
    }
    EXPECT_GE(checksum, 0u);
  }
  RecordProperty("iterations", iterations);
  RecordProperty("accepted", accepted);
  EXPECT_GT(iterations, 1000);
  EXPECT_GT(accepted, 0);

  // The same through mmap, for a few truncations of the real file.
  for (size_t size : {size_t{0}, size_t{7}, size_t{8}, size_t{9}, seed.size() / 2, seed.size() - 1}) {
    WriteFile(path, seed.substr(0, size));
    EXPECT_FALSE(SafetensorsFile::Open(path).ok()) << size;
  }
}

}  // namespace
}  // namespace dsrt::models
