#include "runtime/text/utf8.h"

#include <algorithm>
#include <cstring>

namespace dsrt::text {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

bool IsContinuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// Expected byte count for a lead byte, 0 if it can never start a character.
size_t SequenceWidth(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// The allowed range of the second byte narrows for some leads (Table 3-7).
bool IsValidSecondByte(unsigned char lead, unsigned char second) {
  switch (lead) {
    case 0xE0: return second >= 0xA0 && second <= 0xBF;
    case 0xED: return second >= 0x80 && second <= 0x9F;
    case 0xF0: return second >= 0x90 && second <= 0xBF;
    case 0xF4: return second >= 0x80 && second <= 0x8F;
    default: return IsContinuation(second);
  }
}

bool AllAscii8(const unsigned char* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof(word));
  return (word & 0x8080808080808080ULL) == 0;
}

}  // namespace

Utf8Sequence ScanUtf8Sequence(const unsigned char* p, size_t available) {
  const unsigned char lead = p[0];
  const size_t width = SequenceWidth(lead);
  if (width == 1) return {Utf8Sequence::Kind::kValid, 1};
  if (width == 0) return {Utf8Sequence::Kind::kInvalid, 1};
  size_t good = 1;  // bytes so far that extend a well-formed prefix
  while (good < width) {
    if (good == available) return {Utf8Sequence::Kind::kTruncated, good};
    const bool ok = good == 1 ? IsValidSecondByte(lead, p[1])
                              : IsContinuation(p[good]);
    if (!ok) return {Utf8Sequence::Kind::kInvalid, good};
    ++good;
  }
  return {Utf8Sequence::Kind::kValid, width};
}

std::optional<size_t> FindInvalidUtf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n && AllAscii8(p + i)) {
      i += 8;
      continue;
    }
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const Utf8Sequence seq = ScanUtf8Sequence(p + i, n - i);
    if (seq.kind != Utf8Sequence::Kind::kValid) return i;
    i += seq.length;
  }
  return std::nullopt;
}

void AppendUtf8Lossy(std::string_view bytes, std::string& out) {
  const std::optional<size_t> first_bad = FindInvalidUtf8(bytes);
  if (!first_bad.has_value()) {
    out.append(bytes);
    return;
  }
  out.append(bytes.substr(0, *first_bad));
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = *first_bad;
  while (i < bytes.size()) {
    const Utf8Sequence seq = ScanUtf8Sequence(p + i, bytes.size() - i);
    if (seq.kind == Utf8Sequence::Kind::kValid) {
      out.append(bytes.data() + i, seq.length);
    } else {
      out.append(kReplacement);
    }
    i += seq.length;
  }
}

void Utf8StreamAssembler::Append(std::string_view bytes, std::string& out) {
  size_t consumed = 0;
  // First finish (or reject) a character left over from the previous chunk.
  while (pending_size_ > 0 && consumed < bytes.size()) {
    pending_[pending_size_++] = static_cast<unsigned char>(bytes[consumed++]);
    const Utf8Sequence seq = ScanUtf8Sequence(pending_, pending_size_);
    if (seq.kind == Utf8Sequence::Kind::kTruncated) continue;
    if (seq.kind == Utf8Sequence::Kind::kValid) {
      out.append(reinterpret_cast<const char*>(pending_), seq.length);
      pending_size_ = 0;
      break;
    }
    // Ill-formed: one U+FFFD for the maximal subpart; the bytes after it are
    // scanned again as the start of the rest of the input.
    out.append(kReplacement);
    const size_t rescan = pending_size_ - seq.length;
    consumed -= std::min(rescan, consumed);
    pending_size_ = 0;
  }
  if (pending_size_ > 0) return;  // still unfinished, the chunk is used up
  std::string_view rest = bytes.substr(consumed);
  const auto* p = reinterpret_cast<const unsigned char*>(rest.data());
  size_t tail = rest.size();
  // Hold back a trailing character that the next chunk may complete.
  for (size_t back = 1; back <= 3 && back <= rest.size(); ++back) {
    const size_t start = rest.size() - back;
    if (IsContinuation(p[start])) continue;
    const Utf8Sequence seq = ScanUtf8Sequence(p + start, back);
    if (seq.kind == Utf8Sequence::Kind::kTruncated) tail = start;
    break;
  }
  AppendUtf8Lossy(rest.substr(0, tail), out);
  for (size_t i = tail; i < rest.size(); ++i) pending_[pending_size_++] = p[i];
}

void Utf8StreamAssembler::Finish(std::string& out) {
  if (pending_size_ > 0) out.append(kReplacement);
  pending_size_ = 0;
}

void AppendCodePoint(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t DecodeValidCodePoint(const unsigned char* p, size_t* length) {
  const unsigned char lead = p[0];
  if (lead < 0x80) {
    *length = 1;
    return lead;
  }
  if (lead < 0xE0) {
    *length = 2;
    return (char32_t(lead & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (lead < 0xF0) {
    *length = 3;
    return (char32_t(lead & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) |
           (p[2] & 0x3F);
  }
  *length = 4;
  return (char32_t(lead & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) |
         (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

}  // namespace dsrt::text
