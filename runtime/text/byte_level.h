// The GPT-2 byte-level alphabet used by Hugging Face's ByteLevel
// pre-tokenizer and decoder: every byte is shown as one printable code point
// (printable Latin-1 bytes as themselves, the rest as U+0100 onwards).
#ifndef DSRT_RUNTIME_TEXT_BYTE_LEVEL_H_
#define DSRT_RUNTIME_TEXT_BYTE_LEVEL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dsrt::text {

class ByteLevelAlphabet {
 public:
  static constexpr char32_t kMaxCodePoint = 0x143;  // 256 + 67 remapped bytes

  constexpr ByteLevelAlphabet() {
    for (auto& b : char_to_byte_) b = -1;
    int next_remapped = 256;
    for (int byte = 0; byte < 256; ++byte) {
      const bool printable = (byte >= '!' && byte <= '~') ||
                             (byte >= 0xA1 && byte <= 0xAC) ||
                             (byte >= 0xAE && byte <= 0xFF);
      const char32_t cp = printable ? char32_t(byte) : char32_t(next_remapped++);
      byte_to_char_[byte] = cp;
      char_to_byte_[cp] = static_cast<int16_t>(byte);
    }
  }

  constexpr char32_t CharForByte(uint8_t byte) const { return byte_to_char_[byte]; }

  // The byte a code point stands for, or -1 if it is not in the alphabet.
  constexpr int ByteForChar(char32_t cp) const {
    return cp <= kMaxCodePoint ? char_to_byte_[cp] : -1;
  }

  // Maps a token written in the alphabet back to raw bytes; nullopt if the
  // token has a character outside the alphabet (or is not valid UTF-8).
  std::optional<std::string> ToBytes(std::string_view token) const;

  // Writes raw bytes in the alphabet (what tokenizer.json's vocab uses).
  std::string FromBytes(std::string_view bytes) const;

 private:
  std::array<char32_t, 256> byte_to_char_{};
  std::array<int16_t, kMaxCodePoint + 1> char_to_byte_{};
};

inline constexpr ByteLevelAlphabet kByteLevelAlphabet{};

}  // namespace dsrt::text

#endif  // DSRT_RUNTIME_TEXT_BYTE_LEVEL_H_
