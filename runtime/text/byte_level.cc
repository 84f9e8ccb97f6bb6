#include "runtime/text/byte_level.h"

#include "runtime/text/utf8.h"

namespace dsrt::text {

std::optional<std::string> ByteLevelAlphabet::ToBytes(std::string_view token) const {
  std::string bytes;
  bytes.reserve(token.size());
  const auto* p = reinterpret_cast<const unsigned char*>(token.data());
  size_t i = 0;
  while (i < token.size()) {
    const Utf8Sequence seq = ScanUtf8Sequence(p + i, token.size() - i);
    if (seq.kind != Utf8Sequence::Kind::kValid) return std::nullopt;
    size_t length = 0;
    const int byte = ByteForChar(DecodeValidCodePoint(p + i, &length));
    if (byte < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(byte));
    i += length;
  }
  return bytes;
}

std::string ByteLevelAlphabet::FromBytes(std::string_view bytes) const {
  std::string text;
  text.reserve(bytes.size() * 2);
  for (const char c : bytes) AppendCodePoint(CharForByte(static_cast<uint8_t>(c)), text);
  return text;
}

}  // namespace dsrt::text
