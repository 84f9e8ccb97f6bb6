#include "runtime/text_generation.h"

#include <algorithm>

#include "ir/status_macros.h"

namespace dsrt::runtime {
namespace {

// How many trailing bytes of `text` could be the beginning of a stop string.
size_t StopPrefixLength(const std::string& text, const std::vector<std::string>& stops) {
  size_t longest = 0;
  for (const std::string& stop : stops) {
    for (size_t n = std::min(stop.size() - 1, text.size()); n > longest; --n) {
      if (text.compare(text.size() - n, n, stop, 0, n) == 0) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}

// Finds the earliest stop string in `text`; npos when none.
size_t FindStop(const std::string& text, const std::vector<std::string>& stops) {
  size_t first = std::string::npos;
  for (const std::string& stop : stops) first = std::min(first, text.find(stop));
  return first;
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> EncodePrompt(Session& session, absl::string_view prompt) {
  DSRT_ASSIGN_OR_RETURN(const text::Tokenizer* tokenizer, session.tokenizer());
  return tokenizer->Encode(std::string_view(prompt.data(), prompt.size()), /*add_special_tokens=*/true);
}

absl::StatusOr<TextGenerateResult> GenerateText(Session& session, const std::vector<int32_t>& prompt_ids,
                                                const TextGenerateOptions& options,
                                                const std::function<void(absl::string_view)>& on_text) {
  DSRT_ASSIGN_OR_RETURN(const text::Tokenizer* tokenizer, session.tokenizer());
  std::vector<std::string> stops;
  for (const std::string& s : options.stop) {
    if (!s.empty()) stops.push_back(s);
  }
  text::StreamDecoder decoder(*tokenizer);
  std::string text;     // everything decoded so far
  size_t emitted = 0;   // bytes of `text` already handed to on_text
  bool stopped = false;
  absl::Status decode_error;

  auto emit_up_to = [&](size_t end) {
    if (end > emitted && on_text) on_text(absl::string_view(text).substr(emitted, end - emitted));
    emitted = std::max(emitted, end);
  };
  auto on_token = [&](int32_t id) -> bool {
    absl::StatusOr<std::string> piece = decoder.Push(id);
    if (!piece.ok()) {
      decode_error = piece.status();
      return false;
    }
    text += *piece;
    if (size_t at = FindStop(text, stops); at != std::string::npos) {
      text.resize(at);
      stopped = true;
      emit_up_to(text.size());
      return false;
    }
    emit_up_to(text.size() - StopPrefixLength(text, stops));
    return true;
  };
  DSRT_ASSIGN_OR_RETURN(GenerateResult generated, Generate(session, prompt_ids, options.generate, on_token));
  DSRT_RETURN_IF_ERROR(decode_error);
  if (!stopped) {
    text += decoder.Finish();
    if (size_t at = FindStop(text, stops); at != std::string::npos) text.resize(at);
  }
  emit_up_to(text.size());

  TextGenerateResult result;
  result.prompt_ids = prompt_ids;
  result.generated_ids = std::move(generated.generated);
  result.text = std::move(text);
  result.finish_reason = generated.finish_reason;
  result.prompt_logits = std::move(generated.prompt_logits);
  result.vocab = generated.vocab;
  return result;
}

}  // namespace dsrt::runtime
