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

TextStreamer::TextStreamer(const text::Tokenizer& tokenizer, const std::vector<std::string>& stop)
    : decoder_(tokenizer) {
  for (const std::string& s : stop) {
    if (!s.empty()) stops_.push_back(s);
  }
}

std::string TextStreamer::TakeUpTo(size_t end) {
  if (end <= emitted_) return "";
  std::string piece = text_.substr(emitted_, end - emitted_);
  emitted_ = end;
  return piece;
}

absl::StatusOr<std::string> TextStreamer::Push(int32_t id) {
  if (stopped_) return std::string();
  DSRT_ASSIGN_OR_RETURN(std::string piece, decoder_.Push(id));
  text_ += piece;
  if (size_t at = FindStop(text_, stops_); at != std::string::npos) {
    text_.resize(at);
    stopped_ = true;
    return TakeUpTo(text_.size());
  }
  return TakeUpTo(text_.size() - StopPrefixLength(text_, stops_));
}

std::string TextStreamer::Finish() {
  if (!stopped_) {
    text_ += decoder_.Finish();
    if (size_t at = FindStop(text_, stops_); at != std::string::npos) {
      text_.resize(at);
      stopped_ = true;
    }
  }
  return TakeUpTo(text_.size());
}

absl::StatusOr<TextGenerateResult> GenerateText(Session& session, const std::vector<int32_t>& prompt_ids,
                                                const TextGenerateOptions& options,
                                                const std::function<void(absl::string_view)>& on_text) {
  DSRT_ASSIGN_OR_RETURN(const text::Tokenizer* tokenizer, session.tokenizer());
  TextStreamer streamer(*tokenizer, options.stop);
  absl::Status decode_error;
  auto emit = [&](const std::string& piece) {
    if (!piece.empty() && on_text) on_text(piece);
  };
  auto on_token = [&](int32_t id) -> bool {
    absl::StatusOr<std::string> piece = streamer.Push(id);
    if (!piece.ok()) {
      decode_error = piece.status();
      return false;
    }
    emit(*piece);
    return !streamer.stopped();
  };
  DSRT_ASSIGN_OR_RETURN(GenerateResult generated, Generate(session, prompt_ids, options.generate, on_token));
  DSRT_RETURN_IF_ERROR(decode_error);
  emit(streamer.Finish());

  TextGenerateResult result;
  result.prompt_ids = prompt_ids;
  result.generated_ids = std::move(generated.generated);
  result.text = streamer.text();
  result.finish_reason = generated.finish_reason;
  result.prompt_logits = std::move(generated.prompt_logits);
  result.vocab = generated.vocab;
  return result;
}

}  // namespace dsrt::runtime
