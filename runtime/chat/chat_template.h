// Chat templates: the Jinja template in a checkpoint's tokenizer_config.json,
// rendered exactly as Hugging Face transformers' apply_chat_template renders
// it (Jinja2 ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks
// and loop controls; the special tokens, `messages`, `add_generation_prompt`,
// `tools` and `documents` as variables; raise_exception and strftime_now as
// globals).
//
//   auto chat = dsrt::chat::ChatTemplate::FromTokenizerConfig(config_text);
//   auto prompt = (*chat)->Render(messages, /*add_generation_prompt=*/true);
//
// A construct this engine does not implement is an error naming it and its
// line:column, at Parse time where possible; it never renders wrong text
// silently. No exception leaves this API. A ChatTemplate is immutable after
// construction; Render may be called from several threads at once.
#ifndef DSRT_RUNTIME_CHAT_CHAT_TEMPLATE_H_
#define DSRT_RUNTIME_CHAT_CHAT_TEMPLATE_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace dsrt::chat {

struct Template;

// The special-token variables transformers passes to a template (its
// special_tokens_map); unset ones stay undefined in the template.
struct SpecialTokens {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> unk_token;
  std::optional<std::string> sep_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> cls_token;
  std::optional<std::string> mask_token;
  std::optional<std::vector<std::string>> additional_special_tokens;
};

class ChatTemplate {
 public:
  // Parses the template source; an error names line:column.
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> Parse(absl::string_view source);
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> Parse(absl::string_view source, SpecialTokens special_tokens);

  // From a tokenizer_config.json text: reads chat_template (a string, or a
  // list of {name, template} from which `template_name` is taken) and the
  // special tokens (strings or {"content": ...} objects).
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> FromTokenizerConfig(
      absl::string_view tokenizer_config_json, absl::string_view template_name = "default");

  ~ChatTemplate();
  ChatTemplate(const ChatTemplate&) = delete;
  ChatTemplate& operator=(const ChatTemplate&) = delete;

  // messages: a JSON array of objects with a string "role" (and usually
  // "content", "tool_calls", ...). extra_variables: a JSON object of further
  // template variables, e.g. {"tools": [...]} (tools and documents are None
  // unless given here); it may override the special tokens but not
  // `messages` or `add_generation_prompt`. Returns the prompt text.
  //
  // nlohmann::json keeps object keys sorted, so `tojson` prints them sorted;
  // pass nlohmann::ordered_json to keep the order the caller gave.
  absl::StatusOr<std::string> Render(const nlohmann::json& messages, bool add_generation_prompt,
                                     const nlohmann::json& extra_variables = nlohmann::json::object()) const;
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                     const nlohmann::ordered_json& extra_variables =
                                         nlohmann::ordered_json::object()) const;

  const std::string& source() const { return source_; }
  const SpecialTokens& special_tokens() const { return special_tokens_; }

 private:
  ChatTemplate(std::string source, std::unique_ptr<const Template> tmpl, SpecialTokens special_tokens);

  template <typename Json>
  absl::StatusOr<std::string> RenderJson(const Json& messages, bool add_generation_prompt,
                                         const Json& extra_variables) const;

  std::string source_;
  std::unique_ptr<const Template> template_;
  SpecialTokens special_tokens_;
};

}  // namespace dsrt::chat

#endif  // DSRT_RUNTIME_CHAT_CHAT_TEMPLATE_H_
