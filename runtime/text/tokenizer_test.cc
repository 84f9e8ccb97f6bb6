#include "runtime/text/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "runtime/text/bpe.h"
#include "runtime/text/byte_level.h"
#include "runtime/text/pre_tokenizer.h"
#include "runtime/text/string_view_compat.h"
#include "runtime/text/test_data.h"
#include "runtime/text/utf8.h"

namespace dsrt::text {
namespace {

using ::dsrt::text::testing::GoldenCase;
using ::testing::HasSubstr;
using nlohmann::json;

constexpr std::string_view kBos = "<｜begin▁of▁sentence｜>";

// The real tokenizer, loaded once for the whole binary (7.8 MB of JSON).
const Tokenizer& DeepSeek() {
  static const Tokenizer* tokenizer = [] {
    absl::StatusOr<std::unique_ptr<Tokenizer>> loaded = testing::LoadDeepSeekTokenizer();
    if (!loaded.ok()) {
      // Nothing here can run without the tokenizer; say why and stop.
      std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
      std::abort();
    }
    return loaded->release();
  }();
  return *tokenizer;
}

// A single byte written in the GPT-2 alphabet, as vocab keys are.
std::string ByteLevelToken(unsigned char byte) {
  std::string token;
  AppendCodePoint(kByteLevelAlphabet.CharForByte(byte), token);
  return token;
}

std::string Join(absl::Span<const int32_t> ids) { return absl::StrJoin(ids, ","); }

std::string StreamDecode(const Tokenizer& tokenizer, absl::Span<const int32_t> ids,
                         bool* all_chunks_valid) {
  StreamDecoder decoder(tokenizer);
  std::string text;
  *all_chunks_valid = true;
  for (const int32_t id : ids) {
    absl::StatusOr<std::string> chunk = decoder.Push(id);
    if (!chunk.ok()) {
      *all_chunks_valid = false;
      return text;
    }
    if (FindInvalidUtf8(*chunk).has_value()) *all_chunks_valid = false;
    text += *chunk;
  }
  text += decoder.Finish();
  return text;
}

TEST(TokenizerGolden, AllCasesMatchHuggingFace) {
  absl::StatusOr<std::vector<GoldenCase>> cases = testing::LoadGoldenCases();
  ASSERT_TRUE(cases.ok()) << cases.status();
  ASSERT_EQ(cases->size(), 205u);
  const Tokenizer& tokenizer = DeepSeek();
  int passed = 0;
  for (const GoldenCase& c : *cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<std::vector<int32_t>> plain = tokenizer.Encode(c.text, false);
    absl::StatusOr<std::vector<int32_t>> with_special = tokenizer.Encode(c.text, true);
    absl::StatusOr<std::string> decoded = tokenizer.Decode(c.ids_no_special);
    absl::StatusOr<std::string> decoded_special = tokenizer.Decode(c.ids_with_special);
    bool stream_valid = false;
    const std::string streamed = StreamDecode(tokenizer, c.ids_with_special, &stream_valid);
    ASSERT_TRUE(plain.ok() && with_special.ok() && decoded.ok() && decoded_special.ok());
    bool ok = true;
    const auto check = [&](bool condition, const std::string& what) {
      EXPECT_TRUE(condition) << what;
      ok = ok && condition;
    };
    check(*plain == c.ids_no_special,
          absl::StrCat("ids_no_special: got ", Join(*plain), " want ", Join(c.ids_no_special)));
    check(*with_special == c.ids_with_special,
          absl::StrCat("ids_with_special: got ", Join(*with_special), " want ",
                       Join(c.ids_with_special)));
    check(*decoded == c.decoded, "decode(ids_no_special) != decoded");
    check(*decoded_special == absl::StrCat(AsAbsl(kBos), c.text), "decode(ids_with_special) != BOS+text");
    check(stream_valid, "streaming decode emitted invalid UTF-8");
    check(streamed == absl::StrCat(AsAbsl(kBos), c.decoded), "streaming decode differs");
    passed += ok;
  }
  std::printf("[ golden ] %d/%zu cases pass\n", passed, cases->size());
  EXPECT_EQ(passed, static_cast<int>(cases->size()));
}

// Differential cases from elsewhere, e.g. random texts encoded by the JS port
// (`node runtime/text/bench_js.js --encode in.jsonl out.jsonl`): set
// DSRT_TOKENIZER_EXTRA_CASES to a JSONL file of {"text", "ids"} records.
TEST(TokenizerGolden, ExtraCasesFromEnvironment) {
  const char* path = std::getenv("DSRT_TOKENIZER_EXTRA_CASES");
  if (path == nullptr) GTEST_SKIP() << "DSRT_TOKENIZER_EXTRA_CASES not set";
  absl::StatusOr<std::string> content = testing::ReadTextFile(path);
  ASSERT_TRUE(content.ok()) << content.status();
  const Tokenizer& tokenizer = DeepSeek();
  std::istringstream lines(*content);
  std::string line;
  int total = 0, mismatches = 0;
  while (std::getline(lines, line)) {
    const json record = json::parse(line, nullptr, false);
    if (!record.is_object() || !record.contains("text") || !record.contains("ids")) continue;
    const std::string text = record["text"].get<std::string>();
    const std::vector<int32_t> want = record["ids"].get<std::vector<int32_t>>();
    absl::StatusOr<std::vector<int32_t>> got = tokenizer.Encode(text, false);
    ++total;
    if (got.ok() && *got == want) continue;
    if (++mismatches <= 5) {
      ADD_FAILURE() << "text (hex) " << absl::BytesToHexString(AsAbsl(text)) << "\n got  "
                    << (got.ok() ? Join(*got) : got.status().ToString()) << "\n want "
                    << Join(want);
    }
  }
  std::printf("[ extra  ] %d/%d cases match\n", total - mismatches, total);
  EXPECT_EQ(mismatches, 0);
}

TEST(TokenizerGolden, AccessorsMatchConfig) {
  const Tokenizer& tokenizer = DeepSeek();
  EXPECT_EQ(tokenizer.vocab_size(), 128815);
  EXPECT_EQ(tokenizer.bos_id(), 0);
  EXPECT_EQ(tokenizer.eos_id(), 1);
  EXPECT_EQ(tokenizer.TokenToId(kBos), 0);
  EXPECT_EQ(tokenizer.TokenToId("<｜User｜>"), 128803);
  EXPECT_EQ(tokenizer.TokenToId("<|EOT|>"), 128805);
  EXPECT_EQ(tokenizer.TokenToId("Ġthe"), 270);
  EXPECT_EQ(tokenizer.TokenToId("<｜place▁holder▁no▁800｜>"), std::nullopt);
  EXPECT_EQ(tokenizer.IdToToken(128803), "<｜User｜>");
  EXPECT_EQ(tokenizer.IdToToken(270), "Ġthe");
  EXPECT_EQ(tokenizer.IdToToken(128815), std::nullopt);
  EXPECT_EQ(tokenizer.IdToToken(-1), std::nullopt);
  EXPECT_TRUE(tokenizer.IsSpecialToken(0));
  EXPECT_FALSE(tokenizer.IsSpecialToken(270));
  EXPECT_EQ(tokenizer.chat_template().rfind("{% if not add_generation_prompt", 0), 0u);
  EXPECT_EQ(Join(tokenizer.prefix_ids()), "0");
  EXPECT_TRUE(tokenizer.suffix_ids().empty());
}

TEST(TokenizerGolden, EmptyTextAndEmptyIds) {
  const Tokenizer& tokenizer = DeepSeek();
  EXPECT_EQ(Join(*tokenizer.Encode("", false)), "");
  EXPECT_EQ(Join(*tokenizer.Encode("", true)), "0");
  EXPECT_EQ(*tokenizer.Decode({}), "");
}

TEST(TokenizerGolden, SkipSpecialTokens) {
  const Tokenizer& tokenizer = DeepSeek();
  const std::string text = "<｜User｜>hi<｜Assistant｜>yo<｜end▁of▁sentence｜>";
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(text, true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*tokenizer.Decode(*ids, false), absl::StrCat(AsAbsl(kBos), text));
  // Only added tokens marked "special" are skipped: in DeepSeek-V3 the role
  // markers (128800-128814) are added tokens with special=false.
  EXPECT_EQ(*tokenizer.Decode(*ids, true), "<｜User｜>hi<｜Assistant｜>yo");
}

TEST(TokenizerErrors, InvalidUtf8NamesTheOffset) {
  const Tokenizer& tokenizer = DeepSeek();
  const struct {
    std::string text;
    size_t offset;
  } cases[] = {
      {std::string("abc\xFF" "def"), 3},      // never valid
      {std::string("ab\xE4\xB8"), 2},         // truncated at the end
      {std::string("\xC0\xAF"), 0},           // overlong
      {std::string("x\xED\xA0\x80y"), 1},     // surrogate
      {std::string("ok \xF4\x90\x80\x80"), 3},  // above U+10FFFF
      {std::string("\x80"), 0},               // lone continuation
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(c.text, false);
    ASSERT_FALSE(ids.ok());
    EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(ids.status().message()),
                HasSubstr(absl::StrCat("byte offset ", c.offset)));
  }
  std::vector<int32_t> out = {7};
  EXPECT_FALSE(tokenizer.EncodeAppend("\xFF", true, &out).ok());
  EXPECT_EQ(Join(out), "7");  // untouched on error
}

TEST(TokenizerErrors, DecodeRejectsUnknownIds) {
  const Tokenizer& tokenizer = DeepSeek();
  for (const int32_t id : {-1, 128815, 1 << 30}) {
    const std::vector<int32_t> ids = {100, id};
    absl::StatusOr<std::string> text = tokenizer.Decode(ids);
    ASSERT_FALSE(text.ok());
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(text.status().message()), HasSubstr(absl::StrCat("id ", id)));
  }
  StreamDecoder decoder(tokenizer);
  EXPECT_FALSE(decoder.Push(-5).ok());
}

TEST(TokenizerDecode, IllFormedBytesBecomeReplacementCharacters) {
  const Tokenizer& tokenizer = DeepSeek();
  // 1203 is "ĠÂ": a space and a lone 0xC2 lead byte.
  EXPECT_EQ(*tokenizer.Decode(std::vector<int32_t>{1203}), " \xEF\xBF\xBD");
  EXPECT_EQ(*tokenizer.Decode(std::vector<int32_t>{1203, 230}), " \xC2\x85");  // 230 is 0x85
  bool valid = false;
  EXPECT_EQ(StreamDecode(tokenizer, std::vector<int32_t>{1203}, &valid), " \xEF\xBF\xBD");
  EXPECT_TRUE(valid);
}

TEST(TokenizerDecode, StreamingHoldsBackPartialCharacters) {
  const Tokenizer& tokenizer = DeepSeek();
  const std::string text = "héllo 你好 🌍👩‍👩‍👧 ｜x｜ \u0085 done";
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(text, false);
  ASSERT_TRUE(ids.ok());
  // Byte-by-byte tokens, so that most ids end inside a character.
  std::vector<int32_t> byte_ids;
  for (const char c : text) {
    const std::string token = ByteLevelToken(static_cast<unsigned char>(c));
    byte_ids.push_back(*tokenizer.TokenToId(token));
  }
  for (const auto* list : {&*ids, &byte_ids}) {
    StreamDecoder decoder(tokenizer);
    std::string assembled;
    for (const int32_t id : *list) {
      absl::StatusOr<std::string> chunk = decoder.Push(id);
      ASSERT_TRUE(chunk.ok());
      EXPECT_FALSE(FindInvalidUtf8(*chunk).has_value());
      assembled += *chunk;
    }
    EXPECT_EQ(decoder.Finish(), "");
    EXPECT_EQ(assembled, text);
  }
}

TEST(TokenizerDecode, StreamingEqualsDecodeOnRandomIds) {
  const Tokenizer& tokenizer = DeepSeek();
  std::mt19937 rng(7);
  // Mostly single-byte tokens (ids < 256 are byte-ish), some arbitrary ones.
  std::uniform_int_distribution<int32_t> small(0, 400);
  std::uniform_int_distribution<int32_t> any(0, 127999);
  for (int round = 0; round < 2000; ++round) {
    std::vector<int32_t> ids(1 + round % 12);
    for (int32_t& id : ids) id = rng() % 3 == 0 ? any(rng) : small(rng);
    bool valid = false;
    const std::string streamed = StreamDecode(tokenizer, ids, &valid);
    EXPECT_TRUE(valid);
    EXPECT_EQ(streamed, *tokenizer.Decode(ids)) << Join(ids);
  }
}

TEST(TokenizerEncode, PathologicalInputsStayFastAndRoundTrip) {
  const Tokenizer& tokenizer = DeepSeek();
  const std::vector<std::string> inputs = {
      std::string(1 << 20, 'a'),
      std::string(1 << 20, ' '),
      std::string(1 << 18, '\n') + "x",
      absl::StrCat(std::string(100000, ' '), "!"),
      [] {
        std::string s;
        for (int i = 0; i < 50000; ++i) s += "\r\n \t";
        return s;
      }(),
      [] {
        std::string s;
        for (int i = 0; i < 30000; ++i) s += "你好世界";  // one CJK piece of 360 KB
        return s;
      }(),
      std::string(300000, '9'),
      [] {
        std::string s;
        for (int i = 0; i < 100000; ++i) s += "e\xCC\x81";  // combining marks
        return s;
      }(),
  };
  for (const std::string& input : inputs) {
    absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(input, false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*tokenizer.Decode(*ids), input);
  }
}

TEST(TokenizerEncode, ConcurrentCallsAgree) {
  const Tokenizer& tokenizer = DeepSeek();
  absl::StatusOr<std::vector<GoldenCase>> cases = testing::LoadGoldenCases();
  ASSERT_TRUE(cases.ok());
  const std::string text = testing::BuildBenchmarkText(*cases, 200000);
  const std::vector<int32_t> expected = *tokenizer.Encode(text, false);
  std::vector<std::vector<int32_t>> results(4);
  std::vector<std::thread> threads;
  for (auto& result : results) {
    threads.emplace_back([&] { result = *tokenizer.Encode(text, false); });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) EXPECT_EQ(result, expected);
}

// ---------------------------------------------------------------------------
// Pieces of the pipeline.

TEST(Utf8, LossyMatchesRustFromUtf8Lossy) {
  const struct {
    std::string in, out;
  } cases[] = {
      {"plain", "plain"},
      {"\xE0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD"},  // E0 needs A0..BF next
      {"\xE4\xB8" "A", "\xEF\xBF\xBD" "A"},      // truncated, one U+FFFD
      {"\xF0\x9F\x98", "\xEF\xBF\xBD"},          // truncated at the end
      {"\xF5\x80", "\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
  };
  for (const auto& c : cases) {
    std::string out;
    AppendUtf8Lossy(c.in, out);
    EXPECT_EQ(out, c.out);
  }
}

TEST(Utf8, StreamAssemblerMatchesLossyOnEverySplit) {
  std::mt19937 rng(11);
  const std::string alphabet[] = {"a", "\xC3", "\xA9", "\xE4", "\xB8", "\xAD", "\xF0",
                                  "\x9F", "\x98", "\x80", "\xFF", "\xED", "\xA0", " "};
  for (int round = 0; round < 20000; ++round) {
    std::string bytes;
    const int length = 1 + rng() % 10;
    for (int i = 0; i < length; ++i) bytes += alphabet[rng() % std::size(alphabet)];
    std::string expected;
    AppendUtf8Lossy(bytes, expected);
    Utf8StreamAssembler assembler;
    std::string got;
    size_t pos = 0;
    while (pos < bytes.size()) {
      const size_t chunk = 1 + rng() % 3;
      std::string piece;
      assembler.Append(std::string_view(bytes).substr(pos, chunk), piece);
      EXPECT_FALSE(FindInvalidUtf8(piece).has_value());
      got += piece;
      pos += chunk;
    }
    assembler.Finish(got);
    ASSERT_EQ(got, expected) << round;
  }
}

std::vector<std::string> RegexPieces(std::string_view pattern, std::string_view subject) {
  absl::StatusOr<std::vector<PieceRange>> ranges = FindRegexRangesForTest(pattern, subject);
  EXPECT_TRUE(ranges.ok()) << ranges.status();
  std::vector<std::string> pieces;
  if (!ranges.ok()) return pieces;
  for (const PieceRange& r : *ranges) {
    pieces.push_back(std::string(subject.substr(r.begin, r.end - r.begin)));
  }
  return pieces;
}

constexpr std::string_view kDeepSeekWordPattern =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

TEST(PreTokenizerRegex, WhitespaceIsOnigurumaWhiteSpace) {
  using Pieces = std::vector<std::string>;
  EXPECT_EQ(RegexPieces(kDeepSeekWordPattern, "x  !"), (Pieces{"x", " ", " !"}));
  // U+0085 is whitespace: " \u0085" stays one piece before " y".
  EXPECT_EQ(RegexPieces(kDeepSeekWordPattern, "x \u0085 y"), (Pieces{"x", " \u0085", " y"}));
  // U+FEFF is not whitespace.
  EXPECT_EQ(RegexPieces(kDeepSeekWordPattern, "value  \uFEFF"),
            (Pieces{"value", " ", " ", "\uFEFF"}));
  EXPECT_EQ(RegexPieces("\\p{N}{1,3}", "1234567"), (Pieces{"123", "456", "7"}));
}

TEST(PreTokenizerRegex, Translation) {
  EXPECT_EQ(*TranslateOnigurumaPattern("a\\sb"),
            "a[\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
            "\\x{202f}\\x{205f}\\x{3000}]b");
  EXPECT_EQ(*TranslateOnigurumaPattern("[^\\s\\p{L}]"),
            "[^\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
            "\\x{202f}\\x{205f}\\x{3000}\\p{L}]");
  EXPECT_EQ(*TranslateOnigurumaPattern("[[:alpha:]\\]]x"), "[[:alpha:]\\]]x");
  EXPECT_FALSE(TranslateOnigurumaPattern("[a\\S]").ok());
  EXPECT_FALSE(TranslateOnigurumaPattern("[a[b]]").ok());
  EXPECT_FALSE(TranslateOnigurumaPattern("[a-z&&[^aeiou]]").ok());
  EXPECT_FALSE(TranslateOnigurumaPattern("[abc").ok());
  EXPECT_FALSE(TranslateOnigurumaPattern("abc\\").ok());
}

std::vector<std::string> PreTokenize(const json& config, std::string_view text) {
  absl::StatusOr<std::unique_ptr<PreTokenizer>> pre = PreTokenizer::FromJson(config);
  EXPECT_TRUE(pre.ok()) << pre.status();
  std::vector<std::string> pieces;
  if (!pre.ok()) return pieces;
  auto scratch = (*pre)->NewScratch();
  absl::Status status = (*pre)->Split(text, *scratch, [&](std::string_view piece) {
    pieces.emplace_back(piece);
  });
  EXPECT_TRUE(status.ok()) << status;
  return pieces;
}

json SplitThenByteLevel(const char* behavior, bool invert) {
  return json{{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Split"},
                 {"pattern", {{"Regex", "\\w+|[^\\w\\s]+"}}},
                 {"behavior", behavior},
                 {"invert", invert}},
                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
}

// Expected pieces from Hugging Face's own split.rs tests.
TEST(PreTokenizerSplit, BehaviorsMatchHuggingFace) {
  using Pieces = std::vector<std::string>;
  const std::string text = "How are you doing?";
  EXPECT_EQ(PreTokenize(SplitThenByteLevel("Removed", true), text),
            (Pieces{"How", "are", "you", "doing", "?"}));
  EXPECT_EQ(PreTokenize(SplitThenByteLevel("Isolated", true), text),
            (Pieces{"How", " ", "are", " ", "you", " ", "doing", "?"}));
  EXPECT_EQ(PreTokenize(SplitThenByteLevel("MergedWithPrevious", true), text),
            (Pieces{"How ", "are ", "you ", "doing", "?"}));
  EXPECT_EQ(PreTokenize(SplitThenByteLevel("MergedWithNext", true), text),
            (Pieces{"How", " are", " you", " doing", "?"}));
  EXPECT_EQ(PreTokenize(SplitThenByteLevel("Contiguous", true), text),
            (Pieces{"How", " ", "are", " ", "you", " ", "doing?"}));
  const json string_split = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"String", "."}}}, {"behavior", "Removed"}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  EXPECT_EQ(PreTokenize(string_split, "a.b..c"), (Pieces{"a", "b", "c"}));
}

TEST(PreTokenizerSplit, ByteLevelRegexAndPrefixSpace) {
  using Pieces = std::vector<std::string>;
  const std::string text = "Hello my friend, how is your day going?";
  EXPECT_EQ(PreTokenize(json{{"type", "ByteLevel"}, {"add_prefix_space", false}}, text),
            (Pieces{"Hello", " my", " friend", ",", " how", " is", " your", " day", " going",
                    "?"}));
  EXPECT_EQ(PreTokenize(json{{"type", "ByteLevel"}, {"use_regex", false}}, text),
            (Pieces{" " + text}));
}

TEST(PreTokenizerSplit, RejectsUnsupportedComponents) {
  EXPECT_FALSE(PreTokenizer::FromJson(json()).ok());
  EXPECT_FALSE(PreTokenizer::FromJson(json{{"type", "Whitespace"}}).ok());
  EXPECT_FALSE(PreTokenizer::FromJson(json{{"type", "Sequence"}, {"pretokenizers", json::array()}})
                   .ok());  // no ByteLevel
  const json bad_behavior = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}},
        {{"type", "ByteLevel"}}}}};
  absl::StatusOr<std::unique_ptr<PreTokenizer>> pre = PreTokenizer::FromJson(bad_behavior);
  ASSERT_FALSE(pre.ok());
  EXPECT_THAT(std::string(pre.status().message()), HasSubstr("Sideways"));
}

// The real model, loaded once, for merge-algorithm comparisons.
const BpeModel& DeepSeekBpe() {
  static const BpeModel* model = [] {
    absl::StatusOr<std::string> text =
        testing::ReadTextFile(testing::TokenizerDir() + "/tokenizer.json");
    if (!text.ok()) std::abort();
    const json root = json::parse(*text, nullptr, false);
    absl::StatusOr<std::unique_ptr<BpeModel>> bpe = BpeModel::FromJson(root["model"]);
    if (!bpe.ok()) std::abort();
    return bpe->release();
  }();
  return *model;
}

TEST(Bpe, ScanAndHeapMergesAgree) {
  DeepSeek();  // fails with the setup message if the files are missing
  const BpeModel& bpe = DeepSeekBpe();
  EXPECT_EQ(bpe.num_merges(), 127741u);
  std::mt19937 rng(3);
  const std::string fragments[] = {"a",  "e",  "th", "ing", " ",  "the", "er", "\xE4\xBD\xA0",
                                   "\xE5\xA5\xBD",  "\xF0\x9F\x8C\x8D", "0", "ab", "qu", "!", "\n"};
  for (int round = 0; round < 20000; ++round) {
    std::string word;
    const int parts = 1 + rng() % 20;
    for (int i = 0; i < parts; ++i) word += fragments[rng() % std::size(fragments)];
    std::vector<int32_t> scan, heap;
    bpe.EncodeWordUncached(word, BpeModel::MergeAlgorithm::kScan, scan);
    bpe.EncodeWordUncached(word, BpeModel::MergeAlgorithm::kHeap, heap);
    ASSERT_EQ(scan, heap) << word;
  }
}

// ---------------------------------------------------------------------------
// Loading errors: never a crash, always a message naming what is wrong.

// A tiny but complete byte-level BPE tokenizer.json to mutate.
json MiniTokenizer() {
  json vocab = json::object();
  for (int byte = 0; byte < 256; ++byte) {
    vocab[ByteLevelToken(static_cast<unsigned char>(byte))] = byte;
  }
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  return json{
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 258}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
        {{"id", 259}, {"content", "<sep>"}, {"special", false}, {"normalized", false}}}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", "\\s+|\\w+"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {258}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"byte_fallback", false},
        {"vocab", vocab},
        {"merges", {"a b", json::array({"ab", "c"})}}}}};
}

TEST(TokenizerLoad, MiniTokenizerWorks) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      Tokenizer::FromJson(MiniTokenizer().dump(), "");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  // No config: add_special_tokens uses the TemplateProcessing template.
  EXPECT_EQ(Join(*(*tokenizer)->Encode("abc ab<sep>x", true)), "258,257,32,256,259,120");
  EXPECT_EQ(*(*tokenizer)->Decode(std::vector<int32_t>{258, 257, 259}, true), "abc<sep>");
  EXPECT_EQ((*tokenizer)->bos_id(), -1);
  EXPECT_EQ((*tokenizer)->chat_template(), "");
  // A config with add_bos_token overrides the template.
  absl::StatusOr<std::unique_ptr<Tokenizer>> with_config = Tokenizer::FromJson(
      MiniTokenizer().dump(),
      R"({"add_bos_token": false, "add_eos_token": true, "bos_token": "<s>",
          "eos_token": {"content": "<sep>"}, "chat_template": [{"name": "x", "template": "X"},
          {"name": "default", "template": "D"}]})");
  ASSERT_TRUE(with_config.ok()) << with_config.status();
  EXPECT_EQ(Join(*(*with_config)->Encode("ab", true)), "256,259");
  EXPECT_EQ((*with_config)->chat_template(), "D");
  EXPECT_EQ((*with_config)->eos_id(), 259);
}

struct BadInput {
  std::string name;
  std::string tokenizer_json;
  std::string config_json;
  std::string expected_in_message;
};

std::vector<BadInput> BadInputs() {
  std::vector<BadInput> bad;
  const auto mutated = [](auto&& mutate) {
    json j = MiniTokenizer();
    mutate(j);
    return j.dump();
  };
  bad.push_back({"empty", "", "", "not valid JSON"});
  bad.push_back({"truncated", "{\"model\": {", "", "not valid JSON"});
  bad.push_back({"array", "[1, 2]", "", "not a JSON object"});
  bad.push_back({"deep nesting", std::string(100000, '[') + std::string(100000, ']'), "",
                 "not a JSON object"});
  bad.push_back({"unterminated nesting", std::string(100000, '['), "", "not valid JSON"});
  bad.push_back({"no model", mutated([](json& j) { j.erase("model"); }), "", "model"});
  bad.push_back({"wordpiece", mutated([](json& j) { j["model"]["type"] = "WordPiece"; }), "",
                 "WordPiece"});
  bad.push_back({"nfc", mutated([](json& j) { j["normalizer"] = {{"type", "NFC"}}; }), "", "NFC"});
  bad.push_back({"decoder", mutated([](json& j) { j["decoder"] = {{"type", "Metaspace"}}; }), "",
                 "Metaspace"});
  bad.push_back({"vocab list", mutated([](json& j) { j["model"]["vocab"] = json::array(); }), "",
                 "vocab"});
  bad.push_back({"vocab id", mutated([](json& j) { j["model"]["vocab"]["ab"] = "x"; }), "",
                 "\"ab\""});
  bad.push_back({"merge unknown",
                 mutated([](json& j) { j["model"]["merges"].push_back("zz q"); }), "", "zz"});
  bad.push_back({"merge shape",
                 mutated([](json& j) { j["model"]["merges"].push_back("a b c"); }), "", "a b c"});
  bad.push_back({"merge type", mutated([](json& j) { j["model"]["merges"].push_back(5); }), "",
                 "merges[2]"});
  bad.push_back({"byte fallback", mutated([](json& j) { j["model"]["byte_fallback"] = true; }),
                 "", "byte_fallback"});
  bad.push_back({"bad regex",
                 mutated([](json& j) {
                   j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
                 }),
                 "", "(unclosed"});
  bad.push_back({"pattern missing",
                 mutated([](json& j) { j["pre_tokenizer"]["pretokenizers"][0].erase("pattern"); }),
                 "", "pattern"});
  bad.push_back({"type not string",
                 mutated([](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["type"] = 3; }), "",
                 "type"});
  bad.push_back({"lstrip", mutated([](json& j) { j["added_tokens"][0]["lstrip"] = true; }), "",
                 "lstrip"});
  bad.push_back({"added id", mutated([](json& j) { j["added_tokens"][0]["id"] = -4; }), "",
                 "-4"});
  bad.push_back({"huge added id",
                 mutated([](json& j) { j["added_tokens"][0]["id"] = 2147483647; }), "",
                 "2147483647"});
  bad.push_back({"huge vocab id",
                 mutated([](json& j) { j["model"]["vocab"]["abc"] = 1LL << 40; }), "",
                 "1099511627776"});
  bad.push_back({"added shape", mutated([](json& j) { j["added_tokens"] = 7; }), "",
                 "added_tokens"});
  bad.push_back({"post processor",
                 mutated([](json& j) { j["post_processor"] = {{"type", "BertProcessing"}}; }), "",
                 "BertProcessing"});
  bad.push_back({"template id",
                 mutated([](json& j) {
                   j["post_processor"]["special_tokens"]["<s>"]["ids"] = {99999};
                 }),
                 "", "99999"});
  const std::string good = MiniTokenizer().dump();
  bad.push_back({"config not json", good, "{", "tokenizer_config.json"});
  bad.push_back({"config bos unknown", good, R"({"bos_token": "<nope>"})", "<nope>"});
  bad.push_back({"config bos type", good, R"({"bos_token": 5})", "bos_token"});
  bad.push_back({"config bos missing", good, R"({"add_bos_token": true})", "add_bos_token"});
  bad.push_back({"config template", good, R"({"chat_template": 5})", "chat_template"});
  bad.push_back({"config flags typed", good, R"({"add_bos_token": "yes", "bos_token": "<s>"})",
                 ""});  // not an error: a non-boolean flag counts as false
  return bad;
}

TEST(TokenizerLoad, MalformedFilesGiveErrorsNotCrashes) {
  for (const BadInput& input : BadInputs()) {
    SCOPED_TRACE(input.name);
    absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
        Tokenizer::FromJson(input.tokenizer_json, input.config_json);
    if (input.expected_in_message.empty()) {
      EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
      continue;
    }
    ASSERT_FALSE(tokenizer.ok());
    EXPECT_THAT(std::string(tokenizer.status().message()), HasSubstr(input.expected_in_message));
  }
}

TEST(TokenizerLoad, TruncatedRealFileGivesError) {
  absl::StatusOr<std::string> text =
      testing::ReadTextFile(testing::TokenizerDir() + "/tokenizer.json");
  ASSERT_TRUE(text.ok()) << text.status() << " (run `npm install` in the repository root)";
  for (const size_t length : {size_t{1}, size_t{1000}, text->size() / 2, text->size() - 2}) {
    EXPECT_FALSE(Tokenizer::FromJson(std::string_view(*text).substr(0, length), "").ok());
  }
  EXPECT_FALSE(Tokenizer::FromDirectory("/nonexistent/dir").ok());
}

}  // namespace
}  // namespace dsrt::text
