// Fuzzing the tokenizer.
//
// Built two ways:
//  - with DSRT_LIBFUZZER (clang -fsanitize=fuzzer, target tokenizer_fuzzer):
//    a libFuzzer target, LLVMFuzzerTestOneInput only;
//  - inside tokenizer_test: the same check driven by a seeded random
//    generator for a bounded time (random bytes, then random Unicode text
//    biased towards the tricky parts: whitespace kinds, marks, digits, CJK,
//    emoji, special-token strings).
// Properties: no crash; valid UTF-8 encodes and decodes back exactly (also
// through the streaming decoder, which never emits invalid UTF-8); invalid
// UTF-8 is rejected with InvalidArgument; decoding arbitrary ids never fails
// for ids in range and always gives valid UTF-8.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "runtime/text/test_data.h"
#include "runtime/text/tokenizer.h"
#include "runtime/text/utf8.h"

namespace dsrt::text::fuzz {

const Tokenizer& FuzzTokenizer() {
  static const Tokenizer* tokenizer = [] {
    absl::StatusOr<std::unique_ptr<Tokenizer>> loaded = testing::LoadDeepSeekTokenizer();
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str());
      std::abort();
    }
    return loaded->release();
  }();
  return *tokenizer;
}

// Returns a description of the first violated property, or nullopt.
std::optional<std::string> CheckInput(const Tokenizer& tokenizer, std::string_view input) {
  const bool valid = !FindInvalidUtf8(input).has_value();
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(input, false);
  if (!valid) {
    if (ids.ok()) return "invalid UTF-8 was encoded";
    if (ids.status().code() != absl::StatusCode::kInvalidArgument) {
      return absl::StrCat("invalid UTF-8 gave the wrong error: ", ids.status().ToString());
    }
    return std::nullopt;
  }
  if (!ids.ok()) return absl::StrCat("Encode failed: ", ids.status().ToString());
  absl::StatusOr<std::string> decoded = tokenizer.Decode(*ids);
  if (!decoded.ok()) return absl::StrCat("Decode failed: ", decoded.status().ToString());
  if (*decoded != input) return "decode(encode(x)) != x";

  absl::StatusOr<std::vector<int32_t>> with_special = tokenizer.Encode(input, true);
  if (!with_special.ok() || with_special->size() != ids->size() + tokenizer.prefix_ids().size() +
                                                        tokenizer.suffix_ids().size()) {
    return "Encode with special tokens disagrees";
  }

  StreamDecoder stream(tokenizer);
  std::string streamed;
  for (const int32_t id : *ids) {
    absl::StatusOr<std::string> chunk = stream.Push(id);
    if (!chunk.ok()) return absl::StrCat("stream Push failed: ", chunk.status().ToString());
    if (FindInvalidUtf8(*chunk).has_value()) return "stream emitted invalid UTF-8";
    streamed += *chunk;
  }
  streamed += stream.Finish();
  if (streamed != input) return "streaming decode != x";

  // The raw bytes read as ids: decoding must work and stay valid UTF-8.
  std::vector<int32_t> arbitrary;
  for (size_t i = 0; i + 1 < input.size() && arbitrary.size() < 64; i += 2) {
    const int32_t id = (static_cast<unsigned char>(input[i]) << 8 | static_cast<unsigned char>(input[i + 1]));
    arbitrary.push_back(id % 128000);
  }
  absl::StatusOr<std::string> arbitrary_text = tokenizer.Decode(arbitrary);
  if (!arbitrary_text.ok()) return "Decode of in-range ids failed";
  if (FindInvalidUtf8(*arbitrary_text).has_value()) return "Decode produced invalid UTF-8";
  return std::nullopt;
}

}  // namespace dsrt::text::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsrt::text;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::optional<std::string> failure = fuzz::CheckInput(fuzz::FuzzTokenizer(), input);
  if (failure.has_value()) {
    std::fprintf(stderr, "tokenizer fuzz failure: %s\n", failure->c_str());
    std::abort();
  }
  return 0;
}

#ifndef DSRT_LIBFUZZER

#include <gtest/gtest.h>

namespace dsrt::text::fuzz {
namespace {

using Clock = std::chrono::steady_clock;

// Seconds per fuzz test; DSRT_TOKENIZER_FUZZ_SECONDS overrides (e.g. for a
// long run), DSRT_TOKENIZER_FUZZ_SEED picks another seed.
double FuzzSeconds() {
  const char* value = std::getenv("DSRT_TOKENIZER_FUZZ_SECONDS");
  return value != nullptr ? std::atof(value) : 2.5;
}

uint64_t FuzzSeed() {
  const char* value = std::getenv("DSRT_TOKENIZER_FUZZ_SEED");
  return value != nullptr ? std::strtoull(value, nullptr, 10) : 20240601;
}

std::string RandomBytes(std::mt19937_64& rng) {
  std::string bytes(rng() % 64, '\0');
  for (char& c : bytes) {
    // Mostly ASCII so that some inputs are valid, some high bytes.
    c = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 0x20 + rng() % 0x60);
  }
  return bytes;
}

// One randomly chosen "interesting" piece of text.
std::string RandomUnicodePiece(std::mt19937_64& rng) {
  static constexpr char32_t kSpaces[] = {0x20,   0x09,   0x0A,   0x0D,   0x0B,   0x0C,
                                         0x85,   0xA0,   0x1680, 0x2000, 0x2009, 0x200B,
                                         0x2028, 0x2029, 0x202F, 0x3000, 0xFEFF};
  static constexpr std::string_view kSnippets[] = {
      "<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<|EOT|>", "<｜tool▁call▁begin｜>",
      "<｜place▁holder▁no▁799｜>", "<｜fim▁hole｜>", "<｜User|>", "<think>", "'s", "'ll",
      "\r\n", "...", "}}", "::", "👩‍👩‍👧", "🇩🇪", "1️⃣", "❤️", "e\u0301", "\u0301",
      "½", "²", "Ⅻ", "①", "١٢٣", "１２３", "龥龦", "々", "ｶﾞ", "한국어", "가",
      "你好世界", "こんにちは", "カタカナ", "Привет", "مرحبا", "שלום", "नमस्ते", "ไทย",
      "\U00020000", "\U000F0000", "\uFFFD", "\U0001D7CE", "\U000E0041"};
  std::string piece;
  switch (rng() % 8) {
    case 0:  // ASCII text
      for (int i = rng() % 12; i > 0; --i) piece.push_back(static_cast<char>(0x20 + rng() % 0x5F));
      return piece;
    case 1:  // whitespace run
      for (int i = 1 + rng() % 5; i > 0; --i) {
        AppendCodePoint(kSpaces[rng() % std::size(kSpaces)], piece);
      }
      return piece;
    case 2:
    case 3:
      return std::string(kSnippets[rng() % std::size(kSnippets)]);
    case 4:  // digits
      for (int i = 1 + rng() % 8; i > 0; --i) piece.push_back(static_cast<char>('0' + rng() % 10));
      return piece;
    case 5: {  // any scalar value
      char32_t cp = rng() % 0x110000;
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
      AppendCodePoint(cp, piece);
      return piece;
    }
    case 6: {  // a BMP character (scripts, symbols, marks, CJK)
      char32_t cp = 0x80 + rng() % (0x10000 - 0x80);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x4E00 + cp % 0x5000;
      AppendCodePoint(cp, piece);
      return piece;
    }
    default:  // letters and a combining mark
      AppendCodePoint(U'a' + rng() % 26, piece);
      AppendCodePoint(0x300 + rng() % 0x70, piece);
      return piece;
  }
}

std::string RandomUnicodeText(std::mt19937_64& rng) {
  std::string text;
  for (int i = rng() % 24; i > 0; --i) text += RandomUnicodePiece(rng);
  return text;
}

template <typename Generator>
void FuzzFor(double seconds, uint64_t seed, Generator generate, const char* label) {
  const Tokenizer& tokenizer = FuzzTokenizer();
  std::mt19937_64 rng(seed);
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  long runs = 0, valid = 0;
  while (Clock::now() < deadline) {
    for (int batch = 0; batch < 64; ++batch, ++runs) {
      const std::string input = generate(rng);
      valid += !FindInvalidUtf8(input).has_value();
      const std::optional<std::string> failure = CheckInput(tokenizer, input);
      ASSERT_FALSE(failure.has_value()) << *failure << " for input (hex) "
                                        << absl::BytesToHexString(input) << ", seed " << seed;
    }
  }
  std::printf("[ fuzz   ] %s: %ld inputs (%ld valid UTF-8) in %.1f s, seed %llu, no failures\n",
              label, runs, valid, seconds, static_cast<unsigned long long>(seed));
}

TEST(TokenizerFuzz, RandomBytes) {
  FuzzFor(FuzzSeconds(), FuzzSeed(), RandomBytes, "random bytes");
}

TEST(TokenizerFuzz, RandomUnicodeText) {
  FuzzFor(FuzzSeconds(), FuzzSeed() + 1, RandomUnicodeText, "random Unicode text");
}

}  // namespace
}  // namespace dsrt::text::fuzz

#endif  // DSRT_LIBFUZZER
