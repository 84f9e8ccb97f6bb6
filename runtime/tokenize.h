#ifndef DSRT_RUNTIME_TOKENIZE_H_
#define DSRT_RUNTIME_TOKENIZE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/text/tokenizer.h"

namespace dsrt::runtime {

// The tokenizer of an engine file, or of a checkpoint (or any) directory holding
// tokenizer.json and tokenizer_config.json.
absl::StatusOr<std::unique_ptr<text::Tokenizer>> LoadTokenizer(const std::string& engine_or_dir);

// The tokenizer_config.json text of an engine or directory ("" when it has none).
absl::StatusOr<std::string> LoadTokenizerConfigJson(const std::string& engine_or_dir);

}  // namespace dsrt::runtime

#endif  // DSRT_RUNTIME_TOKENIZE_H_
