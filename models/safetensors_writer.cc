#include "models/safetensors_writer.h"

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"
#include "models/safetensors.h"

namespace dsrt::models {
namespace {

constexpr size_t kStreamBufferBytes = 4u << 20;

int64_t ElementCount(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

absl::StatusOr<std::string> HeaderText(const std::vector<SafetensorsEntry>& entries,
                                       const std::map<std::string, std::string>& metadata, const std::string& path) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  int64_t offset = 0;
  for (const SafetensorsEntry& entry : entries) {
    const absl::string_view dtype = SafetensorsDTypeName(entry.dtype);
    if (dtype.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", entry.name, "' has dtype ",
                                                     ir::DTypeName(entry.dtype), ", which safetensors cannot store"));
    }
    if (header.contains(entry.name)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", entry.name, "' is listed twice"));
    }
    const int64_t bytes = SafetensorsEntryBytes(entry);
    header[entry.name] = {{"dtype", std::string(dtype)}, {"shape", entry.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  // Pad with spaces so that the data starts 8-byte aligned, as HF's writer does.
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  return text;
}

}  // namespace

int64_t SafetensorsEntryBytes(const SafetensorsEntry& entry) {
  return ir::DTypeBytes(entry.dtype, ElementCount(entry.shape));
}

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path, std::vector<SafetensorsEntry> entries, const std::map<std::string, std::string>& metadata) {
  DSRT_ASSIGN_OR_RETURN(const std::string header, HeaderText(entries, metadata, path));
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot create: ", std::strerror(errno)));
  std::setvbuf(file, nullptr, _IOFBF, kStreamBufferBytes);
  auto writer = std::unique_ptr<SafetensorsWriter>(new SafetensorsWriter(path, file, std::move(entries)));
  uint8_t length[8];
  uint64_t header_bytes = header.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(header_bytes >> (8 * i));
  if (std::fwrite(length, 1, 8, file) != 8 || std::fwrite(header.data(), 1, header.size(), file) != header.size()) {
    return absl::DataLossError(absl::StrCat(path, ": write failed: ", std::strerror(errno)));
  }
  writer->AdvancePastFullTensors();
  return writer;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::FILE* file, std::vector<SafetensorsEntry> entries)
    : path_(std::move(path)), file_(file), entries_(std::move(entries)) {}

SafetensorsWriter::~SafetensorsWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

const SafetensorsEntry* SafetensorsWriter::current() const {
  return current_ < entries_.size() ? &entries_[current_] : nullptr;
}

void SafetensorsWriter::AdvancePastFullTensors() {
  while (current_ < entries_.size() && written_in_current_ == SafetensorsEntryBytes(entries_[current_])) {
    ++current_;
    written_in_current_ = 0;
  }
}

absl::Status SafetensorsWriter::Append(const void* data, int64_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  if (file_ == nullptr) return absl::FailedPreconditionError(absl::StrCat(path_, ": append after close"));
  const SafetensorsEntry* entry = current();
  if (entry == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": ", bytes, " bytes appended past the last tensor"));
  }
  const int64_t room = SafetensorsEntryBytes(*entry) - written_in_current_;
  if (bytes > room) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": ", bytes, " bytes appended to tensor '", entry->name,
                                                      "', which has room for ", room));
  }
  if (std::fwrite(data, 1, static_cast<size_t>(bytes), file_) != static_cast<size_t>(bytes)) {
    return absl::DataLossError(absl::StrCat(path_, ": write failed: ", std::strerror(errno)));
  }
  written_in_current_ += bytes;
  AdvancePastFullTensors();
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Close() {
  if (file_ == nullptr) return absl::OkStatus();
  const bool flushed = std::fflush(file_) == 0;
  const int error = errno;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) return absl::DataLossError(absl::StrCat(path_, ": write failed: ", std::strerror(error)));
  if (const SafetensorsEntry* entry = current()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": closed before tensor '", entry->name, "' was completely written"));
  }
  return absl::OkStatus();
}

absl::Status WriteSafetensorsFile(const std::string& path, const std::vector<SafetensorsBlob>& tensors) {
  std::vector<SafetensorsEntry> entries;
  for (const SafetensorsBlob& blob : tensors) {
    if (static_cast<int64_t>(blob.bytes.size()) != SafetensorsEntryBytes(blob.entry)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", blob.entry.name, "' has ", blob.bytes.size(),
                                                     " bytes, its dtype and shape need ",
                                                     SafetensorsEntryBytes(blob.entry)));
    }
    entries.push_back(blob.entry);
  }
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsWriter> writer, SafetensorsWriter::Create(path, entries));
  for (const SafetensorsBlob& blob : tensors) {
    DSRT_RETURN_IF_ERROR(writer->Append(blob.bytes.data(), static_cast<int64_t>(blob.bytes.size())));
  }
  return writer->Close();
}

}  // namespace dsrt::models
