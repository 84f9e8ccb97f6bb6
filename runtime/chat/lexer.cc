#include "runtime/chat/lexer.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/chat/py_string.h"

namespace dsrt::chat {
namespace {

// Jinja joins the template's lines with "\n" (any of \r\n, \r, \n ends a
// line) and, without keep_trailing_newline, drops one final newline.
std::string NormalizeSource(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] != '\r') {
      out += source[i];
      continue;
    }
    out += '\n';
    if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }

bool AllPyWhitespace(std::string_view text) {
  for (char32_t c : DecodeUtf8(text)) {
    if (!IsPyWhitespace(c)) return false;
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads `count` hex digits at text[i]; -1 when there are fewer.
int64_t ReadHex(std::string_view text, size_t i, int count) {
  if (i + count > text.size()) return -1;
  int64_t value = 0;
  for (int k = 0; k < count; ++k) {
    const int digit = HexValue(text[i + k]);
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

void AppendEscapedCodePoint(char32_t c, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const int digits = c <= 0xFF ? 2 : (c <= 0xFFFF ? 4 : 8);
  out += digits == 2 ? 'x' : (digits == 4 ? 'u' : 'U');
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kHex[(c >> shift) & 0xF];
}

// Jinja decodes string literals with Python's "unicode-escape" codec after
// turning non-ASCII characters into backslash escapes; this reproduces it.
absl::StatusOr<std::string> DecodeStringLiteral(std::string_view raw) {
  std::string out;
  size_t i = 0;
  while (i < raw.size()) {
    if (raw[i] != '\\' || i + 1 >= raw.size()) {
      out += raw[i++];
      continue;
    }
    const char e = raw[i + 1];
    i += 2;
    switch (e) {
      case '\n': continue;
      case '\\': out += '\\'; continue;
      case '\'': out += '\''; continue;
      case '"': out += '"'; continue;
      case 'a': out += '\a'; continue;
      case 'b': out += '\b'; continue;
      case 'f': out += '\f'; continue;
      case 'n': out += '\n'; continue;
      case 'r': out += '\r'; continue;
      case 't': out += '\t'; continue;
      case 'v': out += '\v'; continue;
      default: break;
    }
    if (e >= '0' && e <= '7') {
      char32_t value = e - '0';
      for (int k = 0; k < 2 && i < raw.size() && raw[i] >= '0' && raw[i] <= '7'; ++k) value = value * 8 + (raw[i++] - '0');
      AppendUtf8(value, out);
      continue;
    }
    if (e == 'x' || e == 'u' || e == 'U') {
      const int count = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
      const int64_t value = ReadHex(raw, i, count);
      if (value < 0) return absl::InvalidArgumentError(absl::StrCat("truncated \\", std::string(1, e), " escape"));
      if (value > 0x10FFFF) return absl::InvalidArgumentError("illegal Unicode character in \\U escape");
      AppendUtf8(static_cast<char32_t>(value), out);
      i += count;
      continue;
    }
    if (e == 'N') return absl::UnimplementedError("\\N{...} escapes are not supported");
    if (static_cast<unsigned char>(e) >= 0x80) {
      // "\é" reads as "\\xe9" after backslashreplace: a backslash, then "xe9".
      char32_t c = 0;
      const size_t length = DecodeCodePoint(raw, i - 1, c);
      out += '\\';
      AppendEscapedCodePoint(c, out);
      i += length - 1;
      continue;
    }
    out += '\\';
    out += e;
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : source_(NormalizeSource(source)) {}

  absl::StatusOr<std::vector<Token>> Run() {
    while (pos_ < source_.size()) {
      absl::Status status = LexNext();
      if (!status.ok()) return status;
    }
    Emit(TokenKind::kEnd, "", source_.size());
    return std::move(tokens_);
  }

 private:
  SourcePos PosAt(size_t offset) {
    if (offset < cached_offset_) cached_offset_ = 0, cached_pos_ = SourcePos{1, 1};
    for (; cached_offset_ < offset && cached_offset_ < source_.size(); ++cached_offset_) {
      const unsigned char c = source_[cached_offset_];
      if (c == '\n') {
        ++cached_pos_.line;
        cached_pos_.column = 1;
      } else if ((c & 0xC0) != 0x80) {
        ++cached_pos_.column;
      }
    }
    return cached_pos_;
  }

  bool StartsWith(size_t offset, std::string_view text) const {
    return offset <= source_.size() && std::string_view(source_).substr(offset).substr(0, text.size()) == text;
  }

  size_t SkipWhitespace(size_t offset) const {
    while (offset < source_.size()) {
      char32_t c = 0;
      const size_t length = DecodeCodePoint(source_, offset, c);
      if (!IsPyWhitespace(c)) break;
      offset += length;
    }
    return offset;
  }

  void Emit(TokenKind kind, std::string text, size_t offset) {
    Token token;
    token.kind = kind;
    token.text = std::move(text);
    token.pos = PosAt(offset);
    tokens_.push_back(std::move(token));
  }

  void EmitText(std::string text, size_t offset) {
    if (!text.empty()) Emit(TokenKind::kText, std::move(text), offset);
  }

  // Every rule that ends a tag decides whether the next text starts a line.
  void FinishTagAt(size_t end) {
    pos_ = end;
    line_starting_ = end > 0 && source_[end - 1] == '\n';
  }

  size_t FindTagStart(size_t from) const {
    for (size_t i = source_.find('{', from); i != std::string::npos; i = source_.find('{', i + 1)) {
      if (i + 1 < source_.size() && (source_[i + 1] == '{' || source_[i + 1] == '%' || source_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  // `-` strips all whitespace before a tag; lstrip_blocks strips spaces and
  // tabs between the start of a line and a block or comment tag.
  std::string StripBeforeTag(std::string text, char sign, bool lstrip_allowed) const {
    if (sign == '-') return PyStrip(text, nullptr, false, true);
    if (sign == '+' || !lstrip_allowed) return text;
    const size_t newline = text.rfind('\n');
    const size_t line_start = newline == std::string::npos ? 0 : newline + 1;
    if (line_start == 0 && !line_starting_) return text;
    const std::string_view rest = std::string_view(text).substr(line_start);
    if (rest.empty() || !AllPyWhitespace(rest)) return text;
    text.resize(line_start);
    return text;
  }

  absl::Status LexNext() {
    const size_t tag = FindTagStart(pos_);
    if (tag == std::string::npos) {
      EmitText(source_.substr(pos_), pos_);
      pos_ = source_.size();
      return absl::OkStatus();
    }
    const char kind = source_[tag + 1];
    size_t body = tag + 2;
    char sign = 0;
    if (body < source_.size() && (source_[body] == '-' || source_[body] == '+')) sign = source_[body++];
    EmitText(StripBeforeTag(source_.substr(pos_, tag - pos_), sign, kind != '{'), pos_);
    if (kind == '#') return LexComment(tag, body);
    size_t raw_body = 0;
    if (kind == '%' && MatchRawBegin(body, raw_body)) return LexRaw(tag, raw_body);
    return LexTag(tag, body, kind == '{');
  }

  absl::Status LexComment(size_t tag, size_t body) {
    for (size_t i = body; i < source_.size(); ++i) {
      if (StartsWith(i, "+#}")) {
        FinishTagAt(i + 3);
        return absl::OkStatus();
      }
      if (StartsWith(i, "-#}")) {
        FinishTagAt(SkipWhitespace(i + 3));
        return absl::OkStatus();
      }
      if (StartsWith(i, "#}")) {
        FinishTagAt(StartsWith(i + 2, "\n") ? i + 3 : i + 2);
        return absl::OkStatus();
      }
    }
    return SyntaxErrorAt(PosAt(tag), "unclosed comment: missing '#}'");
  }

  // `{% raw %}` (its end gets no trim_blocks, as in Jinja).
  bool MatchRawBegin(size_t body, size_t& raw_body) const {
    size_t p = SkipWhitespace(body);
    if (!StartsWith(p, "raw")) return false;
    p = SkipWhitespace(p + 3);
    if (StartsWith(p, "-%}")) {
      raw_body = SkipWhitespace(p + 3);
      return true;
    }
    if (!StartsWith(p, "%}")) return false;
    raw_body = p + 2;
    return true;
  }

  absl::Status LexRaw(size_t tag, size_t raw_body) {
    FinishTagAt(raw_body);
    for (size_t i = source_.find("{%", raw_body); i != std::string::npos; i = source_.find("{%", i + 1)) {
      size_t p = i + 2;
      char sign = 0;
      if (p < source_.size() && (source_[p] == '-' || source_[p] == '+')) sign = source_[p++];
      p = SkipWhitespace(p);
      if (!StartsWith(p, "endraw")) continue;
      p = SkipWhitespace(p + 6);
      size_t end = 0;
      if (StartsWith(p, "+%}")) {
        end = p + 3;
      } else if (StartsWith(p, "-%}")) {
        end = SkipWhitespace(p + 3);
      } else if (StartsWith(p, "%}")) {
        end = StartsWith(p + 2, "\n") ? p + 3 : p + 2;
      } else {
        continue;
      }
      EmitText(StripBeforeTag(source_.substr(raw_body, i - raw_body), sign, true), raw_body);
      FinishTagAt(end);
      return absl::OkStatus();
    }
    return SyntaxErrorAt(PosAt(tag), "unclosed raw block: missing '{% endraw %}'");
  }

  absl::Status LexTag(size_t tag, size_t body, bool is_variable) {
    Emit(is_variable ? TokenKind::kVariableBegin : TokenKind::kBlockBegin, is_variable ? "{{" : "{%", tag);
    std::vector<std::pair<char, size_t>> brackets;  // open bracket and its offset
    size_t p = body;
    while (true) {
      p = SkipWhitespace(p);
      if (p >= source_.size()) {
        if (!brackets.empty()) {
          return SyntaxErrorAt(PosAt(brackets.back().second),
                               absl::StrCat("'", std::string(1, brackets.back().first), "' is never closed"));
        }
        return SyntaxErrorAt(PosAt(tag), is_variable ? "unclosed '{{': missing '}}'" : "unclosed '{%': missing '%}'");
      }
      if (brackets.empty() && LexTagEnd(p, is_variable)) return absl::OkStatus();
      absl::Status status = LexExpressionToken(p, brackets);
      if (!status.ok()) return status;
    }
  }

  bool LexTagEnd(size_t p, bool is_variable) {
    size_t end = 0;
    if (is_variable) {
      if (StartsWith(p, "-}}")) {
        end = SkipWhitespace(p + 3);
      } else if (StartsWith(p, "}}")) {
        end = p + 2;
      } else {
        return false;
      }
      Emit(TokenKind::kVariableEnd, "}}", p);
    } else {
      if (StartsWith(p, "+%}")) {
        end = p + 3;
      } else if (StartsWith(p, "-%}")) {
        end = SkipWhitespace(p + 3);
      } else if (StartsWith(p, "%}")) {
        end = StartsWith(p + 2, "\n") ? p + 3 : p + 2;  // trim_blocks
      } else {
        return false;
      }
      Emit(TokenKind::kBlockEnd, "%}", p);
    }
    FinishTagAt(end);
    return true;
  }

  absl::Status LexExpressionToken(size_t& p, std::vector<std::pair<char, size_t>>& brackets) {
    const char c = source_[p];
    if (IsDigit(c)) return LexNumber(p);
    if (IsNameStart(c)) {
      const size_t start = p;
      while (p < source_.size() && IsNameChar(source_[p])) ++p;
      Emit(TokenKind::kName, source_.substr(start, p - start), start);
      return absl::OkStatus();
    }
    if (c == '\'' || c == '"') return LexString(p);
    return LexOperator(p, brackets);
  }

  absl::Status LexOperator(size_t& p, std::vector<std::pair<char, size_t>>& brackets) {
    static constexpr std::string_view kTwoCharOperators[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwoCharOperators) {
      if (!StartsWith(p, op)) continue;
      Emit(TokenKind::kOperator, std::string(op), p);
      p += 2;
      return absl::OkStatus();
    }
    const char c = source_[p];
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos) {
      char32_t code_point = 0;
      DecodeCodePoint(source_, p, code_point);
      std::string shown;
      AppendUtf8(code_point, shown);
      return SyntaxErrorAt(PosAt(p), absl::StrCat("unexpected character '", shown, "'"));
    }
    if (c == '(' || c == '[' || c == '{') brackets.emplace_back(c, p);
    if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) return SyntaxErrorAt(PosAt(p), absl::StrCat("unexpected '", std::string(1, c), "'"));
      const char open = brackets.back().first;
      const char expected = open == '(' ? ')' : (open == '[' ? ']' : '}');
      if (c != expected) {
        return SyntaxErrorAt(PosAt(p), absl::StrCat("unexpected '", std::string(1, c), "', expected '",
                                                     std::string(1, expected), "'"));
      }
      brackets.pop_back();
    }
    Emit(TokenKind::kOperator, std::string(1, c), p);
    ++p;
    return absl::OkStatus();
  }

  // (\d+_)*\d+ at `p`; npos when there is no digit there.
  size_t MatchDigits(size_t p) const {
    if (p >= source_.size() || !IsDigit(source_[p])) return std::string::npos;
    while (p < source_.size()) {
      if (IsDigit(source_[p])) {
        ++p;
      } else if (source_[p] == '_' && p + 1 < source_.size() && IsDigit(source_[p + 1])) {
        p += 2;
      } else {
        break;
      }
    }
    return p;
  }

  size_t MatchFraction(size_t p) const {
    if (!StartsWith(p, ".")) return std::string::npos;
    return MatchDigits(p + 1);
  }

  size_t MatchExponent(size_t p) const {
    if (p >= source_.size() || (source_[p] != 'e' && source_[p] != 'E')) return std::string::npos;
    ++p;
    if (p < source_.size() && (source_[p] == '+' || source_[p] == '-')) ++p;
    return MatchDigits(p);
  }

  // Jinja's float rule, which never starts right after a '.' (so `x.0.1`
  // stays two subscripts): digits, then fraction and exponent, or exponent,
  // or fraction.
  size_t MatchFloat(size_t p) const {
    if (p > 0 && source_[p - 1] == '.') return std::string::npos;
    const size_t integer_end = MatchDigits(p);
    const size_t fraction_end = MatchFraction(integer_end);
    if (fraction_end != std::string::npos) {
      const size_t exponent_end = MatchExponent(fraction_end);
      if (exponent_end != std::string::npos) return exponent_end;
    }
    const size_t exponent_end = MatchExponent(integer_end);
    if (exponent_end != std::string::npos) return exponent_end;
    return fraction_end;
  }

  // Jinja's integer rule: 0b/0o/0x prefixes, a decimal without leading
  // zeros, or zeros.
  size_t MatchInteger(size_t p, int& base) const {
    base = 10;
    if (source_[p] == '0' && p + 1 < source_.size()) {
      const char prefix = source_[p + 1] | 0x20;
      base = prefix == 'b' ? 2 : (prefix == 'o' ? 8 : (prefix == 'x' ? 16 : 10));
      if (base != 10) {
        size_t q = p + 2;
        const auto is_base_digit = [&](char d) { return HexValue(d) >= 0 && HexValue(d) < base; };
        while (q < source_.size()) {
          if (is_base_digit(source_[q])) {
            ++q;
          } else if (source_[q] == '_' && q + 1 < source_.size() && is_base_digit(source_[q + 1])) {
            q += 2;
          } else {
            break;
          }
        }
        if (q > p + 2) return q;
        base = 10;
      }
    }
    if (source_[p] != '0') return MatchDigits(p);
    size_t q = p + 1;
    while (q < source_.size() && (source_[q] == '0' || (source_[q] == '_' && StartsWith(q + 1, "0")))) ++q;
    return q;
  }

  absl::Status LexNumber(size_t& p) {
    const size_t start = p;
    const size_t float_end = MatchFloat(p);
    if (float_end != std::string::npos) {
      std::string digits;
      for (size_t i = start; i < float_end; ++i) {
        if (source_[i] != '_') digits += source_[i];
      }
      Token token;
      token.kind = TokenKind::kFloat;
      token.text = source_.substr(start, float_end - start);
      token.pos = PosAt(start);
      const auto result = std::from_chars(digits.data(), digits.data() + digits.size(), token.float_value);
      if (result.ec != std::errc()) token.float_value = digits.find('-') != std::string::npos ? 0.0 : HUGE_VAL;
      tokens_.push_back(std::move(token));
      p = float_end;
      return absl::OkStatus();
    }
    int base = 10;
    const size_t end = MatchInteger(p, base);
    std::string digits;
    for (size_t i = start + (base == 10 ? 0 : 2); i < end; ++i) {
      if (source_[i] != '_') digits += source_[i];
    }
    Token token;
    token.kind = TokenKind::kInteger;
    token.text = source_.substr(start, end - start);
    token.pos = PosAt(start);
    const auto result = std::from_chars(digits.data(), digits.data() + digits.size(), token.int_value, base);
    if (result.ec != std::errc()) return SyntaxErrorAt(token.pos, "integer literal is too large");
    tokens_.push_back(std::move(token));
    p = end;
    return absl::OkStatus();
  }

  absl::Status LexString(size_t& p) {
    const char quote = source_[p];
    size_t q = p + 1;
    while (q < source_.size() && source_[q] != quote) q += source_[q] == '\\' ? 2 : 1;
    if (q >= source_.size()) return SyntaxErrorAt(PosAt(p), "unclosed string literal");
    absl::StatusOr<std::string> value = DecodeStringLiteral(std::string_view(source_).substr(p + 1, q - p - 1));
    if (!value.ok()) return ErrorAt(PosAt(p), value.status().code(), std::string(value.status().message()));
    Emit(TokenKind::kString, *std::move(value), p);
    p = q + 1;
    return absl::OkStatus();
  }

  const std::string source_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  size_t cached_offset_ = 0;
  SourcePos cached_pos_{1, 1};
};

}  // namespace

absl::Status ErrorAt(SourcePos pos, absl::StatusCode code, const std::string& message) {
  return absl::Status(code, absl::StrCat("chat template ", pos.line, ":", pos.column, ": ", message));
}

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source) { return Lexer(source).Run(); }

std::string DescribeToken(const Token& token) {
  switch (token.kind) {
    case TokenKind::kText: return "template text";
    case TokenKind::kVariableBegin: return "'{{'";
    case TokenKind::kVariableEnd: return "'}}'";
    case TokenKind::kBlockBegin: return "'{%'";
    case TokenKind::kBlockEnd: return "'%}'";
    case TokenKind::kString: return "string literal";
    case TokenKind::kInteger: return "integer";
    case TokenKind::kFloat: return "float";
    case TokenKind::kEnd: return "end of template";
    default: return absl::StrCat("'", token.text, "'");
  }
}

}  // namespace dsrt::chat
