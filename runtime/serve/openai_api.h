#ifndef DSRT_RUNTIME_SERVE_OPENAI_API_H_
#define DSRT_RUNTIME_SERVE_OPENAI_API_H_

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "runtime/chat/chat_template.h"
#include "runtime/serve/request.h"
#include "runtime/text/tokenizer.h"

namespace dsrt::runtime::serve {

// OpenAI's two generation endpoints, as dsrt implements them.
enum class Endpoint { kChatCompletions, kCompletions };

// What a request body turns into: the scheduler's request and how to answer.
struct ApiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  Request request;
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool return_token_ids = false;  // vLLM's extension: choices[].token_ids
};

// What the server knows about its one model.
struct ApiModel {
  std::string name;
  int64_t max_seq_len = 0;
  int64_t vocab_size = 0;
  const text::Tokenizer* tokenizer = nullptr;        // nullptr: prompts only as token ids
  const chat::ChatTemplate* chat_template = nullptr;  // nullptr: no chat endpoint
};

// An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending field; empty: none
  std::string code;   // empty: none
  nlohmann::json ToJson() const;
};

// The ApiError a Status stands for: its message, an HTTP status from its code, and
// the field it names (attached by the parser).
ApiError ToApiError(const absl::Status& status);

// Parses a /v1/chat/completions or /v1/completions body. Every field OpenAI defines
// is either honoured or refused with an error naming it; unknown fields are refused.
// vLLM's extensions `return_token_ids` and `ignore_eos` (generate past the
// end-of-sequence token, for benchmarks that need exact output lengths) are honoured.
// `default_seed` seeds sampling when the body gives no seed.
absl::StatusOr<ApiRequest> ParseApiRequest(Endpoint endpoint, const std::string& body, const ApiModel& model,
                                           uint64_t default_seed);

// The response bodies and stream chunks. `id` is "chatcmpl-..." or "cmpl-...".
struct ApiAnswer {
  std::string id;
  int64_t created = 0;
  std::string model;
};
nlohmann::json Usage(int64_t prompt_tokens, int64_t completion_tokens);
nlohmann::json FullResponse(Endpoint endpoint, const ApiAnswer& answer, const std::string& text,
                            const std::vector<int32_t>& token_ids, bool with_token_ids,
                            const std::string& finish_reason, int64_t prompt_tokens, int64_t completion_tokens);
// One streamed chunk: `text` (and, for chat, the role on the first); finish_reason
// empty until the last. With include_usage every chunk carries "usage": null.
nlohmann::json StreamChunk(Endpoint endpoint, const ApiAnswer& answer, const std::string& text, bool first,
                           const std::string& finish_reason, bool include_usage,
                           const std::vector<int32_t>& token_ids, bool with_token_ids);
// The chunk after the last one when include_usage: no choices, the usage.
nlohmann::json UsageChunk(Endpoint endpoint, const ApiAnswer& answer, int64_t prompt_tokens,
                          int64_t completion_tokens);
// The model's entry carries vLLM's `max_model_len` and dsrt's `vocab_size` (the
// token ids a prompt may hold; `dsrt bench-serve` draws random prompts from them).
nlohmann::json ModelList(const ApiModel& model, int64_t created);

// JSON text that is valid even if a string holds invalid UTF-8 (replaced by U+FFFD).
std::string DumpJson(const nlohmann::json& value);

}  // namespace dsrt::runtime::serve

#endif  // DSRT_RUNTIME_SERVE_OPENAI_API_H_
