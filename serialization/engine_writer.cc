#include "serialization/engine_writer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/stubs/logging.h"
#include "ir/status_macros.h"
#include "ir/verifier.h"
#include "serialization/engine_format.h"
#include "serialization/graph_proto.h"

namespace dsrt::serialization {
namespace {

absl::Status Errno(absl::string_view what) { return absl::ErrnoToStatus(errno, what); }

// The temporary file an engine is written to; removed unless committed.
class TmpFile {
 public:
  explicit TmpFile(std::string path) : path_(std::move(path)) {}
  TmpFile(const TmpFile&) = delete;
  TmpFile& operator=(const TmpFile&) = delete;
  ~TmpFile() {
    if (fd_ >= 0) close(fd_);
    if (!committed_) unlink(path_.c_str());
  }

  absl::Status Create(int64_t bytes) {
    fd_ = open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return Errno(absl::StrCat("cannot create '", path_, "'"));
    if (ftruncate(fd_, bytes) != 0) return Errno(absl::StrCat("cannot size '", path_, "' to ", bytes, " bytes"));
    // Reserve the blocks now: a full disk is an error here, not a SIGBUS while
    // a weight is filled through its mapping. Filesystems without fallocate
    // keep the sparse file.
    const int rc = posix_fallocate(fd_, 0, bytes);
    if (rc == ENOSPC || rc == EFBIG || rc == EDQUOT) {
      return absl::ErrnoToStatus(rc, absl::StrCat("no room for ", bytes, " bytes at '", path_, "'"));
    }
    return absl::OkStatus();
  }

  absl::Status WriteAt(const void* data, int64_t bytes, int64_t offset) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const ssize_t n = pwrite(fd_, p, static_cast<size_t>(bytes), offset);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Errno(absl::StrCat("cannot write '", path_, "'"));
      p += n;
      bytes -= n;
      offset += n;
    }
    return absl::OkStatus();
  }

  // Flushes, closes and renames to `final_path`.
  absl::Status Commit(const std::string& final_path) {
    if (fsync(fd_) != 0) return Errno(absl::StrCat("cannot flush '", path_, "'"));
    const int rc = close(fd_);
    fd_ = -1;
    if (rc != 0) return Errno(absl::StrCat("cannot close '", path_, "'"));
    if (rename(path_.c_str(), final_path.c_str()) != 0) {
      return Errno(absl::StrCat("cannot rename '", path_, "' to '", final_path, "'"));
    }
    committed_ = true;
    return absl::OkStatus();
  }

  int fd() const { return fd_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool committed_ = false;
};

absl::Status CheckConstantsNameWeights(const ir::Graph& graph, const absl::flat_hash_set<std::string>& weights) {
  for (const auto& node : graph.nodes()) {
    if (node->op() != "Constant") continue;
    const std::string weight = node->attrs().StringOr("weight", "");
    if (!weights.contains(weight)) {
      return absl::InvalidArgumentError(absl::StrCat("graph '", graph.name(), "', node ", ir::DescribeNode(*node),
                                                     ": names weight '", weight, "', which the rank does not carry"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckWeight(const WeightToWrite& w) {
  if (w.bytes < 0) return absl::InvalidArgumentError(absl::StrCat(w.bytes, " bytes"));
  if (!w.fill) return absl::InvalidArgumentError("no fill function");
  return CheckWeightBytes(ir::DTypeName(w.dtype), w.shape, w.quant_scheme, w.bytes);
}

absl::Status CheckRankContents(const RankContents& rank, int r) {
  auto fail = [r](absl::string_view why) { return absl::InvalidArgumentError(absl::StrCat("rank ", r, ", ", why)); };
  if (rank.graph == nullptr) return fail("no graph");
  if (absl::Status s = ir::VerifyGraph(*rank.graph); !s.ok()) return fail(s.message());
  if (rank.mtp_graph != nullptr) {
    if (absl::Status s = ir::VerifyGraph(*rank.mtp_graph); !s.ok()) return fail(s.message());
  }
  absl::flat_hash_set<std::string> names;
  for (const WeightToWrite& w : rank.weights) {
    if (w.name.empty()) return fail("a weight without a name");
    if (!names.insert(w.name).second) return fail(absl::StrCat("weight '", w.name, "' appears twice"));
    absl::Status s = CheckWeight(w);
    if (!s.ok()) return fail(absl::StrCat("weight '", w.name, "': ", s.message()));
  }
  for (const ir::Graph* graph : {rank.graph, rank.mtp_graph}) {
    if (graph == nullptr) continue;
    if (absl::Status s = CheckConstantsNameWeights(*graph, names); !s.ok()) return fail(s.message());
  }
  return absl::OkStatus();
}

// The rank's section with every offset, length and checksum present but zero.
RankSection PlaceholderSection(const RankContents& contents, int rank) {
  RankSection section;
  section.set_rank(rank);
  section.set_section_offset(0);
  section.set_section_bytes(0);
  *section.mutable_graph() = GraphToProto(*contents.graph);
  if (contents.mtp_graph != nullptr) *section.mutable_mtp_graph() = GraphToProto(*contents.mtp_graph);
  for (const WeightToWrite& w : contents.weights) {
    WeightEntry& entry = *section.add_weights();
    entry.set_name(w.name);
    entry.set_dtype(std::string(ir::DTypeName(w.dtype)));
    entry.mutable_shape()->Add(w.shape.begin(), w.shape.end());
    entry.set_quant_scheme(w.quant_scheme);
    entry.set_offset(0);
    entry.set_bytes(0);
    entry.set_crc32(0);
  }
  return section;
}

// Places the sections after the proto and the weights in their sections;
// returns the file's size.
int64_t LayOut(EngineProto& proto, const std::vector<RankContents>& ranks, int64_t proto_bytes) {
  int64_t at = kHeaderBytes + proto_bytes;
  for (size_t r = 0; r < ranks.size(); ++r) {
    RankSection& section = *proto.mutable_ranks(r);
    at = AlignUp(at, kSectionAlignment);
    section.set_section_offset(at);
    for (size_t i = 0; i < ranks[r].weights.size(); ++i) {
      at = AlignUp(at, kWeightAlignment);
      section.mutable_weights(i)->set_offset(at);
      section.mutable_weights(i)->set_bytes(ranks[r].weights[i].bytes);
      at += ranks[r].weights[i].bytes;
    }
    section.set_section_bytes(at - section.section_offset());
  }
  return at;
}

// Fills one weight through a shared mapping of its place in the file.
absl::Status WriteWeight(int fd, const WeightToWrite& weight, WeightEntry& entry) {
  if (weight.bytes == 0) {
    char nothing = 0;
    DSRT_RETURN_IF_ERROR(weight.fill(&nothing));
    entry.set_crc32(Crc32(&nothing, 0));
    return absl::OkStatus();
  }
  static const int64_t page = sysconf(_SC_PAGESIZE);
  const int64_t start = static_cast<int64_t>(entry.offset()) / page * page;
  const size_t length = static_cast<size_t>(entry.offset() + weight.bytes - start);
  void* map = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, start);
  if (map == MAP_FAILED) return Errno(absl::StrCat("cannot map ", weight.bytes, " bytes for it"));
  uint8_t* dst = static_cast<uint8_t*>(map) + (entry.offset() - start);
  absl::Status status = weight.fill(dst);
  if (status.ok()) entry.set_crc32(Crc32(dst, static_cast<size_t>(weight.bytes)));
  munmap(map, length);
  return status;
}

// Protobuf writes a proto3 string that is not UTF-8 but refuses to read it
// back: find that out before the weights are written, not when the engine is
// loaded.
absl::Status CheckParsesBack(const EngineProto& proto) {
  google::protobuf::LogSilencer quiet;
  EngineProto back;
  if (back.ParseFromString(proto.SerializeAsString())) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "the engine metadata would not read back: a string in it (config.json, tokenizer.json, "
      "tokenizer_config.json, a name) is not valid UTF-8");
}

absl::StatusOr<std::string> SerializeDeterministic(const EngineProto& proto, int64_t expected_bytes) {
  std::string bytes(static_cast<size_t>(expected_bytes), '\0');
  google::protobuf::io::ArrayOutputStream stream(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedOutputStream out(&stream);
  out.SetSerializationDeterministic(true);
  proto.SerializeWithCachedSizes(&out);
  if (out.HadError() || out.ByteCount() != expected_bytes) {
    return absl::InternalError(absl::StrCat("engine proto changed size from ", expected_bytes, " to ",
                                            proto.ByteSizeLong(), " bytes while the weights were written"));
  }
  return bytes;
}

absl::Status WriteEngineTo(TmpFile& file, const std::string& path, EngineProto& proto, std::vector<RankContents>& ranks,
                           const std::function<void(int64_t, int64_t)>& progress) {
  for (size_t r = 0; r < ranks.size(); ++r) *proto.add_ranks() = PlaceholderSection(ranks[r], static_cast<int>(r));
  const int64_t proto_bytes = static_cast<int64_t>(proto.ByteSizeLong());
  if (proto_bytes > INT_MAX) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the engine proto is ", proto_bytes, " bytes, more than protobuf's 2 GiB limit"));
  }
  DSRT_RETURN_IF_ERROR(CheckParsesBack(proto));
  const int64_t file_bytes = LayOut(proto, ranks, proto_bytes);
  int64_t total = 0;
  for (const RankContents& rank : ranks) {
    for (const WeightToWrite& w : rank.weights) total += w.bytes;
  }
  DSRT_RETURN_IF_ERROR(file.Create(file_bytes));
  int64_t done = 0;
  for (size_t r = 0; r < ranks.size(); ++r) {
    for (size_t i = 0; i < ranks[r].weights.size(); ++i) {
      const WeightToWrite& w = ranks[r].weights[i];
      absl::Status s = WriteWeight(file.fd(), w, *proto.mutable_ranks(r)->mutable_weights(i));
      if (!s.ok()) return absl::Status(s.code(), absl::StrCat("rank ", r, ", weight '", w.name, "': ", s.message()));
      done += w.bytes;
      if (progress) progress(done, total);
    }
  }
  if (static_cast<int64_t>(proto.ByteSizeLong()) != proto_bytes) {
    return absl::InternalError(absl::StrCat("engine proto changed size from ", proto_bytes, " to ",
                                            proto.ByteSizeLong(), " bytes while the weights were written"));
  }
  DSRT_ASSIGN_OR_RETURN(std::string serialized, SerializeDeterministic(proto, proto_bytes));
  EngineHeader header;
  header.proto_bytes = proto_bytes;
  header.proto_crc32 = Crc32(serialized.data(), serialized.size());
  header.file_bytes = file_bytes;
  DSRT_RETURN_IF_ERROR(file.WriteAt(serialized.data(), proto_bytes, kHeaderBytes));
  const auto header_bytes = EncodeHeader(header);
  DSRT_RETURN_IF_ERROR(file.WriteAt(header_bytes.data(), kHeaderBytes, 0));
  return file.Commit(path);
}

}  // namespace

absl::Status WriteEngine(const std::string& path, EngineProto metadata, std::vector<RankContents> ranks,
                         const std::function<void(int64_t done, int64_t total)>& progress) {
  auto fail = [&](const absl::Status& why) {
    return absl::Status(why.code(), absl::StrCat("writing engine '", path, "': ", why.message()));
  };
  if (ranks.empty()) return fail(absl::InvalidArgumentError("no ranks to write"));
  for (size_t r = 0; r < ranks.size(); ++r) {
    if (absl::Status s = CheckRankContents(ranks[r], static_cast<int>(r)); !s.ok()) return fail(s);
  }
  metadata.set_format_version(kEngineFormatVersion);
  metadata.set_world_size(static_cast<int>(ranks.size()));
  metadata.clear_ranks();
  TmpFile file(path + ".tmp");
  absl::Status s = WriteEngineTo(file, path, metadata, ranks, progress);
  return s.ok() ? s : fail(s);
}

}  // namespace dsrt::serialization
