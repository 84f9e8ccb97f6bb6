#include "serialization/engine_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"
#include "ir/status_macros.h"
#include "serialization/engine_format.h"
#include "serialization/graph_proto.h"

namespace dsrt::serialization {
namespace {

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status ReadAt(int fd, void* dst, int64_t bytes, int64_t offset) {
  char* p = static_cast<char*>(dst);
  while (bytes > 0) {
    const ssize_t n = pread(fd, p, static_cast<size_t>(bytes), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, "cannot read");
    if (n == 0) return absl::DataLossError("the file shrank while it was read");
    p += n;
    bytes -= n;
    offset += n;
  }
  return absl::OkStatus();
}

absl::Status CheckFileSize(const EngineHeader& header, int64_t actual) {
  const uint64_t expected = header.file_bytes;
  if (expected == static_cast<uint64_t>(actual)) return absl::OkStatus();
  if (static_cast<uint64_t>(actual) < expected) {
    return absl::DataLossError(absl::StrCat("truncated: expected ", expected, " bytes, found ", actual));
  }
  return absl::DataLossError(
      absl::StrCat("the file has ", actual, " bytes but its header says ", expected, ": the file is corrupt"));
}

absl::StatusOr<EngineProto> ReadProto(int fd, const EngineHeader& header) {
  if (header.proto_bytes > INT_MAX) {
    return absl::DataLossError(absl::StrCat("engine proto of ", header.proto_bytes, " bytes: the file is corrupt"));
  }
  std::string bytes(header.proto_bytes, '\0');
  DSRT_RETURN_IF_ERROR(ReadAt(fd, bytes.data(), static_cast<int64_t>(bytes.size()), header.proto_offset));
  if (Crc32(bytes.data(), bytes.size()) != header.proto_crc32) {
    return absl::DataLossError("engine proto checksum mismatch: the file is corrupt");
  }
  EngineProto proto;
  google::protobuf::LogSilencer quiet;  // our error says it; protobuf's log line would repeat it
  if (!proto.ParseFromString(bytes)) return absl::DataLossError("the engine proto does not parse: the file is corrupt");
  return proto;
}

absl::Status CheckSectionWeights(const RankSection& section) {
  const uint64_t end = section.section_offset() + section.section_bytes();
  absl::flat_hash_set<std::string> names;
  for (const WeightEntry& w : section.weights()) {
    auto fail = [&](absl::string_view why) {
      return absl::DataLossError(absl::StrCat("rank ", section.rank(), ", weight '", w.name(), "': ", why));
    };
    if (!names.insert(w.name()).second) return fail("appears twice");
    if (w.offset() % kWeightAlignment != 0) return fail(absl::StrCat("offset ", w.offset(), " is not 64-byte aligned"));
    if (w.offset() < section.section_offset() || w.offset() > end || w.bytes() > end - w.offset()) {
      return fail(absl::StrCat(w.bytes(), " bytes at ", w.offset(), " lie outside the rank's section"));
    }
    absl::Status s = CheckWeightBytes(w.dtype(), absl::MakeConstSpan(w.shape().data(), w.shape().size()),
                                      w.quant_scheme(), static_cast<int64_t>(w.bytes()));
    if (!s.ok()) return fail(s.message());
  }
  return absl::OkStatus();
}

// What the proto says about the file's layout must fit the file: sections in
// rank order, page-aligned, after the proto and inside the file.
absl::Status CheckLayout(const EngineProto& proto, const EngineHeader& header) {
  if (proto.format_version() != kEngineFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat("engine format version ", proto.format_version(),
                                                      ", this dsrt reads ", kEngineFormatVersion,
                                                      ": rebuild the engine"));
  }
  if (proto.world_size() < 1 || proto.ranks_size() != proto.world_size()) {
    return absl::DataLossError(absl::StrCat("world size ", proto.world_size(), " but ", proto.ranks_size(),
                                            " rank sections: the file is corrupt"));
  }
  uint64_t previous_end = header.proto_offset + header.proto_bytes;
  for (int r = 0; r < proto.ranks_size(); ++r) {
    const RankSection& section = proto.ranks(r);
    if (section.rank() != r) {
      return absl::DataLossError(absl::StrCat("rank section ", r, " says it is rank ", section.rank()));
    }
    const uint64_t offset = section.section_offset();
    if (offset % kSectionAlignment != 0 || offset < previous_end || offset > header.file_bytes ||
        section.section_bytes() > header.file_bytes - offset) {
      return absl::DataLossError(absl::StrCat("rank ", r, " section (", section.section_bytes(), " bytes at ", offset,
                                              ") is misplaced in the ", header.file_bytes, "-byte file"));
    }
    previous_end = offset + section.section_bytes();
    DSRT_RETURN_IF_ERROR(CheckSectionWeights(section));
  }
  return absl::OkStatus();
}

}  // namespace

void MappedWeights::Prefault(absl::string_view name) const {
#ifndef MADV_POPULATE_READ
  constexpr int MADV_POPULATE_READ = 22;  // Linux 5.14; older kernels refuse it, which is harmless
#endif
  auto it = views_.find(name);
  if (it == views_.end()) return;
  const int64_t page = sysconf(_SC_PAGESIZE);
  const auto begin = reinterpret_cast<uintptr_t>(it->second.data) / page * page;
  const auto end = reinterpret_cast<uintptr_t>(it->second.data) + it->second.bytes;
  madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ);
}

void MappedWeights::Unneeded(absl::string_view name) const {
  auto it = views_.find(name);
  if (it == views_.end()) return;
  const int64_t page = sysconf(_SC_PAGESIZE);
  const auto begin = reinterpret_cast<uintptr_t>(it->second.data);
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = (begin + it->second.bytes) / page * page;
  if (last <= first) return;
#ifndef MADV_PAGEOUT
  constexpr int MADV_PAGEOUT = 21;  // Linux 5.4; older kernels refuse it, which is harmless
#endif
  // A read-only shared file mapping: dropping pages only frees memory, never data.
  // PAGEOUT also takes them out of the page cache: a backend that copies an engine
  // larger than half the memory would otherwise find no free huge pages for the copy's
  // second half (v2-lite-full int8: 16.5 GB, 4.7 GB of it fell back to 4 KiB pages and
  // its experts streamed at half speed).
  madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);
  madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

absl::StatusOr<ir::WeightView> MappedWeights::Get(absl::string_view name) const {
  auto it = views_.find(name);
  if (it != views_.end()) return it->second;
  return absl::NotFoundError(absl::StrCat("engine '", path_, "', rank ", rank_, ": no weight '", name, "'",
                                          rank_ < 0 ? " (the engine was opened for its metadata only)" : ""));
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(const std::string& path, int rank) {
  auto fail = [&](const absl::Status& why) {
    return absl::Status(why.code(), absl::StrCat("engine '", path, "': ", why.message()));
  };
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return fail(absl::ErrnoToStatus(errno, "cannot open"));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return fail(absl::ErrnoToStatus(errno, "cannot stat"));
  if (!S_ISREG(st.st_mode)) return fail(absl::InvalidArgumentError("not a regular file"));
  if (st.st_size == 0) return fail(absl::InvalidArgumentError("the file is empty: not a dsrt engine"));

  uint8_t header_bytes[kHeaderBytes];
  const int64_t head = std::min<int64_t>(st.st_size, kHeaderBytes);
  if (absl::Status s = ReadAt(fd.get(), header_bytes, head, 0); !s.ok()) return fail(s);
  auto header = DecodeHeader(absl::MakeConstSpan(header_bytes, static_cast<size_t>(head)));
  if (!header.ok()) return fail(header.status());
  if (absl::Status s = CheckFileSize(*header, st.st_size); !s.ok()) return fail(s);

  std::unique_ptr<Engine> engine(new Engine());
  engine->path_ = path;
  engine->rank_ = rank;
  auto proto = ReadProto(fd.get(), *header);
  if (!proto.ok()) return fail(proto.status());
  engine->proto_ = *std::move(proto);
  if (absl::Status s = CheckLayout(engine->proto_, *header); !s.ok()) return fail(s);
  if (rank < -1 || rank >= engine->world_size()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " is out of range: the engine was built for world size ", engine->world_size())));
  }
  if (absl::Status s = engine->MapSection(fd.get()); !s.ok()) return fail(s);
  return engine;
}

absl::Status Engine::MapSection(int fd) {
  weights_.path_ = path_;
  weights_.rank_ = rank_;
  if (rank_ < 0) return absl::OkStatus();
  const RankSection& section = proto_.ranks(rank_);
  section_offset_ = static_cast<int64_t>(section.section_offset());
  section_bytes_ = static_cast<int64_t>(section.section_bytes());
  if (section_bytes_ > 0) {
    // The file aligns sections to 4096; a host with larger pages maps from the
    // page boundary below.
    static const int64_t page = sysconf(_SC_PAGESIZE);
    const int64_t start = section_offset_ / page * page;
    map_length_ = static_cast<size_t>(section_offset_ + section_bytes_ - start);
    map_ = mmap(nullptr, map_length_, PROT_READ, MAP_SHARED, fd, start);
    if (map_ == MAP_FAILED) {
      map_ = nullptr;
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot map rank ", rank_, "'s ", section_bytes_, " bytes"));
    }
    section_data_ = static_cast<const uint8_t*>(map_) + (section_offset_ - start);
  }
  for (const WeightEntry& w : section.weights()) {
    ir::WeightView view;
    view.dtype = *ir::ParseDType(w.dtype());  // CheckLayout parsed it
    view.shape.assign(w.shape().begin(), w.shape().end());
    view.bytes = static_cast<int64_t>(w.bytes());
    view.data = view.bytes > 0 ? section_data_ + (w.offset() - section_offset_) : nullptr;
    weights_.views_[w.name()] = std::move(view);
  }
  return absl::OkStatus();
}

Engine::~Engine() {
  if (map_ != nullptr) munmap(map_, map_length_);
}

absl::StatusOr<const RankSection*> Engine::Section() const {
  if (rank_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("engine '", path_, "' was opened for its metadata only (rank -1): it has no rank's graph"));
  }
  return &proto_.ranks(rank_);
}

bool Engine::has_mtp_graph() const { return rank_ >= 0 && proto_.ranks(rank_).has_mtp_graph(); }

absl::StatusOr<std::unique_ptr<ir::Graph>> Engine::LoadGraph() const {
  DSRT_ASSIGN_OR_RETURN(const RankSection* section, Section());
  auto graph = GraphFromProto(section->graph());
  if (graph.ok()) return graph;
  return absl::Status(graph.status().code(),
                      absl::StrCat("engine '", path_, "', rank ", rank_, ": ", graph.status().message()));
}

absl::StatusOr<std::unique_ptr<ir::Graph>> Engine::LoadMtpGraph() const {
  DSRT_ASSIGN_OR_RETURN(const RankSection* section, Section());
  if (!section->has_mtp_graph()) {
    return absl::NotFoundError(absl::StrCat("engine '", path_, "', rank ", rank_, " has no MTP graph"));
  }
  auto graph = GraphFromProto(section->mtp_graph());
  if (graph.ok()) return graph;
  return absl::Status(graph.status().code(),
                      absl::StrCat("engine '", path_, "', rank ", rank_, " MTP graph: ", graph.status().message()));
}

absl::Status Engine::VerifyWeights() const {
  if (rank_ < 0) return absl::OkStatus();
  for (const WeightEntry& w : proto_.ranks(rank_).weights()) {
    const uint8_t* data = section_data_ + (w.offset() - section_offset_);
    const uint32_t crc = w.bytes() > 0 ? Crc32(data, static_cast<size_t>(w.bytes())) : Crc32(nullptr, 0);
    if (crc == w.crc32()) continue;
    return absl::DataLossError(absl::StrCat("engine '", path_, "', rank ", rank_, ": weight '", w.name(),
                                            "' checksum mismatch (stored ", w.crc32(), ", computed ", crc,
                                            "): the file is corrupt"));
  }
  return absl::OkStatus();
}

}  // namespace dsrt::serialization
