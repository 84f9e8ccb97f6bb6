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

// Turns generated tokens into text, incrementally: Push returns the text that became
// final with that token — never half a UTF-8 character, never the start of what may
// turn out to be a stop string. When a stop string appears the text is cut before
// it and stopped() turns true. Finish returns what is left at the end.
class TextStreamer {
 public:
  TextStreamer(const text::Tokenizer& tokenizer, const std::vector<std::string>& stop);

  absl::StatusOr<std::string> Push(int32_t id);
  std::string Finish();
  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }

 private:
  std::string TakeUpTo(size_t end);

  text::StreamDecoder decoder_;
  std::vector<std::string> stops_;
  std::string text_;   // everything decoded so far (cut before a stop string)
  size_t emitted_ = 0;  // bytes of text_ already returned
  bool stopped_ = false;
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
