#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "serialization/engine_format.h"
#include "serialization/engine_reader.h"
#include "serialization/engine_writer.h"
#include "serialization/graph_proto.h"
#include "serialization/test_engines.h"
#include "ir/testutil/scratch_dir.h"

namespace dsrt::serialization {
namespace {

using test_engines::MakeTestGraph;
using test_engines::MakeTestMtpGraph;
using test_engines::MakeTestWeights;
using test_engines::TestWeight;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

bool SameProto(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = dsrt::testutil::ScratchPath(absl::StrCat("engine_test_", ::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = dir_ + "/model.engine";
    absl::Status written = test_engines::WriteTestEngine(path_);
    ASSERT_TRUE(written.ok()) << written;
    bytes_ = ReadFile(path_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Opening the engine, with `bytes` as its content, fails; returns the message.
  std::string OpenError(const std::string& bytes, int rank = 0) {
    const std::string path = dir_ + "/broken.engine";
    WriteFile(path, bytes);
    auto engine = Engine::Open(path, rank);
    EXPECT_FALSE(engine.ok());
    if (engine.ok()) return "";
    EXPECT_THAT(std::string(engine.status().message()), HasSubstr(path));
    return std::string(engine.status().message());
  }

  EngineHeader Header() {
    return *DecodeHeader(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes_.data()), 64));
  }

  const EngineProto& Proto() {
    if (!proto_.ok()) proto_ = Engine::Open(path_, -1);
    return (*proto_)->proto();
  }

  std::string dir_;
  std::string path_;
  std::string bytes_;
  absl::StatusOr<std::unique_ptr<Engine>> proto_ = absl::UnknownError("not opened");
};

TEST_F(EngineTest, RoundTripOfTwoRanks) {
  for (int rank : {0, 1}) {
    SCOPED_TRACE(rank);
    auto engine = Engine::Open(path_, rank);
    ASSERT_TRUE(engine.ok()) << engine.status();
    const Engine& e = **engine;
    EXPECT_EQ(e.rank(), rank);
    EXPECT_EQ(e.world_size(), 2);

    EngineProto metadata = test_engines::MakeTestMetadata();
    EXPECT_EQ(e.proto().format_version(), 1u);
    EXPECT_EQ(e.proto().model_type(), metadata.model_type());
    EXPECT_EQ(e.proto().config_json(), metadata.config_json());
    EXPECT_EQ(e.proto().tokenizer_json(), metadata.tokenizer_json());
    EXPECT_EQ(e.proto().tokenizer_config_json(), metadata.tokenizer_config_json());
    EXPECT_TRUE(SameProto(e.proto().info(), metadata.info()));
    EXPECT_TRUE(SameProto(e.proto().options(), metadata.options()));
    ASSERT_EQ(e.proto().pass_log_size(), 1);
    EXPECT_TRUE(SameProto(e.proto().pass_log(0), metadata.pass_log(0)));

    auto graph = e.LoadGraph();
    ASSERT_TRUE(graph.ok()) << graph.status();
    EXPECT_TRUE(SameProto(GraphToProto(**graph), GraphToProto(*MakeTestGraph(300))));
    auto mtp = e.LoadMtpGraph();
    EXPECT_EQ(e.has_mtp_graph(), rank == 0);
    if (rank == 0) {
      ASSERT_TRUE(mtp.ok()) << mtp.status();
      EXPECT_TRUE(SameProto(GraphToProto(**mtp), GraphToProto(*MakeTestMtpGraph(300))));
    } else {
      EXPECT_EQ(mtp.status().code(), absl::StatusCode::kNotFound);
    }

    for (const TestWeight& expected : MakeTestWeights(rank, 300)) {
      auto view = e.weights().Get(expected.name);
      ASSERT_TRUE(view.ok()) << view.status();
      EXPECT_EQ(view->dtype, expected.dtype);
      EXPECT_EQ(view->shape, expected.shape);
      ASSERT_EQ(view->bytes, static_cast<int64_t>(expected.bytes.size()));
      if (view->bytes == 0) continue;
      EXPECT_EQ(std::memcmp(view->data, expected.bytes.data(), expected.bytes.size()), 0) << expected.name;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(view->data) % 64, 0u) << expected.name;
    }
    EXPECT_TRUE(e.VerifyWeights().ok());
  }
}

TEST_F(EngineTest, LayoutAlignsWeightsAndPagesRankSections) {
  const EngineProto& proto = Proto();
  ASSERT_EQ(proto.ranks_size(), 2);
  uint64_t previous_end = 64 + Header().proto_bytes;
  for (const RankSection& section : proto.ranks()) {
    EXPECT_EQ(section.section_offset() % 4096, 0u);
    EXPECT_GE(section.section_offset(), previous_end);
    EXPECT_GT(section.section_bytes(), 4096u);  // the test weights span pages
    for (const WeightEntry& w : section.weights()) {
      EXPECT_EQ(w.offset() % 64, 0u) << w.name();
      EXPECT_GE(w.offset(), section.section_offset());
      EXPECT_LE(w.offset() + w.bytes(), section.section_offset() + section.section_bytes());
    }
    previous_end = section.section_offset() + section.section_bytes();
  }
  EXPECT_EQ(Header().file_bytes, bytes_.size());
  EXPECT_EQ(previous_end, bytes_.size());
}

TEST_F(EngineTest, RankMapsOnlyItsOwnSection) {
  const RankSection& rank0 = Proto().ranks(0);
  const RankSection& rank1 = Proto().ranks(1);
  auto engine = Engine::Open(path_, 1);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->mapped_offset(), static_cast<int64_t>(rank1.section_offset()));
  EXPECT_EQ((*engine)->mapped_bytes(), static_cast<int64_t>(rank1.section_bytes()));
  EXPECT_GE((*engine)->mapped_offset(), static_cast<int64_t>(rank0.section_offset() + rank0.section_bytes()));

  // Every weight view lies inside the mapping of rank 1's section.
  auto embed = (*engine)->weights().Get("embed");
  ASSERT_TRUE(embed.ok());
  const auto* base = static_cast<const uint8_t*>(embed->data) - (rank1.weights(0).offset() - rank1.section_offset());
  for (const WeightEntry& w : rank1.weights()) {
    auto view = (*engine)->weights().Get(w.name());
    ASSERT_TRUE(view.ok());
    if (view->bytes == 0) continue;
    EXPECT_EQ(static_cast<const uint8_t*>(view->data), base + (w.offset() - rank1.section_offset())) << w.name();
  }
}

TEST_F(EngineTest, MetadataOnlyMapsNothing) {
  auto engine = Engine::Open(path_, -1);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->mapped_bytes(), 0);
  EXPECT_EQ((*engine)->proto().ranks_size(), 2);
  EXPECT_THAT(std::string((*engine)->LoadGraph().status().message()), HasSubstr("metadata only"));
  EXPECT_EQ((*engine)->weights().Get("embed").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*engine)->VerifyWeights().ok());
  // The graphs of every rank are still there to inspect.
  EXPECT_TRUE(GraphFromProto((*engine)->proto().ranks(1).graph()).ok());
}

TEST_F(EngineTest, UnknownWeightIsNotFoundByName) {
  auto engine = Engine::Open(path_, 0);
  ASSERT_TRUE(engine.ok());
  absl::Status s = (*engine)->weights().Get("layers.9.nothing").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("layers.9.nothing"), HasSubstr(path_)));
}

TEST_F(EngineTest, TruncationIsReportedWithBothSizes) {
  const int64_t proto_end = 64 + static_cast<int64_t>(Header().proto_bytes);
  const int64_t weights_at = static_cast<int64_t>(Proto().ranks(0).weights(0).offset());
  const int64_t full = static_cast<int64_t>(bytes_.size());
  for (int64_t size : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{40}, int64_t{63}}) {
    EXPECT_THAT(OpenError(bytes_.substr(0, size)),
                HasSubstr(absl::StrCat("truncated: expected at least 64 bytes, found ", size)));
  }
  for (int64_t size : {int64_t{64}, proto_end / 2, proto_end, weights_at + 100, full - 1}) {
    EXPECT_THAT(OpenError(bytes_.substr(0, size)),
                HasSubstr(absl::StrCat("truncated: expected ", full, " bytes, found ", size)));
  }
}

TEST_F(EngineTest, TrailingBytesAreCorruption) {
  EXPECT_THAT(OpenError(bytes_ + "extra"), HasSubstr("its header says"));
}

TEST_F(EngineTest, FlippedBitInHeader) {
  for (size_t at : {size_t{13}, size_t{20}, size_t{45}, size_t{50}, size_t{61}}) {
    std::string bytes = bytes_;
    bytes[at] ^= 0x10;
    EXPECT_THAT(OpenError(bytes), HasSubstr("header checksum mismatch")) << at;
  }
}

TEST_F(EngineTest, FlippedBitInProto) {
  std::string bytes = bytes_;
  bytes[64 + Header().proto_bytes / 2] ^= 0x01;
  EXPECT_THAT(OpenError(bytes), HasSubstr("engine proto checksum mismatch"));
}

TEST_F(EngineTest, FlippedBitInWeightIsFoundByVerifyWeights) {
  const WeightEntry& wq = Proto().ranks(1).weights(2);
  ASSERT_EQ(wq.name(), "wq");
  std::string bytes = bytes_;
  bytes[wq.offset() + 5] ^= 0x80;
  const std::string path = dir_ + "/flipped.engine";
  WriteFile(path, bytes);

  auto rank1 = Engine::Open(path, 1);
  ASSERT_TRUE(rank1.ok()) << rank1.status();  // weights are checked on demand, not at open
  absl::Status s = (*rank1)->VerifyWeights();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("weight 'wq'"), HasSubstr("rank 1"), HasSubstr(path)));

  auto rank0 = Engine::Open(path, 0);
  ASSERT_TRUE(rank0.ok());
  EXPECT_TRUE((*rank0)->VerifyWeights().ok());  // rank 1's section is not rank 0's business
}

TEST_F(EngineTest, WrongMagic) {
  std::string bytes = bytes_;
  bytes[3] = 'X';
  EXPECT_THAT(OpenError(bytes), HasSubstr("not a dsrt engine"));
  EXPECT_THAT(OpenError("{\"model_type\": \"deepseek_v3\"}"), HasSubstr("not a dsrt engine"));
}

TEST_F(EngineTest, NewerVersionAsksForARebuild) {
  EngineHeader header = Header();
  header.format_version = 2;
  const auto encoded = EncodeHeader(header);
  std::string bytes = bytes_;
  std::memcpy(bytes.data(), encoded.data(), encoded.size());
  EXPECT_THAT(OpenError(bytes), HasSubstr("engine format version 2, this dsrt reads 1: rebuild the engine"));

  bytes = bytes_;
  bytes[kVersionAt] = 7;  // a future header with another layout: the version is read first
  EXPECT_THAT(OpenError(bytes), HasSubstr("engine format version 7"));
}

TEST_F(EngineTest, RankOutOfRangeNamesRankAndWorldSize) {
  for (int rank : {2, 5, -2}) {
    auto engine = Engine::Open(path_, rank);
    ASSERT_FALSE(engine.ok());
    EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(engine.status().message()),
                AllOf(HasSubstr(absl::StrCat("rank ", rank)), HasSubstr("world size 2"), HasSubstr(path_)));
  }
}

TEST_F(EngineTest, EmptyMissingAndDirectory) {
  EXPECT_THAT(OpenError(""), HasSubstr("empty"));
  auto missing = Engine::Open(dir_ + "/missing.engine", 0);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("missing.engine"));
  auto directory = Engine::Open(dir_, 0);
  EXPECT_THAT(std::string(directory.status().message()), HasSubstr("not a regular file"));
}

// ---- the writer ----

class EngineWriterTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineTest::SetUp();
    out_ = dir_ + "/written.engine";
  }

  absl::Status Write(const std::function<void(std::vector<WeightToWrite>&)>& edit, const ir::Graph* graph = nullptr) {
    auto test_graph = MakeTestGraph(300);
    auto weights = MakeTestWeights(0, 300);
    std::vector<WeightToWrite> to_write = test_engines::ToWrite(weights);
    edit(to_write);
    std::vector<RankContents> ranks;
    ranks.push_back({graph ? graph : test_graph.get(), nullptr, std::move(to_write)});
    return WriteEngine(out_, test_engines::MakeTestMetadata(), std::move(ranks));
  }

  void ExpectNothingWritten() {
    EXPECT_FALSE(std::filesystem::exists(out_));
    EXPECT_FALSE(std::filesystem::exists(out_ + ".tmp"));
  }

  std::string out_;
};

TEST_F(EngineWriterTest, ReportsProgressInBytes) {
  std::vector<std::pair<int64_t, int64_t>> calls;
  auto graph = MakeTestGraph(300);
  auto weights = MakeTestWeights(0, 300);
  std::vector<RankContents> ranks;
  ranks.push_back({graph.get(), nullptr, test_engines::ToWrite(weights)});
  absl::Status s = WriteEngine(out_, EngineProto(), std::move(ranks),
                               [&](int64_t done, int64_t total) { calls.emplace_back(done, total); });
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(calls.size(), weights.size());
  int64_t total = 0;
  for (const TestWeight& w : weights) total += static_cast<int64_t>(w.bytes.size());
  EXPECT_EQ(calls.back(), std::make_pair(total, total));
  for (size_t i = 1; i < calls.size(); ++i) EXPECT_GE(calls[i].first, calls[i - 1].first);
  EXPECT_FALSE(std::filesystem::exists(out_ + ".tmp"));
}

TEST_F(EngineWriterTest, IsDeterministic) {
  ASSERT_TRUE(test_engines::WriteTestEngine(out_).ok());
  EXPECT_EQ(ReadFile(out_), bytes_);
}

TEST_F(EngineWriterTest, ReplacesAnExistingEngine) {
  WriteFile(out_, "old contents");
  ASSERT_TRUE(test_engines::WriteTestEngine(out_, 1).ok());
  auto engine = Engine::Open(out_, 0);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->world_size(), 1);
}

TEST_F(EngineWriterTest, FailingFillNamesTheWeightAndLeavesNoFile) {
  absl::Status s = Write([](std::vector<WeightToWrite>& w) {
    w[3].fill = [](void*) { return absl::DataLossError("checkpoint shard 2 is short"); };
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr(out_), HasSubstr("weight 'wk'"), HasSubstr("checkpoint shard 2 is short")));
  ExpectNothingWritten();
}

TEST_F(EngineWriterTest, WrongByteCountNamesTheWeight) {
  absl::Status s = Write([](std::vector<WeightToWrite>& w) { w[1].bytes = 31; });
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("weight 'norm'"), HasSubstr("31 bytes, but f32[8] takes 32")));
  ExpectNothingWritten();
}

TEST_F(EngineWriterTest, QuantizedWeightsKeepTheirOwnPacking) {
  absl::Status s = Write([](std::vector<WeightToWrite>& w) {
    w.push_back({"packed", ir::DType::kU8, {8, 8}, "int4-g32", 40, [](void* dst) {
                   std::memset(dst, 0x5a, 40);
                   return absl::OkStatus();
                 }});
  });
  ASSERT_TRUE(s.ok()) << s;
  auto engine = Engine::Open(out_, 0);
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->proto().ranks(0).weights().rbegin()->quant_scheme(), "int4-g32");
  EXPECT_TRUE((*engine)->VerifyWeights().ok());
}

TEST_F(EngineWriterTest, DuplicateWeight) {
  absl::Status s = Write([](std::vector<WeightToWrite>& w) { w.push_back(w[0]); });
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("rank 0"), HasSubstr("weight 'embed' appears twice")));
  ExpectNothingWritten();
}

TEST_F(EngineWriterTest, ConstantWithoutItsWeight) {
  absl::Status s = Write([](std::vector<WeightToWrite>& w) { w.erase(w.begin() + 5); });
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("Constant"), HasSubstr("weight 'gate'")));
  ExpectNothingWritten();
}

TEST_F(EngineWriterTest, InvalidGraphIsRefused) {
  ir::Graph empty("empty");
  absl::Status s = Write([](std::vector<WeightToWrite>&) {}, &empty);
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr(out_), HasSubstr("has no outputs")));
  ExpectNothingWritten();
}

TEST_F(EngineWriterTest, TextThatIsNotUtf8IsRefusedBeforeAnyWeight) {
  auto graph = MakeTestGraph(300);
  EngineProto metadata = test_engines::MakeTestMetadata();
  metadata.set_tokenizer_json("{\"\xff\xfe\": 1}");
  bool filled = false;
  auto weights = MakeTestWeights(0, 300);
  std::vector<RankContents> ranks;
  ranks.push_back({graph.get(), nullptr, test_engines::ToWrite(weights)});
  for (WeightToWrite& w : ranks[0].weights) {
    w.fill = [&filled](void*) {
      filled = true;
      return absl::OkStatus();
    };
  }
  absl::Status s = WriteEngine(out_, metadata, std::move(ranks));
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr(out_), HasSubstr("UTF-8")));
  EXPECT_FALSE(filled);
  ExpectNothingWritten();
}

TEST_F(EngineWriterTest, UnwritableDirectoryNamesThePath) {
  out_ = dir_ + "/no/such/dir/model.engine";
  absl::Status s = Write([](std::vector<WeightToWrite>&) {});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(out_));
}

}  // namespace
}  // namespace dsrt::serialization
