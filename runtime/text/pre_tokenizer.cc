#include "runtime/text/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/text/json_util.h"
#include "runtime/text/string_view_compat.h"

namespace dsrt::text {
namespace {

using nlohmann::json;

// Oniguruma's \s: the Unicode White_Space property.
constexpr std::string_view kWhiteSpaceMembers =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}"
    "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";
constexpr std::string_view kHexDigitMembers = "0-9a-fA-F";

// The regex Hugging Face's ByteLevel pre-tokenizer uses when use_regex is on.
constexpr std::string_view kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

size_t Utf8LengthFromLead(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

absl::Status PatternError(std::string_view pattern, size_t offset, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("regex \"", AsAbsl(pattern), "\" at offset ",
                                                 offset, ": ", AsAbsl(what)));
}

// Escapes a literal string (Split's {"String": ...} pattern) for PCRE2.
std::string EscapeLiteral(std::string_view literal) {
  std::string out;
  for (const char c : literal) {
    const auto byte = static_cast<unsigned char>(c);
    const bool plain = byte >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                       (c >= 'A' && c <= 'Z');
    if (!plain) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<SplitBehavior> ParseBehavior(const json& value, const std::string& where) {
  if (!value.is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".behavior must be a string"));
  }
  const std::string& name = value.get_ref<const std::string&>();
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return absl::InvalidArgumentError(
      absl::StrCat(where, ".behavior \"", name, "\" is not a known split behavior"));
}

}  // namespace

absl::StatusOr<std::string> TranslateOnigurumaPattern(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  size_t i = 0;
  while (i < pattern.size()) {
    const char c = pattern[i];
    if (c == '\\') {
      if (i + 1 >= pattern.size()) return PatternError(pattern, i, "ends with a backslash");
      const char escaped = pattern[i + 1];
      if (escaped == 's' || escaped == 'h') {
        const std::string_view members = escaped == 's' ? kWhiteSpaceMembers : kHexDigitMembers;
        absl::StrAppend(&out, in_class ? "" : "[", AsAbsl(members), in_class ? "" : "]");
        i += 2;
        continue;
      }
      if (escaped == 'S' || escaped == 'H') {
        if (in_class) {
          return PatternError(pattern, i, "\\S or \\H inside a character class is not supported");
        }
        absl::StrAppend(&out, "[^", AsAbsl(escaped == 'S' ? kWhiteSpaceMembers : kHexDigitMembers), "]");
        i += 2;
        continue;
      }
      const size_t length = Utf8LengthFromLead(static_cast<unsigned char>(escaped));
      out.push_back('\\');
      out.append(pattern.substr(i + 1, length));
      i += 1 + length;
      continue;
    }
    if (!in_class) {
      out.push_back(c);
      ++i;
      if (c != '[') continue;
      in_class = true;
      if (i < pattern.size() && pattern[i] == '^') out.push_back(pattern[i++]);
      if (i < pattern.size() && pattern[i] == ']') {  // a leading ']' is literal
        out.append("\\]");
        ++i;
      }
      continue;
    }
    if (c == ']') {
      in_class = false;
    } else if (c == '[') {
      if (i + 1 >= pattern.size() || pattern[i + 1] != ':') {
        return PatternError(pattern, i, "nested character classes are not supported");
      }
      const size_t close = pattern.find(":]", i + 2);
      if (close == std::string_view::npos) {
        return PatternError(pattern, i, "unterminated POSIX class");
      }
      out.append(pattern.substr(i, close + 2 - i));
      i = close + 2;
      continue;
    } else if (c == '&' && i + 1 < pattern.size() && pattern[i + 1] == '&') {
      return PatternError(pattern, i, "class intersection (&&) is not supported");
    }
    out.push_back(c);
    ++i;
  }
  if (in_class) return PatternError(pattern, pattern.size(), "unterminated character class");
  return out;
}

class Regex {
 public:
  static absl::StatusOr<std::unique_ptr<Regex>> CompilePcre2(std::string_view pcre2_pattern,
                                                             std::string_view shown_as) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre2_pattern.data()),
                                     pcre2_pattern.size(), PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE,
                                     &error_code, &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof(message));
      return absl::InvalidArgumentError(absl::StrCat(
          "regex \"", AsAbsl(shown_as), "\" does not compile (as PCRE2 \"", AsAbsl(pcre2_pattern),
          "\", offset ", error_offset, "): ", reinterpret_cast<const char*>(message)));
    }
    // Without JIT (unsupported CPU) matching still works, only slower.
    const bool jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    return std::unique_ptr<Regex>(new Regex(code, jit, std::string(shown_as)));
  }

  static absl::StatusOr<std::unique_ptr<Regex>> CompileOniguruma(std::string_view pattern) {
    absl::StatusOr<std::string> translated = TranslateOnigurumaPattern(pattern);
    if (!translated.ok()) return translated.status();
    return CompilePcre2(*translated, pattern);
  }

  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  pcre2_match_data* NewMatchData() const {
    return pcre2_match_data_create_from_pattern(code_, nullptr);
  }

  // Appends the ranges covering `subject`: each match and each non-empty gap.
  // Mirrors Hugging Face's find_matches over onig's find_iter, which skips
  // an empty match that directly follows the previous match by moving on
  // one character.
  absl::Status FindRanges(std::string_view subject, pcre2_match_data* match_data,
                          std::vector<PieceRange>& out) const {
    const size_t n = subject.size();
    if (n == 0) {
      out.push_back({0, 0, false});
      return absl::OkStatus();
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data);
    size_t gap_start = 0;
    size_t search_from = 0;
    bool matched_before = false;
    size_t last_match_end = 0;
    while (search_from <= n) {
      const int rc = Match(subject, search_from, match_data);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) return MatchError(rc);
      const size_t start = ovector[0];
      const size_t end = ovector[1];
      if (start == end && matched_before && last_match_end == end) {
        search_from += search_from < n
                           ? Utf8LengthFromLead(static_cast<unsigned char>(subject[search_from]))
                           : 1;
        continue;
      }
      search_from = end;
      matched_before = true;
      last_match_end = end;
      if (gap_start != start) out.push_back({gap_start, start, false});
      out.push_back({start, end, true});
      gap_start = end;
    }
    if (gap_start != n) out.push_back({gap_start, n, false});
    return absl::OkStatus();
  }

 private:
  Regex(pcre2_code* code, bool jit, std::string shown_as)
      : code_(code), jit_(jit), shown_as_(std::move(shown_as)) {}

  int Match(std::string_view subject, size_t start, pcre2_match_data* match_data) const {
    const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
    if (jit_) {
      const int rc = pcre2_jit_match(code_, data, subject.size(), start, 0, match_data, nullptr);
      if (rc != PCRE2_ERROR_JIT_STACKLIMIT) return rc;
      // A pathological piece overflowed the JIT stack: the interpreter keeps
      // its backtracking state on the heap instead.
    }
    // The input was validated once up front; re-checking it per call would
    // make splitting quadratic.
    return pcre2_match(code_, data, subject.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                       match_data, nullptr);
  }

  absl::Status MatchError(int rc) const {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(rc, message, sizeof(message));
    return absl::ResourceExhaustedError(absl::StrCat("regex \"", shown_as_, "\" failed: ",
                                                     reinterpret_cast<const char*>(message)));
  }

  pcre2_code* code_;
  bool jit_;
  std::string shown_as_;
};

struct PreTokenizer::Step {
  std::unique_ptr<Regex> regex;  // null: no split at this step
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;
};

class PreTokenizer::Scratch {
 public:
  struct Level {
    struct MatchDataDeleter {
      void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
    };
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> match_data;
    std::vector<PieceRange> ranges;
    std::vector<PieceRange> merged;
    std::string prefixed;
  };
  std::vector<Level> levels;
};

namespace {

// Turns regex ranges into the pieces a split behavior keeps, in place.
// Follows Hugging Face's NormalizedString::split.
void ApplyBehavior(SplitBehavior behavior, std::vector<PieceRange>& ranges,
                   std::vector<PieceRange>& merged) {
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return;
    case SplitBehavior::kRemoved:
      std::erase_if(ranges, [](const PieceRange& r) { return r.is_match; });
      return;
    case SplitBehavior::kContiguous:
    case SplitBehavior::kMergedWithPrevious: {
      merged.clear();
      bool previous_match = false;
      for (const PieceRange& r : ranges) {
        const bool joins = behavior == SplitBehavior::kContiguous
                               ? r.is_match == previous_match
                               : r.is_match && !previous_match;
        if (joins && !merged.empty()) {
          merged.back().end = r.end;
        } else {
          merged.push_back({r.begin, r.end, false});
        }
        previous_match = r.is_match;
      }
      ranges.swap(merged);
      return;
    }
    case SplitBehavior::kMergedWithNext: {
      merged.clear();
      bool previous_match = false;
      for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
        if (it->is_match && !previous_match && !merged.empty()) {
          merged.back().begin = it->begin;
        } else {
          merged.push_back({it->begin, it->end, false});
        }
        previous_match = it->is_match;
      }
      ranges.assign(merged.rbegin(), merged.rend());
      return;
    }
  }
}

}  // namespace

PreTokenizer::PreTokenizer() = default;
PreTokenizer::~PreTokenizer() = default;

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::FromJson(const json& config) {
  std::unique_ptr<PreTokenizer> pre_tokenizer(new PreTokenizer());
  if (!config.is_object()) {
    return absl::InvalidArgumentError(
        "tokenizer.json: pre_tokenizer is missing or null; only byte-level BPE tokenizers "
        "(with a ByteLevel pre-tokenizer) are supported");
  }
  const auto type = config.find("type");
  if (type != config.end() && *type == "Sequence") {
    const auto list = config.find("pretokenizers");
    if (list == config.end() || !list->is_array()) {
      return absl::InvalidArgumentError(
          "tokenizer.json: pre_tokenizer Sequence has no \"pretokenizers\" array");
    }
    for (size_t k = 0; k < list->size(); ++k) {
      const std::string where = absl::StrCat("tokenizer.json: pre_tokenizer.pretokenizers[", k, "]");
      if (pre_tokenizer->ends_with_byte_level_) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " follows a ByteLevel step; ByteLevel must come last"));
      }
      absl::Status status = pre_tokenizer->AddComponent((*list)[k], where);
      if (!status.ok()) return status;
    }
  } else {
    absl::Status status = pre_tokenizer->AddComponent(config, "tokenizer.json: pre_tokenizer");
    if (!status.ok()) return status;
  }
  if (!pre_tokenizer->ends_with_byte_level_) {
    return absl::InvalidArgumentError(
        "tokenizer.json: pre_tokenizer has no final ByteLevel step; only byte-level BPE "
        "tokenizers are supported");
  }
  return pre_tokenizer;
}

absl::Status PreTokenizer::AddComponent(const json& component, const std::string& where) {
  const std::string type = JsonString(component, "type");
  if (type.empty()) return absl::InvalidArgumentError(absl::StrCat(where, " has no \"type\""));
  if (type == "ByteLevel") {
    Step step;
    step.add_prefix_space = JsonBool(component, "add_prefix_space", true);
    if (JsonBool(component, "use_regex", true)) {
      absl::StatusOr<std::unique_ptr<Regex>> regex = Regex::CompileOniguruma(kGpt2Pattern);
      if (!regex.ok()) return regex.status();
      step.regex = *std::move(regex);
    }
    if (step.add_prefix_space || step.regex != nullptr) steps_.push_back(std::move(step));
    ends_with_byte_level_ = true;
    return absl::OkStatus();
  }
  if (type != "Split") {
    return absl::UnimplementedError(absl::StrCat(where, ": pre-tokenizer type \"", type,
                                                 "\" is not supported (only Sequence, Split, "
                                                 "ByteLevel)"));
  }
  Step step;
  const auto pattern = component.find("pattern");
  if (pattern == component.end() || !pattern->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " (Split) has no \"pattern\" object"));
  }
  absl::StatusOr<std::unique_ptr<Regex>> regex;
  if (const auto re = pattern->find("Regex"); re != pattern->end() && re->is_string()) {
    regex = Regex::CompileOniguruma(re->get_ref<const std::string&>());
  } else if (const auto s = pattern->find("String"); s != pattern->end() && s->is_string()) {
    const std::string& literal = s->get_ref<const std::string&>();
    regex = Regex::CompilePcre2(EscapeLiteral(literal), literal);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".pattern needs a \"Regex\" or \"String\" string"));
  }
  if (!regex.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", regex.status().message()));
  }
  step.regex = *std::move(regex);
  absl::StatusOr<SplitBehavior> behavior =
      ParseBehavior(JsonField(component, "behavior"), where);
  if (!behavior.ok()) return behavior.status();
  step.behavior = *behavior;
  step.invert = JsonBool(component, "invert", false);
  steps_.push_back(std::move(step));
  return absl::OkStatus();
}

void PreTokenizer::ScratchDeleter::operator()(Scratch* scratch) const { delete scratch; }

PreTokenizer::ScratchPtr PreTokenizer::NewScratch() const {
  ScratchPtr scratch(new Scratch());
  scratch->levels.resize(steps_.size());
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (steps_[i].regex != nullptr) {
      scratch->levels[i].match_data.reset(steps_[i].regex->NewMatchData());
    }
  }
  return scratch;
}

absl::Status PreTokenizer::Split(std::string_view text, Scratch& scratch,
                                 absl::FunctionRef<void(std::string_view)> emit) const {
  return RunStep(0, text, scratch, emit);
}

absl::Status PreTokenizer::RunStep(size_t step_index, std::string_view piece, Scratch& scratch,
                                   absl::FunctionRef<void(std::string_view)> emit) const {
  if (piece.empty()) return absl::OkStatus();
  if (step_index == steps_.size()) {
    emit(piece);
    return absl::OkStatus();
  }
  const Step& step = steps_[step_index];
  Scratch::Level& level = scratch.levels[step_index];
  if (step.add_prefix_space && piece.front() != ' ') {
    level.prefixed.assign(1, ' ');
    level.prefixed.append(piece);
    piece = level.prefixed;
  }
  if (step.regex == nullptr) return RunStep(step_index + 1, piece, scratch, emit);
  if (level.match_data == nullptr) {
    return absl::InternalError("pre-tokenizer scratch does not belong to this tokenizer");
  }
  level.ranges.clear();
  absl::Status status = step.regex->FindRanges(piece, level.match_data.get(), level.ranges);
  if (!status.ok()) return status;
  if (step.invert) {
    for (PieceRange& r : level.ranges) r.is_match = !r.is_match;
  }
  ApplyBehavior(step.behavior, level.ranges, level.merged);
  for (const PieceRange& r : level.ranges) {
    status = RunStep(step_index + 1, piece.substr(r.begin, r.end - r.begin), scratch, emit);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PieceRange>> FindRegexRangesForTest(std::string_view onig_pattern,
                                                               std::string_view subject) {
  absl::StatusOr<std::unique_ptr<Regex>> regex = Regex::CompileOniguruma(onig_pattern);
  if (!regex.ok()) return regex.status();
  std::unique_ptr<pcre2_match_data, PreTokenizer::Scratch::Level::MatchDataDeleter> match_data(
      (*regex)->NewMatchData());
  std::vector<PieceRange> ranges;
  absl::Status status = (*regex)->FindRanges(subject, match_data.get(), ranges);
  if (!status.ok()) return status;
  return ranges;
}

}  // namespace dsrt::text
