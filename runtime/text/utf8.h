// UTF-8 helpers shared by the tokenizer: strict validation, lossy conversion
// with the same replacement rule as Rust's String::from_utf8_lossy (which is
// what Hugging Face's ByteLevel decoder uses), and an incremental assembler
// for streaming decode.
#ifndef DSRT_RUNTIME_TEXT_UTF8_H_
#define DSRT_RUNTIME_TEXT_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dsrt::text {

// What starts at some position of a byte string.
struct Utf8Sequence {
  enum class Kind {
    kValid,      // a well-formed character of `length` bytes
    kInvalid,    // an ill-formed maximal subpart of `length` bytes
    kTruncated,  // the input ends inside an otherwise well-formed character
  };
  Kind kind;
  size_t length;
};

// Classifies the bytes at `p` (with `available` > 0 bytes left). Well-formed
// means Unicode Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF.
Utf8Sequence ScanUtf8Sequence(const unsigned char* p, size_t available);

// Offset of the first byte that does not begin a complete well-formed
// character, or nullopt when the whole string is valid UTF-8.
std::optional<size_t> FindInvalidUtf8(std::string_view bytes);

// Appends `bytes` to `out`, replacing each ill-formed maximal subpart (and a
// truncated character at the end) by one U+FFFD.
void AppendUtf8Lossy(std::string_view bytes, std::string& out);

// Turns a stream of byte chunks into complete UTF-8 text: Append emits every
// character that is complete, keeps an unfinished trailing character (at most
// 3 bytes) for the next chunk, and replaces ill-formed bytes by U+FFFD exactly
// like AppendUtf8Lossy would on the concatenation of all chunks.
class Utf8StreamAssembler {
 public:
  void Append(std::string_view bytes, std::string& out);
  // Emits a U+FFFD for a character left unfinished, then resets.
  void Finish(std::string& out);
  bool has_pending() const { return pending_size_ > 0; }

 private:
  unsigned char pending_[4] = {0, 0, 0, 0};
  size_t pending_size_ = 0;
};

// Encodes one code point (must be <= U+10FFFF) as UTF-8.
void AppendCodePoint(char32_t code_point, std::string& out);

// Decodes the well-formed character at `p` (known to be valid) and returns it;
// `*length` receives its byte length.
char32_t DecodeValidCodePoint(const unsigned char* p, size_t* length);

}  // namespace dsrt::text

#endif  // DSRT_RUNTIME_TEXT_UTF8_H_
