#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ir/status_macros.h"

namespace dsrt::models {
namespace {

using Json = nlohmann::json;

// The safetensors spec caps the header at 100 MB.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

struct DTypeSpelling {
  absl::string_view name;
  ir::DType dtype;
};

constexpr DTypeSpelling kSpellings[] = {
    {"F32", ir::DType::kF32}, {"BF16", ir::DType::kBF16}, {"F16", ir::DType::kF16},
    {"F8_E4M3", ir::DType::kF8E4M3}, {"I32", ir::DType::kI32}, {"I64", ir::DType::kI64},
    {"I8", ir::DType::kI8},   {"U8", ir::DType::kU8},     {"BOOL", ir::DType::kU8},
};

absl::Status HeaderError(absl::string_view path, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": invalid safetensors file: ", what));
}

absl::Status TensorError(absl::string_view path, absl::string_view name, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(path, ": invalid safetensors file: tensor '", name, "' ", what));
}

uint64_t ReadLittleEndian64(const char* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  return value;
}

absl::StatusOr<std::vector<int64_t>> ParseShape(const Json& shape, absl::string_view path, absl::string_view name) {
  if (!shape.is_array()) return TensorError(path, name, "has a shape that is not a list");
  std::vector<int64_t> dims;
  for (const Json& dim : shape) {
    // nlohmann stores every non-negative JSON integer as unsigned.
    if (!dim.is_number_unsigned() || dim.get<uint64_t>() > (uint64_t{1} << 48)) {
      return TensorError(path, name, absl::StrCat("has an invalid shape ", shape.dump()));
    }
    const uint64_t value = dim.get<uint64_t>();
    dims.push_back(static_cast<int64_t>(value));
  }
  return dims;
}

// Elements of `shape`, or -1 when the product overflows `limit`.
int64_t ElementCount(const std::vector<int64_t>& shape, int64_t limit) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim == 0) return 0;
  }
  for (int64_t dim : shape) {
    if (__builtin_mul_overflow(count, dim, &count) || count > limit) return -1;
  }
  return count;
}

absl::StatusOr<SafetensorsTensor> ParseTensor(const std::string& name, const Json& entry, int64_t data_start,
                                              int64_t data_size, absl::string_view path) {
  if (!entry.is_object()) return TensorError(path, name, "is not a JSON object");
  if (!entry.contains("dtype") || !entry.at("dtype").is_string()) return TensorError(path, name, "has no dtype");
  if (!entry.contains("shape")) return TensorError(path, name, "has no shape");
  if (!entry.contains("data_offsets")) return TensorError(path, name, "has no data_offsets");

  SafetensorsTensor tensor;
  tensor.name = name;
  const std::string dtype_name = entry.at("dtype").get<std::string>();
  absl::StatusOr<ir::DType> dtype = DTypeFromSafetensorsName(dtype_name);
  if (!dtype.ok()) return TensorError(path, name, absl::StrCat("has an unsupported dtype '", dtype_name, "'"));
  tensor.dtype = *dtype;
  DSRT_ASSIGN_OR_RETURN(tensor.shape, ParseShape(entry.at("shape"), path, name));

  const Json& offsets = entry.at("data_offsets");
  const bool offsets_valid = offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                             offsets[1].is_number_unsigned();
  if (!offsets_valid) return TensorError(path, name, absl::StrCat("has invalid data_offsets ", offsets.dump()));
  const uint64_t begin = offsets[0].get<uint64_t>();
  const uint64_t end = offsets[1].get<uint64_t>();
  if (begin > end || end > static_cast<uint64_t>(data_size)) {
    return TensorError(path, name,
                       absl::StrCat("has data_offsets [", begin, ", ", end, "] outside the data region of ", data_size,
                                    " bytes (is the file truncated?)"));
  }
  const int64_t count = ElementCount(tensor.shape, data_size);
  const int64_t expected_bytes = count < 0 ? -1 : ir::DTypeBytes(tensor.dtype, count);
  if (expected_bytes != static_cast<int64_t>(end - begin)) {
    return TensorError(path, name,
                       absl::StrCat("has ", end - begin, " bytes of data, but ", dtype_name, " [",
                                    absl::StrJoin(tensor.shape, ", "), "] needs ",
                                    count < 0 ? std::string("more than the file holds") : absl::StrCat(expected_bytes)));
  }
  tensor.offset = data_start + static_cast<int64_t>(begin);
  tensor.bytes = static_cast<int64_t>(end - begin);
  return tensor;
}

absl::Status ParseMetadata(const Json& metadata, absl::string_view path, SafetensorsHeader& header) {
  if (!metadata.is_object()) return HeaderError(path, "__metadata__ is not a JSON object");
  for (const auto& [key, value] : metadata.items()) {
    if (value.is_string()) header.metadata[key] = value.get<std::string>();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ir::DType> DTypeFromSafetensorsName(absl::string_view name) {
  for (const DTypeSpelling& spelling : kSpellings) {
    if (spelling.name == name) return spelling.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unsupported safetensors dtype '", name, "'"));
}

absl::string_view SafetensorsDTypeName(ir::DType dtype) {
  for (const DTypeSpelling& spelling : kSpellings) {
    if (spelling.dtype == dtype) return spelling.name;
  }
  return "";
}

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view file_bytes, int64_t file_size,
                                                         absl::string_view path) {
  if (file_size < 8 || file_bytes.size() < 8) {
    return HeaderError(path, absl::StrCat("the file has ", file_size, " bytes, fewer than the 8-byte header length"));
  }
  const uint64_t header_bytes = ReadLittleEndian64(file_bytes.data());
  if (header_bytes > kMaxHeaderBytes || header_bytes + 8 > static_cast<uint64_t>(file_size) ||
      header_bytes + 8 > file_bytes.size()) {
    return HeaderError(path, absl::StrCat("header length ", header_bytes, " does not fit in the file of ", file_size,
                                          " bytes (is the file truncated?)"));
  }
  const absl::string_view text = file_bytes.substr(8, header_bytes);
  const Json root = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return HeaderError(path, "the header is not valid JSON");
  if (!root.is_object()) return HeaderError(path, "the header is not a JSON object");

  SafetensorsHeader header;
  header.data_start = static_cast<int64_t>(8 + header_bytes);
  const int64_t data_size = file_size - header.data_start;
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      DSRT_RETURN_IF_ERROR(ParseMetadata(entry, path, header));
      continue;
    }
    DSRT_ASSIGN_OR_RETURN(SafetensorsTensor tensor, ParseTensor(name, entry, header.data_start, data_size, path));
    header.tensors.push_back(std::move(tensor));
  }
  std::stable_sort(header.tensors.begin(), header.tensors.end(),
                   [](const SafetensorsTensor& a, const SafetensorsTensor& b) { return a.offset < b.offset; });
  return header;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat(path, ": cannot stat: ", std::strerror(error)));
  }
  const int64_t size = info.st_size;
  if (size < 8) {
    ::close(fd);
    return HeaderError(path, absl::StrCat("the file has ", size, " bytes, fewer than the 8-byte header length"));
  }
  void* mapping = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_error = errno;
  ::close(fd);
  if (mapping == MAP_FAILED) return absl::InternalError(absl::StrCat(path, ": cannot mmap: ", std::strerror(map_error)));

  const auto* data = static_cast<const uint8_t*>(mapping);
  absl::StatusOr<SafetensorsHeader> header =
      ParseSafetensorsHeader(absl::string_view(reinterpret_cast<const char*>(data), size), size, path);
  if (!header.ok()) {
    ::munmap(mapping, static_cast<size_t>(size));
    return header.status();
  }
  return std::unique_ptr<SafetensorsFile>(new SafetensorsFile(path, data, size, *std::move(header)));
}

SafetensorsFile::SafetensorsFile(std::string path, const uint8_t* data, int64_t size, SafetensorsHeader header)
    : path_(std::move(path)), data_(data), size_(size), header_(std::move(header)) {
  for (int i = 0; i < static_cast<int>(header_.tensors.size()); ++i) index_[header_.tensors[i].name] = i;
}

SafetensorsFile::~SafetensorsFile() { ::munmap(const_cast<uint8_t*>(data_), static_cast<size_t>(size_)); }

const SafetensorsTensor* SafetensorsFile::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

ir::WeightView SafetensorsFile::View(const SafetensorsTensor& tensor) const {
  return ir::WeightView{tensor.dtype, tensor.shape, data_ + tensor.offset, tensor.bytes};
}

absl::StatusOr<ir::WeightView> SafetensorsFile::View(absl::string_view name) const {
  const SafetensorsTensor* tensor = Find(name);
  if (tensor == nullptr) return absl::NotFoundError(absl::StrCat(path_, ": no tensor '", name, "'"));
  return View(*tensor);
}

}  // namespace dsrt::models
