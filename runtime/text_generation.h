#ifndef DSRT_RUNTIME_TEXT_GENERATION_H_
#define DSRT_RUNTIME_TEXT_GENERATION_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/session.h"

namespace dsrt::runtime {

struct TextGenerateOptions {
  GenerateOptions generate;
  std::vector<std::string> stop;  // generation ends before the first of these strings
};

struct TextGenerateResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> generated_ids;
  std::string text;           // the generated text, cut before a stop string
  std::string finish_reason;  // "stop" (EOS or a stop string) or "length"
  std::vector<float> prompt_logits;
  int64_t vocab = 0;
};

// Generates from token ids and decodes as it goes. `on_text` receives the text in
// pieces as soon as they are final: never half a UTF-8 character, never the start
// of what may turn out to be a stop string.
absl::StatusOr<TextGenerateResult> GenerateText(Session& session, const std::vector<int32_t>& prompt_ids,
                                                const TextGenerateOptions& options,
                                                const std::function<void(absl::string_view)>& on_text = {});

// The prompt's ids: BOS as tokenizer_config.json asks, then the text.
absl::StatusOr<std::vector<int32_t>> EncodePrompt(Session& session, absl::string_view prompt);

}  // namespace dsrt::runtime

#endif  // DSRT_RUNTIME_TEXT_GENERATION_H_
