#ifndef DSRT_SERIALIZATION_ENGINE_FORMAT_H_
#define DSRT_SERIALIZATION_ENGINE_FORMAT_H_

// The fixed 64-byte header that opens every engine file, and the layout
// constants shared by the writer and the reader. README.md draws the layout.

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace dsrt::serialization {

inline constexpr char kEngineMagic[8] = {'D', 'S', 'R', 'T', 'E', 'N', 'G', '\0'};
inline constexpr uint32_t kEngineFormatVersion = 1;
inline constexpr int64_t kHeaderBytes = 64;
inline constexpr int64_t kWeightAlignment = 64;
inline constexpr int64_t kSectionAlignment = 4096;

// Every field of the header but the magic and the header checksum, which
// EncodeHeader computes and DecodeHeader checks.
struct EngineHeader {
  uint32_t format_version = kEngineFormatVersion;
  uint32_t header_bytes = kHeaderBytes;
  uint64_t proto_offset = kHeaderBytes;
  uint64_t proto_bytes = 0;
  uint32_t proto_crc32 = 0;
  uint64_t file_bytes = 0;
};

// Byte offsets inside the header.
inline constexpr size_t kVersionAt = 8;
inline constexpr size_t kHeaderBytesAt = 12;
inline constexpr size_t kProtoOffsetAt = 16;
inline constexpr size_t kProtoBytesAt = 24;
inline constexpr size_t kProtoCrcAt = 32;
inline constexpr size_t kFileBytesAt = 40;
inline constexpr size_t kHeaderCrcAt = 60;

std::array<uint8_t, kHeaderBytes> EncodeHeader(const EngineHeader& header);

// Checks, in order: the magic ("not a dsrt engine"), the length (a header cut
// short is "truncated"), the format version, the header checksum, and that
// the fields describe a possible file. Messages do not name the file: the
// caller prefixes its path.
absl::StatusOr<EngineHeader> DecodeHeader(absl::Span<const uint8_t> bytes);

// A weight without a quant scheme holds exactly its elements: `bytes` must be
// DTypeBytes(dtype, product of shape). A quantized weight's packing is its
// scheme's business; only its dtype and dims are checked.
absl::Status CheckWeightBytes(absl::string_view dtype, absl::Span<const int64_t> shape, absl::string_view quant_scheme,
                              int64_t bytes);

// zlib's crc32 of `n` bytes (any length, including more than 4 GiB).
uint32_t Crc32(const void* data, size_t n);

inline int64_t AlignUp(int64_t value, int64_t alignment) { return (value + alignment - 1) / alignment * alignment; }

}  // namespace dsrt::serialization

#endif  // DSRT_SERIALIZATION_ENGINE_FORMAT_H_
