#ifndef DSRT_RUNTIME_CONVERSATION_H_
#define DSRT_RUNTIME_CONVERSATION_H_

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "runtime/chat/chat_template.h"
#include "runtime/session.h"
#include "runtime/text_generation.h"

namespace dsrt::runtime {

// The chat template an engine carries (from its checkpoint's tokenizer_config.json).
absl::StatusOr<std::unique_ptr<chat::ChatTemplate>> LoadChatTemplate(const std::string& tokenizer_config_json,
                                                                     const std::string& source);

// A rendered conversation: the prompt text and its ids. The template writes BOS
// itself, so the text is encoded without adding special tokens.
struct ChatPrompt {
  std::string text;
  std::vector<int32_t> ids;
};
absl::StatusOr<ChatPrompt> RenderChat(const chat::ChatTemplate& chat_template, const text::Tokenizer& tokenizer,
                                      const nlohmann::json& messages, bool add_generation_prompt);

// A conversation that keeps its history: each turn renders the whole history
// through the chat template and generates the assistant's reply.
class Conversation {
 public:
  static absl::StatusOr<std::unique_ptr<Conversation>> Start(Session& session, std::string system_prompt = "");

  // Adds the user's message, generates and records the reply. `on_text` streams it.
  absl::StatusOr<TextGenerateResult> Reply(const std::string& user_message, const TextGenerateOptions& options,
                                           const std::function<void(absl::string_view)>& on_text = {});
  // Forgets everything but the system prompt.
  void Reset();
  const nlohmann::json& messages() const { return messages_; }

 private:
  Conversation(Session& session, const text::Tokenizer& tokenizer, std::unique_ptr<chat::ChatTemplate> chat_template,
               std::string system_prompt);

  Session& session_;
  const text::Tokenizer& tokenizer_;
  std::unique_ptr<chat::ChatTemplate> template_;
  std::string system_prompt_;
  nlohmann::json messages_;
};

}  // namespace dsrt::runtime

#endif  // DSRT_RUNTIME_CONVERSATION_H_
