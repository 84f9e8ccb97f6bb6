// Python `str` semantics over UTF-8 std::string, as far as chat templates
// need them: Jinja runs on Python, so `len`, slicing, `strip`, `split`,
// `lower`, `repr` and `json.dumps` all count and classify code points.
//
// Ill-formed UTF-8 never fails: each bad byte decodes to U+DC80+byte (Python's
// "surrogateescape") and encodes back to the same byte, so text round-trips.
#ifndef DSRT_RUNTIME_CHAT_PY_STRING_H_
#define DSRT_RUNTIME_CHAT_PY_STRING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsrt::chat {

std::u32string DecodeUtf8(std::string_view text);
// Decodes the code point at text[offset] (offset < size); returns its length
// in bytes (1 for an ill-formed byte, which decodes to U+DC80+byte).
size_t DecodeCodePoint(std::string_view text, size_t offset, char32_t& out);
std::string EncodeUtf8(std::u32string_view code_points);
void AppendUtf8(char32_t code_point, std::string& out);
int64_t CodePointCount(std::string_view text);

// str.isspace() for one code point (what Python's `\s` and strip() use).
bool IsPyWhitespace(char32_t c);

// str.lower() / str.upper(). Case mapping covers ASCII, Latin-1, Latin
// Extended-A, Greek and Cyrillic; other letters are left unchanged.
std::string PyLower(std::string_view text);
std::string PyUpper(std::string_view text);
char32_t LowerCodePoint(char32_t c);
char32_t UpperCodePoint(char32_t c);

// str.strip(chars) / lstrip / rstrip; `chars` null means whitespace.
std::string PyStrip(std::string_view text, const std::string* chars, bool left, bool right);

// str.split(sep, maxsplit) and str.rsplit; `sep` null means runs of
// whitespace. `sep` must not be empty (the caller reports that error).
std::vector<std::string> PySplit(std::string_view text, const std::string* sep, int64_t maxsplit);
std::vector<std::string> PyRSplit(std::string_view text, const std::string* sep, int64_t maxsplit);

// str.splitlines(keepends).
std::vector<std::string> PySplitLines(std::string_view text, bool keepends);

// str.replace(old, new, count); count < 0 replaces all.
std::string PyReplace(std::string_view text, std::string_view old, std::string_view replacement,
                      int64_t count);

// repr(str): quotes chosen as Python does, non-printable characters escaped.
std::string PyStrRepr(std::string_view text);

// A JSON string literal as Python's json.dumps writes it.
std::string PyJsonString(std::string_view text, bool ensure_ascii);

// repr(float) (shortest round-trip digits, Python's choice of notation).
std::string PyFloatRepr(double value);

}  // namespace dsrt::chat

#endif  // DSRT_RUNTIME_CHAT_PY_STRING_H_
