#include "runtime/serve/openai_api.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"
#include "runtime/conversation.h"

namespace dsrt::runtime::serve {
namespace {

using nlohmann::json;

constexpr char kParamPayload[] = "dsrt.openai.param";

absl::Status FieldError(const std::string& param, const std::string& message,
                        absl::StatusCode code = absl::StatusCode::kInvalidArgument) {
  absl::Status status(code, message);
  status.SetPayload(kParamPayload, absl::Cord(param));
  return status;
}

// Fields dsrt reads (beyond these, per endpoint: messages or prompt).
const std::set<std::string>& SupportedFields() {
  static const std::set<std::string> fields = {
      "model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "stop",
      "stream", "stream_options", "return_token_ids", "ignore_eos", "user", "metadata"};
  return fields;
}

// Fields dsrt accepts only at their default (null always counts as the default):
// anything else would change the answer in a way dsrt does not implement.
const std::map<std::string, std::vector<json>>& DefaultOnlyFields() {
  static const std::map<std::string, std::vector<json>> fields = {
      {"n", {1}},
      {"best_of", {1}},
      {"logprobs", {false, 0}},
      {"top_logprobs", {0}},
      {"echo", {false}},
      {"suffix", {""}},
      {"presence_penalty", {0}},
      {"frequency_penalty", {0}},
      {"repetition_penalty", {1}},
      {"logit_bias", {json::object()}},
      {"tools", {json::array()}},
      {"tool_choice", {"none"}},
      {"parallel_tool_calls", {true, false}},
      {"functions", {json::array()}},
      {"function_call", {"none"}},
      {"response_format", {json{{"type", "text"}}}},
      {"store", {false}},
      {"service_tier", {"auto", "default"}},
  };
  return fields;
}

absl::Status CheckFields(const json& body, const std::string& prompt_field) {
  for (const auto& [key, value] : body.items()) {
    if (key == prompt_field || SupportedFields().count(key)) continue;
    auto known = DefaultOnlyFields().find(key);
    if (known == DefaultOnlyFields().end()) {
      return FieldError(key, absl::StrCat("unknown field '", key, "'"));
    }
    if (value.is_null()) continue;
    bool is_default = false;
    for (const json& d : known->second) is_default = is_default || value == d;
    if (!is_default) {
      return FieldError(key, absl::StrCat("'", key, "' = ", value.dump(), " is not supported by dsrt (only ",
                                          known->second.front().dump(), ")"));
    }
  }
  return absl::OkStatus();
}

bool Present(const json& body, const char* key) { return body.contains(key) && !body[key].is_null(); }

absl::StatusOr<std::optional<int64_t>> OptionalInt(const json& body, const char* key) {
  if (!Present(body, key)) return std::nullopt;
  const json& v = body[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::abs(v.get<double>()) < 9e18) {
    return static_cast<int64_t>(v.get<double>());
  }
  return FieldError(key, absl::StrCat("'", key, "' must be an integer, not ", v.dump()));
}

absl::StatusOr<std::optional<double>> OptionalNumber(const json& body, const char* key) {
  if (!Present(body, key)) return std::nullopt;
  if (!body[key].is_number()) return FieldError(key, absl::StrCat("'", key, "' must be a number, not ", body[key].dump()));
  return body[key].get<double>();
}

absl::StatusOr<bool> OptionalBool(const json& body, const char* key, bool fallback) {
  if (!Present(body, key)) return fallback;
  if (!body[key].is_boolean()) return FieldError(key, absl::StrCat("'", key, "' must be true or false, not ", body[key].dump()));
  return body[key].get<bool>();
}

absl::Status ParseModel(const json& body, const ApiModel& model) {
  if (!Present(body, "model")) return absl::OkStatus();
  if (!body["model"].is_string()) return FieldError("model", "'model' must be a string");
  const std::string name = body["model"].get<std::string>();
  if (name != model.name) {
    return FieldError("model", absl::StrCat("The model '", name, "' does not exist; this server serves '", model.name, "'"),
                      absl::StatusCode::kNotFound);
  }
  return absl::OkStatus();
}

absl::Status ParseSampling(const json& body, uint64_t default_seed, SamplingParams* sampling) {
  DSRT_ASSIGN_OR_RETURN(std::optional<double> temperature, OptionalNumber(body, "temperature"));
  DSRT_ASSIGN_OR_RETURN(std::optional<double> top_p, OptionalNumber(body, "top_p"));
  DSRT_ASSIGN_OR_RETURN(std::optional<int64_t> top_k, OptionalInt(body, "top_k"));
  DSRT_ASSIGN_OR_RETURN(std::optional<int64_t> seed, OptionalInt(body, "seed"));
  if (temperature && (*temperature < 0 || *temperature > 2)) {
    return FieldError("temperature", absl::StrCat("'temperature' ", *temperature, " is outside [0, 2]"));
  }
  if (top_p && (*top_p <= 0 || *top_p > 1)) return FieldError("top_p", absl::StrCat("'top_p' ", *top_p, " is outside (0, 1]"));
  if (top_k && *top_k < -1) return FieldError("top_k", absl::StrCat("'top_k' ", *top_k, " is below -1 (-1 or 0: all tokens)"));
  sampling->temperature = temperature.value_or(1.0);
  sampling->greedy = sampling->temperature == 0.0;
  if (sampling->greedy) sampling->temperature = 1.0;
  sampling->top_p = top_p.value_or(1.0);
  sampling->top_k = std::max<int64_t>(0, top_k.value_or(0));
  sampling->seed = seed ? static_cast<uint64_t>(*seed) : default_seed;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ParseStop(const json& body) {
  if (!Present(body, "stop")) return std::vector<std::string>{};
  const json& stop = body["stop"];
  if (stop.is_string()) return std::vector<std::string>{stop.get<std::string>()};
  if (!stop.is_array()) return FieldError("stop", "'stop' must be a string or a list of strings");
  if (stop.size() > 16) return FieldError("stop", absl::StrCat("'stop' has ", stop.size(), " strings, more than 16"));
  std::vector<std::string> stops;
  for (const json& s : stop) {
    if (!s.is_string()) return FieldError("stop", absl::StrCat("'stop' holds ", s.dump(), ", not a string"));
    stops.push_back(s.get<std::string>());
  }
  return stops;
}

absl::Status ParseStreaming(const json& body, ApiRequest* out) {
  DSRT_ASSIGN_OR_RETURN(out->stream, OptionalBool(body, "stream", false));
  DSRT_ASSIGN_OR_RETURN(out->return_token_ids, OptionalBool(body, "return_token_ids", false));
  if (!Present(body, "stream_options")) return absl::OkStatus();
  const json& options = body["stream_options"];
  if (!out->stream) return FieldError("stream_options", "'stream_options' is only allowed when 'stream' is true");
  if (!options.is_object()) return FieldError("stream_options", "'stream_options' must be an object");
  for (const auto& [key, value] : options.items()) {
    if (key != "include_usage") {
      return FieldError("stream_options." + key, absl::StrCat("unknown field 'stream_options.", key, "'"));
    }
  }
  DSRT_ASSIGN_OR_RETURN(out->include_usage, OptionalBool(options, "include_usage", false));
  return absl::OkStatus();
}

absl::StatusOr<std::string> MessageContent(const json& message, const std::string& where) {
  if (!message.contains("content") || message["content"].is_null()) return std::string();
  const json& content = message["content"];
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return FieldError(where + ".content", "'content' must be a string or a list of text parts");
  std::string text;
  for (size_t j = 0; j < content.size(); ++j) {
    const std::string part = absl::StrCat(where, ".content[", j, "]");
    const json& p = content[j];
    if (!p.is_object() || !p.contains("type") || p["type"] != "text") {
      return FieldError(part + ".type", "only content parts of type 'text' are supported");
    }
    if (!p.contains("text") || !p["text"].is_string()) return FieldError(part + ".text", "a text part needs a string 'text'");
    text += p["text"].get<std::string>();
  }
  return text;
}

// The messages as the chat template sees them: role and content strings only.
absl::StatusOr<json> ParseMessages(const json& body) {
  if (!body.contains("messages")) return FieldError("messages", "'messages' is required");
  const json& messages = body["messages"];
  if (!messages.is_array() || messages.empty()) return FieldError("messages", "'messages' must be a non-empty list");
  json normalized = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string where = absl::StrCat("messages[", i, "]");
    const json& m = messages[i];
    if (!m.is_object()) return FieldError(where, absl::StrCat(where, " must be an object"));
    for (const auto& [key, unused] : m.items()) {
      if (key != "role" && key != "content") {
        return FieldError(where + "." + key, absl::StrCat("'", where, ".", key, "' is not supported"));
      }
    }
    if (!m.contains("role") || !m["role"].is_string()) return FieldError(where + ".role", "each message needs a string 'role'");
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant") {
      return FieldError(where + ".role", absl::StrCat("role '", role, "' is not supported (system, user, assistant)"));
    }
    DSRT_ASSIGN_OR_RETURN(std::string content, MessageContent(m, where));
    normalized.push_back({{"role", role}, {"content", content}});
  }
  return normalized;
}

absl::StatusOr<std::vector<int32_t>> ChatPromptIds(const json& body, const ApiModel& model) {
  DSRT_ASSIGN_OR_RETURN(json messages, ParseMessages(body));
  if (model.chat_template == nullptr || model.tokenizer == nullptr) {
    return FieldError("messages", "the engine carries no chat template and tokenizer: use /v1/completions with token ids");
  }
  absl::StatusOr<ChatPrompt> prompt = RenderChat(*model.chat_template, *model.tokenizer, messages, true);
  if (!prompt.ok()) return FieldError("messages", absl::StrCat("chat template: ", prompt.status().message()));
  return prompt->ids;
}

absl::StatusOr<std::vector<int32_t>> IdsFromJson(const json& ids, const ApiModel& model) {
  std::vector<int32_t> out;
  for (const json& id : ids) {
    if (!id.is_number_integer()) return FieldError("prompt", absl::StrCat("'prompt' holds ", id.dump(), ", not a token id"));
    const int64_t v = id.get<int64_t>();
    if (v < 0 || v >= model.vocab_size) {
      return FieldError("prompt", absl::StrCat("token id ", v, " is outside the vocabulary [0, ", model.vocab_size, ")"));
    }
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> TextPromptIds(const std::string& text, const ApiModel& model) {
  if (model.tokenizer == nullptr) return FieldError("prompt", "the engine carries no tokenizer: give the prompt as token ids");
  absl::StatusOr<std::vector<int32_t>> ids = model.tokenizer->Encode(text, /*add_special_tokens=*/true);
  if (!ids.ok()) return FieldError("prompt", absl::StrCat("tokenizer: ", ids.status().message()));
  return *ids;
}

// A completion prompt: text, token ids, or a list holding one of those.
absl::StatusOr<std::vector<int32_t>> CompletionPromptIds(const json& body, const ApiModel& model) {
  if (!body.contains("prompt")) return FieldError("prompt", "'prompt' is required");
  const json& prompt = body["prompt"];
  if (prompt.is_string()) return TextPromptIds(prompt.get<std::string>(), model);
  if (!prompt.is_array() || prompt.empty()) {
    return FieldError("prompt", "'prompt' must be a string, a list of token ids, or a list holding one of those");
  }
  if (prompt[0].is_number_integer()) return IdsFromJson(prompt, model);
  if (prompt.size() > 1) return FieldError("prompt", "dsrt serves one prompt a request: 'prompt' holds several");
  if (prompt[0].is_string()) return TextPromptIds(prompt[0].get<std::string>(), model);
  if (prompt[0].is_array()) return IdsFromJson(prompt[0], model);
  return FieldError("prompt", absl::StrCat("'prompt' holds ", prompt[0].dump(), ", not text or token ids"));
}

absl::StatusOr<int64_t> ParseMaxTokens(const json& body, const ApiModel& model) {
  DSRT_ASSIGN_OR_RETURN(std::optional<int64_t> max_tokens, OptionalInt(body, "max_tokens"));
  DSRT_ASSIGN_OR_RETURN(std::optional<int64_t> max_completion, OptionalInt(body, "max_completion_tokens"));
  const char* field = max_completion ? "max_completion_tokens" : "max_tokens";
  const std::optional<int64_t> value = max_completion ? max_completion : max_tokens;
  if (!value) return model.max_seq_len;  // generation ends at the context's end ("length")
  if (*value <= 0) return FieldError(field, absl::StrCat("'", field, "' must be positive, not ", *value));
  return *value;
}

}  // namespace

json ApiError::ToJson() const {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

ApiError ToApiError(const absl::Status& status) {
  ApiError error;
  error.message = std::string(status.message());
  if (auto param = status.GetPayload(kParamPayload)) error.param = std::string(*param);
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      error.http_status = 400;
      break;
    case absl::StatusCode::kNotFound:
      error.http_status = 404;
      if (error.param == "model") error.code = "model_not_found";
      break;
    case absl::StatusCode::kUnauthenticated:
      error.http_status = 401;
      error.code = "invalid_api_key";
      break;
    case absl::StatusCode::kResourceExhausted:
      error.http_status = 429;
      error.type = "rate_limit_error";
      break;
    case absl::StatusCode::kUnavailable:
      error.http_status = 503;
      error.type = "server_error";
      break;
    default:
      error.http_status = 500;
      error.type = "server_error";
  }
  return error;
}

absl::StatusOr<ApiRequest> ParseApiRequest(Endpoint endpoint, const std::string& body_text, const ApiModel& model,
                                           uint64_t default_seed) {
  const json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return absl::InvalidArgumentError("the request body is not valid JSON");
  if (!body.is_object()) return absl::InvalidArgumentError("the request body must be a JSON object");
  const bool chat = endpoint == Endpoint::kChatCompletions;
  const std::string prompt_field = chat ? "messages" : "prompt";
  DSRT_RETURN_IF_ERROR(CheckFields(body, prompt_field));
  DSRT_RETURN_IF_ERROR(ParseModel(body, model));
  if (Present(body, "user") && !body["user"].is_string()) return FieldError("user", "'user' must be a string");

  ApiRequest out;
  out.endpoint = endpoint;
  DSRT_RETURN_IF_ERROR(ParseStreaming(body, &out));
  DSRT_RETURN_IF_ERROR(ParseSampling(body, default_seed, &out.request.sampling));
  DSRT_ASSIGN_OR_RETURN(out.request.stop, ParseStop(body));
  DSRT_ASSIGN_OR_RETURN(out.request.max_tokens, ParseMaxTokens(body, model));
  DSRT_ASSIGN_OR_RETURN(const bool ignore_eos, OptionalBool(body, "ignore_eos", false));
  out.request.stop_at_eos = !ignore_eos;
  if (!out.request.stop.empty() && model.tokenizer == nullptr) {
    return FieldError("stop", "stop strings need a tokenizer, and the engine carries none");
  }
  DSRT_ASSIGN_OR_RETURN(out.request.prompt, chat ? ChatPromptIds(body, model) : CompletionPromptIds(body, model));
  if (out.request.prompt.empty()) return FieldError(prompt_field, "the prompt is empty");
  if (static_cast<int64_t>(out.request.prompt.size()) > model.max_seq_len) {
    return FieldError(prompt_field, absl::StrCat("the prompt has ", out.request.prompt.size(),
                                                 " tokens, more than the model's maximum context length of ",
                                                 model.max_seq_len, " tokens"));
  }
  return out;
}

json Usage(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {

json Envelope(const ApiAnswer& answer, const char* object) {
  return {{"id", answer.id}, {"object", object}, {"created", answer.created}, {"model", answer.model}};
}

json FinishReason(const std::string& reason) { return reason.empty() ? json(nullptr) : json(reason); }

}  // namespace

json FullResponse(Endpoint endpoint, const ApiAnswer& answer, const std::string& text,
                  const std::vector<int32_t>& token_ids, bool with_token_ids, const std::string& finish_reason,
                  int64_t prompt_tokens, int64_t completion_tokens) {
  const bool chat = endpoint == Endpoint::kChatCompletions;
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", FinishReason(finish_reason)}};
  if (chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
  else choice["text"] = text;
  if (with_token_ids) choice["token_ids"] = token_ids;
  json response = Envelope(answer, chat ? "chat.completion" : "text_completion");
  response["choices"] = json::array({choice});
  response["usage"] = Usage(prompt_tokens, completion_tokens);
  return response;
}

json StreamChunk(Endpoint endpoint, const ApiAnswer& answer, const std::string& text, bool first,
                 const std::string& finish_reason, bool include_usage, const std::vector<int32_t>& token_ids,
                 bool with_token_ids) {
  const bool chat = endpoint == Endpoint::kChatCompletions;
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", FinishReason(finish_reason)}};
  if (chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || first) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  if (with_token_ids) choice["token_ids"] = token_ids;
  json chunk = Envelope(answer, chat ? "chat.completion.chunk" : "text_completion");
  chunk["choices"] = json::array({choice});
  if (include_usage) chunk["usage"] = nullptr;
  return chunk;
}

json UsageChunk(Endpoint endpoint, const ApiAnswer& answer, int64_t prompt_tokens, int64_t completion_tokens) {
  json chunk = Envelope(answer, endpoint == Endpoint::kChatCompletions ? "chat.completion.chunk" : "text_completion");
  chunk["choices"] = json::array();
  chunk["usage"] = Usage(prompt_tokens, completion_tokens);
  return chunk;
}

json ModelList(const ApiModel& model, int64_t created) {
  json entry = {{"id", model.name}, {"object", "model"}, {"created", created}, {"owned_by", "dsrt"},
                {"max_model_len", model.max_seq_len}, {"vocab_size", model.vocab_size}};
  return {{"object", "list"}, {"data", json::array({entry})}};
}

std::string DumpJson(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace dsrt::runtime::serve
