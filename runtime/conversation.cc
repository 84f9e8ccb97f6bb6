#include "runtime/conversation.h"

#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"

namespace dsrt::runtime {

absl::StatusOr<std::unique_ptr<chat::ChatTemplate>> LoadChatTemplate(const std::string& tokenizer_config_json,
                                                                     const std::string& source) {
  if (tokenizer_config_json.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(source, " has no tokenizer_config.json, so no chat template"));
  }
  auto chat_template = chat::ChatTemplate::FromTokenizerConfig(tokenizer_config_json);
  if (!chat_template.ok()) {
    return absl::Status(chat_template.status().code(),
                        absl::StrCat(source, ": chat template: ", chat_template.status().message()));
  }
  return chat_template;
}

absl::StatusOr<ChatPrompt> RenderChat(const chat::ChatTemplate& chat_template, const text::Tokenizer& tokenizer,
                                      const nlohmann::json& messages, bool add_generation_prompt) {
  ChatPrompt prompt;
  DSRT_ASSIGN_OR_RETURN(prompt.text, chat_template.Render(messages, add_generation_prompt));
  DSRT_ASSIGN_OR_RETURN(prompt.ids, tokenizer.Encode(prompt.text, /*add_special_tokens=*/false));
  return prompt;
}

Conversation::Conversation(Session& session, const text::Tokenizer& tokenizer,
                           std::unique_ptr<chat::ChatTemplate> chat_template, std::string system_prompt)
    : session_(session),
      tokenizer_(tokenizer),
      template_(std::move(chat_template)),
      system_prompt_(std::move(system_prompt)) {
  Reset();
}

absl::StatusOr<std::unique_ptr<Conversation>> Conversation::Start(Session& session, std::string system_prompt) {
  DSRT_ASSIGN_OR_RETURN(const text::Tokenizer* tokenizer, session.tokenizer());
  DSRT_ASSIGN_OR_RETURN(auto chat_template,
                        LoadChatTemplate(session.engine().tokenizer_config_json(), "the engine"));
  return std::unique_ptr<Conversation>(
      new Conversation(session, *tokenizer, std::move(chat_template), std::move(system_prompt)));
}

void Conversation::Reset() {
  messages_ = nlohmann::json::array();
  if (!system_prompt_.empty()) messages_.push_back({{"role", "system"}, {"content", system_prompt_}});
}

absl::StatusOr<TextGenerateResult> Conversation::Reply(const std::string& user_message,
                                                       const TextGenerateOptions& options,
                                                       const std::function<void(absl::string_view)>& on_text) {
  nlohmann::json turn = messages_;
  turn.push_back({{"role", "user"}, {"content", user_message}});
  DSRT_ASSIGN_OR_RETURN(ChatPrompt prompt, RenderChat(*template_, tokenizer_, turn, /*add_generation_prompt=*/true));
  DSRT_ASSIGN_OR_RETURN(TextGenerateResult reply, GenerateText(session_, prompt.ids, options, on_text));
  turn.push_back({{"role", "assistant"}, {"content", reply.text}});
  messages_ = std::move(turn);
  return reply;
}

}  // namespace dsrt::runtime
