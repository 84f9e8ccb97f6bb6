#include "serialization/engine_format.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ir/dtype.h"
#include "zlib.h"

namespace dsrt::serialization {
namespace {

template <typename T>
void Store(uint8_t* at, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) at[i] = static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i));
}

template <typename T>
T Load(const uint8_t* at) {
  uint64_t value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) value |= static_cast<uint64_t>(at[i]) << (8 * i);
  return static_cast<T>(value);
}

absl::Status CheckFields(const EngineHeader& h) {
  if (h.header_bytes != kHeaderBytes) {
    return absl::DataLossError(absl::StrCat("header says it is ", h.header_bytes, " bytes long, not ", kHeaderBytes));
  }
  if (h.proto_offset != kHeaderBytes) {
    return absl::DataLossError(
        absl::StrCat("header puts the engine proto at ", h.proto_offset, ", not ", kHeaderBytes));
  }
  if (h.proto_bytes > h.file_bytes || h.proto_offset > h.file_bytes - h.proto_bytes) {
    return absl::DataLossError(absl::StrCat("header puts the engine proto (", h.proto_bytes, " bytes at ",
                                            h.proto_offset, ") past the end of the ", h.file_bytes, "-byte file"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckWeightBytes(absl::string_view dtype, absl::Span<const int64_t> shape, absl::string_view quant_scheme,
                              int64_t bytes) {
  auto parsed = ir::ParseDType(dtype);
  if (!parsed.ok()) return parsed.status();
  int64_t elements = 1;
  for (int64_t dim : shape) {
    if (dim < 0 || (dim > 0 && elements > INT64_MAX / 8 / dim)) {
      return absl::InvalidArgumentError(absl::StrCat("impossible shape [", absl::StrJoin(shape, ","), "]"));
    }
    elements *= dim;
  }
  const int64_t expected = ir::DTypeBytes(*parsed, elements);
  if (!quant_scheme.empty() || bytes == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(bytes, " bytes, but ", dtype, "[", absl::StrJoin(shape, ","), "] takes ", expected));
}

uint32_t Crc32(const void* data, size_t n) {
  return static_cast<uint32_t>(crc32_z(0L, static_cast<const Bytef*>(data), n));
}

std::array<uint8_t, kHeaderBytes> EncodeHeader(const EngineHeader& header) {
  std::array<uint8_t, kHeaderBytes> bytes{};
  std::memcpy(bytes.data(), kEngineMagic, sizeof kEngineMagic);
  Store<uint32_t>(&bytes[kVersionAt], header.format_version);
  Store<uint32_t>(&bytes[kHeaderBytesAt], header.header_bytes);
  Store<uint64_t>(&bytes[kProtoOffsetAt], header.proto_offset);
  Store<uint64_t>(&bytes[kProtoBytesAt], header.proto_bytes);
  Store<uint32_t>(&bytes[kProtoCrcAt], header.proto_crc32);
  Store<uint64_t>(&bytes[kFileBytesAt], header.file_bytes);
  Store<uint32_t>(&bytes[kHeaderCrcAt], Crc32(bytes.data(), kHeaderCrcAt));
  return bytes;
}

absl::StatusOr<EngineHeader> DecodeHeader(absl::Span<const uint8_t> bytes) {
  const size_t magic = std::min(bytes.size(), sizeof kEngineMagic);
  if (std::memcmp(bytes.data(), kEngineMagic, magic) != 0)
    return absl::InvalidArgumentError("not a dsrt engine (bad magic)");
  if (bytes.size() < kHeaderBytes) {
    return absl::DataLossError(
        absl::StrCat("truncated: expected at least ", kHeaderBytes, " bytes, found ", bytes.size()));
  }
  EngineHeader h;
  h.format_version = Load<uint32_t>(&bytes[kVersionAt]);
  if (h.format_version != kEngineFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat("engine format version ", h.format_version, ", this dsrt reads ",
                                                      kEngineFormatVersion, ": rebuild the engine"));
  }
  if (Load<uint32_t>(&bytes[kHeaderCrcAt]) != Crc32(bytes.data(), kHeaderCrcAt)) {
    return absl::DataLossError("header checksum mismatch: the file is corrupt");
  }
  h.header_bytes = Load<uint32_t>(&bytes[kHeaderBytesAt]);
  h.proto_offset = Load<uint64_t>(&bytes[kProtoOffsetAt]);
  h.proto_bytes = Load<uint64_t>(&bytes[kProtoBytesAt]);
  h.proto_crc32 = Load<uint32_t>(&bytes[kProtoCrcAt]);
  h.file_bytes = Load<uint64_t>(&bytes[kFileBytesAt]);
  if (absl::Status s = CheckFields(h); !s.ok()) return s;
  return h;
}

}  // namespace dsrt::serialization
