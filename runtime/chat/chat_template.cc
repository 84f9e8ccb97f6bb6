#include "runtime/chat/chat_template.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"
#include "runtime/chat/interpreter.h"
#include "runtime/chat/parser.h"
#include "runtime/chat/value.h"

namespace dsrt::chat {
namespace {

using Variables = std::vector<std::pair<std::string, Value>>;

absl::Status ConfigError(const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer_config.json: ", message));
}

// A special token is written as "text" or as an AddedToken object
// {"content": "text", ...}; null means unset.
absl::StatusOr<std::optional<std::string>> TokenText(const nlohmann::json& token, const std::string& key) {
  if (token.is_null()) return std::optional<std::string>();
  if (token.is_string()) return std::optional<std::string>(token.get<std::string>());
  if (token.is_object()) {
    const auto content = token.find("content");
    if (content != token.end() && content->is_string()) return std::optional<std::string>(content->get<std::string>());
  }
  return ConfigError(absl::StrCat(key, " must be a string or an object with a string \"content\""));
}

absl::StatusOr<std::optional<std::string>> ConfigToken(const nlohmann::json& config, const char* key) {
  const auto found = config.find(key);
  if (found == config.end()) return std::optional<std::string>();
  return TokenText(*found, key);
}

absl::StatusOr<SpecialTokens> ReadSpecialTokens(const nlohmann::json& config) {
  SpecialTokens tokens;
  DSRT_ASSIGN_OR_RETURN(tokens.bos_token, ConfigToken(config, "bos_token"));
  DSRT_ASSIGN_OR_RETURN(tokens.eos_token, ConfigToken(config, "eos_token"));
  DSRT_ASSIGN_OR_RETURN(tokens.unk_token, ConfigToken(config, "unk_token"));
  DSRT_ASSIGN_OR_RETURN(tokens.sep_token, ConfigToken(config, "sep_token"));
  DSRT_ASSIGN_OR_RETURN(tokens.pad_token, ConfigToken(config, "pad_token"));
  DSRT_ASSIGN_OR_RETURN(tokens.cls_token, ConfigToken(config, "cls_token"));
  DSRT_ASSIGN_OR_RETURN(tokens.mask_token, ConfigToken(config, "mask_token"));
  const auto additional = config.find("additional_special_tokens");
  if (additional == config.end() || additional->is_null()) return tokens;
  if (!additional->is_array()) return ConfigError("additional_special_tokens must be a list");
  std::vector<std::string> texts;
  for (const nlohmann::json& token : *additional) {
    DSRT_ASSIGN_OR_RETURN(std::optional<std::string> text, TokenText(token, "additional_special_tokens"));
    if (text.has_value()) texts.push_back(*std::move(text));
  }
  tokens.additional_special_tokens = std::move(texts);
  return tokens;
}

absl::StatusOr<std::string> ChooseTemplate(const nlohmann::json& config, const std::string& name) {
  const auto found = config.find("chat_template");
  if (found == config.end() || found->is_null()) return absl::NotFoundError("tokenizer_config.json has no chat_template");
  if (found->is_string()) return found->get<std::string>();
  if (!found->is_array()) return ConfigError("chat_template must be a string or a list of {name, template}");
  std::string names;
  for (const nlohmann::json& entry : *found) {
    if (!entry.is_object()) return ConfigError("chat_template list entries must be objects");
    const auto entry_name = entry.find("name");
    const auto entry_template = entry.find("template");
    if (entry_name == entry.end() || !entry_name->is_string() || entry_template == entry.end() ||
        !entry_template->is_string()) {
      return ConfigError("chat_template list entries need a string \"name\" and \"template\"");
    }
    if (entry_name->get<std::string>() == name) return entry_template->get<std::string>();
    absl::StrAppend(&names, names.empty() ? "" : ", ", entry_name->get<std::string>());
  }
  return absl::NotFoundError(
      absl::StrCat("tokenizer_config.json has no chat template named '", name, "' (it has: ", names, ")"));
}

void AddToken(Variables& variables, const char* name, const std::optional<std::string>& text) {
  if (text.has_value()) variables.emplace_back(name, Value::String(*text));
}

Variables SpecialTokenVariables(const SpecialTokens& tokens) {
  Variables variables;
  AddToken(variables, "bos_token", tokens.bos_token);
  AddToken(variables, "eos_token", tokens.eos_token);
  AddToken(variables, "unk_token", tokens.unk_token);
  AddToken(variables, "sep_token", tokens.sep_token);
  AddToken(variables, "pad_token", tokens.pad_token);
  AddToken(variables, "cls_token", tokens.cls_token);
  AddToken(variables, "mask_token", tokens.mask_token);
  if (tokens.additional_special_tokens.has_value()) {
    std::vector<Value> texts;
    for (const std::string& text : *tokens.additional_special_tokens) texts.push_back(Value::String(text));
    variables.emplace_back("additional_special_tokens", Value::List(std::move(texts)));
  }
  return variables;
}

void SetVariable(Variables& variables, const std::string& name, Value value) {
  for (auto& variable : variables) {
    if (variable.first == name) {
      variable.second = std::move(value);
      return;
    }
  }
  variables.emplace_back(name, std::move(value));
}

template <typename Json>
absl::Status ValidateMessages(const Json& messages) {
  if (!messages.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("messages must be a JSON array, not ", messages.type_name()));
  }
  size_t index = 0;
  for (const Json& message : messages) {
    if (!message.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", index, "] must be a JSON object, not ", message.type_name()));
    }
    const auto role = message.find("role");
    if (role == message.end() || !role->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", index, "] needs a string \"role\""));
    }
    ++index;
  }
  return absl::OkStatus();
}

template <typename Json>
absl::Status AddExtraVariables(const Json& extra, Variables& variables) {
  if (!extra.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("extra_variables must be a JSON object, not ", extra.type_name()));
  }
  for (auto it = extra.begin(); it != extra.end(); ++it) {
    if (it.key() == "messages" || it.key() == "add_generation_prompt") {
      return absl::InvalidArgumentError(absl::StrCat("extra_variables may not set '", it.key(), "'"));
    }
    absl::StatusOr<Value> value = FromJson(it.value());
    if (!value.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("extra_variables['", it.key(), "']: ", value.status().message()));
    }
    SetVariable(variables, it.key(), *std::move(value));
  }
  return absl::OkStatus();
}

}  // namespace

ChatTemplate::ChatTemplate(std::string source, std::unique_ptr<const Template> tmpl, SpecialTokens special_tokens)
    : source_(std::move(source)), template_(std::move(tmpl)), special_tokens_(std::move(special_tokens)) {}

ChatTemplate::~ChatTemplate() = default;

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::Parse(absl::string_view source) {
  return Parse(source, SpecialTokens());
}

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::Parse(absl::string_view source,
                                                                  SpecialTokens special_tokens) {
  std::string text(source.data(), source.size());
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<Template> tmpl, ParseTemplate(text));
  return std::unique_ptr<ChatTemplate>(new ChatTemplate(std::move(text), std::move(tmpl), std::move(special_tokens)));
}

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::FromTokenizerConfig(
    absl::string_view tokenizer_config_json, absl::string_view template_name) {
  const nlohmann::json config = nlohmann::json::parse(
      tokenizer_config_json.data(), tokenizer_config_json.data() + tokenizer_config_json.size(), nullptr, false);
  if (config.is_discarded()) return ConfigError("not valid JSON");
  if (!config.is_object()) return ConfigError("the top level must be a JSON object");
  DSRT_ASSIGN_OR_RETURN(std::string source,
                        ChooseTemplate(config, std::string(template_name.data(), template_name.size())));
  DSRT_ASSIGN_OR_RETURN(SpecialTokens tokens, ReadSpecialTokens(config));
  return Parse(source, std::move(tokens));
}

template <typename Json>
absl::StatusOr<std::string> ChatTemplate::RenderJson(const Json& messages, bool add_generation_prompt,
                                                     const Json& extra_variables) const {
  DSRT_RETURN_IF_ERROR(ValidateMessages(messages));
  absl::StatusOr<Value> messages_value = FromJson(messages);
  if (!messages_value.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("messages: ", messages_value.status().message()));
  }
  Variables variables = SpecialTokenVariables(special_tokens_);
  variables.emplace_back("tools", Value::None());
  variables.emplace_back("documents", Value::None());
  DSRT_RETURN_IF_ERROR(AddExtraVariables(extra_variables, variables));
  variables.emplace_back("messages", *std::move(messages_value));
  variables.emplace_back("add_generation_prompt", Value::Bool(add_generation_prompt));
  return RenderTemplate(*template_, std::move(variables));
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& messages, bool add_generation_prompt,
                                                 const nlohmann::json& extra_variables) const {
  return RenderJson(messages, add_generation_prompt, extra_variables);
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                                 const nlohmann::ordered_json& extra_variables) const {
  return RenderJson(messages, add_generation_prompt, extra_variables);
}

}  // namespace dsrt::chat
