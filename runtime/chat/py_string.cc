#include "runtime/chat/py_string.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace dsrt::chat {
namespace {

constexpr char32_t kEscapedByteBase = 0xDC00;  // U+DC80..U+DCFF stand for bytes 0x80..0xFF

bool IsContinuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// Decodes one well-formed sequence at text[i]; returns its length, or 0 when
// the bytes there are not well-formed UTF-8.
size_t DecodeOne(std::string_view text, size_t i, char32_t& out) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) {
    out = lead;
    return 1;
  }
  size_t length = 0;
  char32_t minimum = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, out = lead & 0x1F, minimum = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, out = lead & 0x0F, minimum = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, out = lead & 0x07, minimum = 0x10000;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if (!IsContinuation(byte(k))) return 0;
    out = (out << 6) | (byte(k) & 0x3F);
  }
  if (out < minimum || out > 0x10FFFF || (out >= 0xD800 && out <= 0xDFFF)) return 0;
  return length;
}

bool IsAsciiOnly(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string MapCodePoints(std::string_view text, char32_t (*map)(char32_t)) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : DecodeUtf8(text)) AppendUtf8(map(c), out);
  return out;
}

bool InSet(char32_t c, const std::u32string* set) {
  if (set == nullptr) return IsPyWhitespace(c);
  return set->find(c) != std::u32string::npos;
}

// Python's str.isprintable(), approximately: controls, separators other than
// the space, format characters, surrogates and private use are not printable.
bool IsPyPrintable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if (c == 0x61C || c == 0x1680 || c == 0x180E || c == 0x3000 || c == 0xFEFF) return false;
  if (c >= 0x2000 && c <= 0x200F) return false;
  if (c >= 0x2028 && c <= 0x202F) return false;
  if (c >= 0x205F && c <= 0x206F) return false;
  if (c >= 0xD800 && c <= 0xF8FF) return false;
  if (c >= 0xFFF9 && c <= 0xFFFB) return false;
  if (c == 0xFFFE || c == 0xFFFF) return false;
  if (c >= 0xE0000 && c <= 0xE007F) return false;
  return c < 0xF0000;
}

void AppendHex(uint32_t value, int digits, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kHex[(value >> shift) & 0xF];
}

bool IsLineBreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

}  // namespace

size_t DecodeCodePoint(std::string_view text, size_t offset, char32_t& out) {
  const size_t length = DecodeOne(text, offset, out);
  if (length > 0) return length;
  out = kEscapedByteBase + static_cast<unsigned char>(text[offset]);
  return 1;
}

std::u32string DecodeUtf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    char32_t c = 0;
    const size_t length = DecodeOne(text, i, c);
    if (length == 0) {
      out += kEscapedByteBase + static_cast<unsigned char>(text[i]);
      ++i;
      continue;
    }
    out += c;
    i += length;
  }
  return out;
}

void AppendUtf8(char32_t c, std::string& out) {
  if (c >= kEscapedByteBase + 0x80 && c <= kEscapedByteBase + 0xFF) {
    out += static_cast<char>(c - kEscapedByteBase);
  } else if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::string EncodeUtf8(std::u32string_view code_points) {
  std::string out;
  out.reserve(code_points.size());
  for (char32_t c : code_points) AppendUtf8(c, out);
  return out;
}

int64_t CodePointCount(std::string_view text) {
  if (IsAsciiOnly(text)) return static_cast<int64_t>(text.size());
  return static_cast<int64_t>(DecodeUtf8(text).size());
}

bool IsPyWhitespace(char32_t c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return true;
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

char32_t LowerCodePoint(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0xC0) return c;
  if (c <= 0xDE) return c == 0xD7 ? c : c + 32;
  if (c >= 0x100 && c <= 0x137 && c != 0x130 && c != 0x131) return c | 1;
  if (c >= 0x139 && c <= 0x148) return (c % 2 == 1) ? c + 1 : c;
  if (c >= 0x14A && c <= 0x177) return c | 1;
  if (c == 0x178) return 0xFF;
  if (c >= 0x179 && c <= 0x17E) return (c % 2 == 1) ? c + 1 : c;
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  return c;
}

char32_t UpperCodePoint(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0xE0) return c;
  if (c <= 0xFE) return c == 0xF7 ? c : c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x100 && c <= 0x137 && c != 0x130 && c != 0x131) return c & ~char32_t{1};
  if (c == 0x131) return 'I';
  if (c >= 0x139 && c <= 0x148) return (c % 2 == 0) ? c - 1 : c;
  if (c >= 0x14A && c <= 0x177) return c & ~char32_t{1};
  if (c >= 0x179 && c <= 0x17E) return (c % 2 == 0) ? c - 1 : c;
  if (c == 0x17F) return 'S';
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x3B1 && c <= 0x3CB) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 0x50;
  return c;
}

std::string PyLower(std::string_view text) { return MapCodePoints(text, LowerCodePoint); }
std::string PyUpper(std::string_view text) { return MapCodePoints(text, UpperCodePoint); }

std::string PyStrip(std::string_view text, const std::string* chars, bool left, bool right) {
  const std::u32string code_points = DecodeUtf8(text);
  std::u32string set;
  if (chars != nullptr) set = DecodeUtf8(*chars);
  const std::u32string* set_ptr = chars == nullptr ? nullptr : &set;
  size_t begin = 0;
  size_t end = code_points.size();
  while (left && begin < end && InSet(code_points[begin], set_ptr)) ++begin;
  while (right && end > begin && InSet(code_points[end - 1], set_ptr)) --end;
  return EncodeUtf8(std::u32string_view(code_points).substr(begin, end - begin));
}

namespace {

std::vector<std::string> SplitOnWhitespace(std::string_view text, int64_t maxsplit) {
  const std::u32string cps = DecodeUtf8(text);
  std::vector<std::string> parts;
  size_t i = 0;
  while (true) {
    while (i < cps.size() && IsPyWhitespace(cps[i])) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
      size_t end = cps.size();
      while (end > i && IsPyWhitespace(cps[end - 1])) --end;
      parts.push_back(EncodeUtf8(std::u32string_view(cps).substr(i, end - i)));
      break;
    }
    size_t j = i;
    while (j < cps.size() && !IsPyWhitespace(cps[j])) ++j;
    parts.push_back(EncodeUtf8(std::u32string_view(cps).substr(i, j - i)));
    i = j;
  }
  return parts;
}

std::vector<std::string> RSplitOnWhitespace(std::string_view text, int64_t maxsplit) {
  const std::u32string cps = DecodeUtf8(text);
  std::vector<std::string> parts;
  size_t end = cps.size();
  while (true) {
    while (end > 0 && IsPyWhitespace(cps[end - 1])) --end;
    if (end == 0) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
      size_t begin = 0;
      while (begin < end && IsPyWhitespace(cps[begin])) ++begin;
      parts.push_back(EncodeUtf8(std::u32string_view(cps).substr(begin, end - begin)));
      break;
    }
    size_t begin = end;
    while (begin > 0 && !IsPyWhitespace(cps[begin - 1])) --begin;
    parts.push_back(EncodeUtf8(std::u32string_view(cps).substr(begin, end - begin)));
    end = begin;
  }
  std::reverse(parts.begin(), parts.end());
  return parts;
}

}  // namespace

// Byte-wise search is exact for code points because UTF-8 is self-synchronizing.
std::vector<std::string> PySplit(std::string_view text, const std::string* sep, int64_t maxsplit) {
  if (sep == nullptr) return SplitOnWhitespace(text, maxsplit);
  std::vector<std::string> parts;
  size_t start = 0;
  while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
    const size_t found = text.find(*sep, start);
    if (found == std::string_view::npos) break;
    parts.emplace_back(text.substr(start, found - start));
    start = found + sep->size();
  }
  parts.emplace_back(text.substr(start));
  return parts;
}

std::vector<std::string> PyRSplit(std::string_view text, const std::string* sep, int64_t maxsplit) {
  if (sep == nullptr) return RSplitOnWhitespace(text, maxsplit);
  std::vector<std::string> parts;
  size_t end = text.size();
  while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
    if (end < sep->size()) break;
    const size_t found = text.rfind(*sep, end - sep->size());
    if (found == std::string_view::npos) break;
    parts.emplace_back(text.substr(found + sep->size(), end - found - sep->size()));
    end = found;
  }
  parts.emplace_back(text.substr(0, end));
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> PySplitLines(std::string_view text, bool keepends) {
  const std::u32string cps = DecodeUtf8(text);
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (!IsLineBreak(cps[i])) continue;
    size_t break_end = i + 1;
    if (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') break_end = i + 2;
    const size_t line_end = keepends ? break_end : i;
    lines.push_back(EncodeUtf8(std::u32string_view(cps).substr(start, line_end - start)));
    start = break_end;
    i = break_end - 1;
  }
  if (start < cps.size()) lines.push_back(EncodeUtf8(std::u32string_view(cps).substr(start)));
  return lines;
}

std::string PyReplace(std::string_view text, std::string_view old, std::string_view replacement,
                      int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement before every character and at the end.
    const std::u32string cps = DecodeUtf8(text);
    int64_t done = 0;
    for (char32_t c : cps) {
      if (count < 0 || done < count) out.append(replacement), ++done;
      AppendUtf8(c, out);
    }
    if (count < 0 || done < count) out.append(replacement);
    return out;
  }
  size_t start = 0;
  for (int64_t done = 0; count < 0 || done < count; ++done) {
    const size_t found = text.find(old, start);
    if (found == std::string_view::npos) break;
    out.append(text.substr(start, found - start));
    out.append(replacement);
    start = found + old.size();
  }
  out.append(text.substr(start));
  return out;
}

std::string PyStrRepr(std::string_view text) {
  const bool has_single = text.find('\'') != std::string_view::npos;
  const bool has_double = text.find('"') != std::string_view::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : DecodeUtf8(text)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (IsPyPrintable(c)) {
      AppendUtf8(c, out);
    } else if (c <= 0xFF) {
      out += "\\x", AppendHex(c, 2, out);
    } else if (c <= 0xFFFF) {
      out += "\\u", AppendHex(c, 4, out);
    } else {
      out += "\\U", AppendHex(c, 8, out);
    }
  }
  out += quote;
  return out;
}

std::string PyJsonString(std::string_view text, bool ensure_ascii) {
  std::string out = "\"";
  for (char32_t c : DecodeUtf8(text)) {
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20 || (ensure_ascii && c >= 0x80 && c <= 0xFFFF)) {
      out += "\\u", AppendHex(c, 4, out);
    } else if (ensure_ascii && c > 0xFFFF) {
      const char32_t v = c - 0x10000;
      out += "\\u", AppendHex(0xD800 + (v >> 10), 4, out);
      out += "\\u", AppendHex(0xDC00 + (v & 0x3FF), 4, out);
    } else {
      AppendUtf8(c, out);
    }
  }
  out += '"';
  return out;
}

std::string PyFloatRepr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  const std::string_view scientific(buffer, result.ptr - buffer);  // "-1.2345e-05"
  const size_t e = scientific.find('e');
  std::string_view mantissa = scientific.substr(0, e);
  const int exponent = std::atoi(std::string(scientific.substr(e + 1)).c_str());
  std::string out;
  if (!mantissa.empty() && mantissa[0] == '-') out += '-', mantissa.remove_prefix(1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  const int point = exponent + 1;  // digits before the decimal point
  if (point <= -4 || point > 16) {
    out += digits[0];
    if (digits.size() > 1) out += '.', out.append(digits, 1, std::string::npos);
    out += 'e';
    out += exponent < 0 ? '-' : '+';
    const int magnitude = std::abs(exponent);
    if (magnitude < 10) out += '0';
    out += std::to_string(magnitude);
    return out;
  }
  if (point <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-point), '0');
    out += digits;
    return out;
  }
  if (static_cast<size_t>(point) >= digits.size()) {
    out += digits;
    out.append(static_cast<size_t>(point) - digits.size(), '0');
    out += ".0";
    return out;
  }
  out.append(digits, 0, point);
  out += '.';
  out.append(digits, point, std::string::npos);
  return out;
}

}  // namespace dsrt::chat
