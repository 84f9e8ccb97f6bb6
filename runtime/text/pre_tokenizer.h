// Hugging Face pre-tokenizers (Sequence / Split / ByteLevel) on PCRE2.
//
// Each step runs separately on every piece the previous step produced, as in
// Hugging Face: a later regex (and its lookahead) never sees across an
// earlier cut. Regexes are written in Oniguruma syntax in tokenizer.json and
// are translated for PCRE2 (UTF + UCP) before compiling; see
// TranslateOnigurumaPattern. Pieces are byte ranges of the input; the final
// ByteLevel step only maps bytes to the GPT-2 alphabet, which the BPE model
// handles by working on raw bytes, so it emits raw-byte pieces.
#ifndef DSRT_RUNTIME_TEXT_PRE_TOKENIZER_H_
#define DSRT_RUNTIME_TEXT_PRE_TOKENIZER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace dsrt::text {

// Rewrites an Oniguruma pattern (Hugging Face's regex engine) into one that
// PCRE2 with UTF + UCP reads the same way:
//  - `\s` / `\S` become explicit classes of Unicode White_Space (Oniguruma's
//    definition, which includes U+0085 and excludes U+FEFF; PCRE2's UCP `\s`
//    differs), `\h` / `\H` (Oniguruma: hex digit) become [0-9a-fA-F].
//  - Everything else is passed through. Constructs PCRE2 would read
//    differently and that cannot be rewritten cheaply (a nested class, `&&`
//    class intersection, `\S` or `\H` inside a class) are rejected.
absl::StatusOr<std::string> TranslateOnigurumaPattern(std::string_view pattern);

enum class SplitBehavior {
  kRemoved,
  kIsolated,
  kMergedWithPrevious,
  kMergedWithNext,
  kContiguous,
};

// A compiled PCRE2 regex that finds matches the way Hugging Face does with
// Oniguruma's find_iter (including its handling of empty matches).
class Regex;

// A byte range of a piece, and whether the regex matched it.
struct PieceRange {
  size_t begin;
  size_t end;
  bool is_match;
};

class PreTokenizer {
 public:
  // Per-call working memory; one per thread, reusable across calls.
  class Scratch;
  struct ScratchDeleter {
    void operator()(Scratch* scratch) const;
  };
  using ScratchPtr = std::unique_ptr<Scratch, ScratchDeleter>;

  // Parses tokenizer.json's "pre_tokenizer". Only byte-level pipelines are
  // supported: the last component must be ByteLevel.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> FromJson(const nlohmann::json& json);

  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  ScratchPtr NewScratch() const;

  // Calls `emit` with each non-empty piece of `text`, in order. `text` must be
  // valid UTF-8. A piece may point into `scratch` (when a prefix space is
  // added), so it is only valid during the call to `emit`.
  absl::Status Split(std::string_view text, Scratch& scratch,
                     absl::FunctionRef<void(std::string_view)> emit) const;

 private:
  struct Step;

  PreTokenizer();
  absl::Status AddComponent(const nlohmann::json& json, const std::string& where);
  absl::Status RunStep(size_t step_index, std::string_view piece, Scratch& scratch,
                       absl::FunctionRef<void(std::string_view)> emit) const;

  std::vector<Step> steps_;
  bool ends_with_byte_level_ = false;
};

// Exposed for tests: the ranges (matches and the gaps between them) that one
// regex gives on `subject`, exactly as Hugging Face's Split sees them.
absl::StatusOr<std::vector<PieceRange>> FindRegexRangesForTest(std::string_view onig_pattern,
                                                               std::string_view subject);

}  // namespace dsrt::text

#endif  // DSRT_RUNTIME_TEXT_PRE_TOKENIZER_H_
