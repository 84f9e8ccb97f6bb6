// Jinja lexer with the settings transformers uses for chat templates:
// trim_blocks and lstrip_blocks on, keep_trailing_newline off, `{{ }}`,
// `{% %}` and `{# #}` delimiters with `-` / `+` whitespace control.
//
// Whitespace control is resolved here, as Jinja's own lexer does, so the
// parser only sees text tokens with their final content.
#ifndef DSRT_RUNTIME_CHAT_LEXER_H_
#define DSRT_RUNTIME_CHAT_LEXER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dsrt::chat {

// 1-based line and column (in code points) of the normalized template text.
struct SourcePos {
  int line = 0;
  int column = 0;
};

// An error that names the template position: "chat template 3:14: message".
absl::Status ErrorAt(SourcePos pos, absl::StatusCode code, const std::string& message);
inline absl::Status SyntaxErrorAt(SourcePos pos, const std::string& message) {
  return ErrorAt(pos, absl::StatusCode::kInvalidArgument, message);
}

enum class TokenKind {
  kText,           // literal template text (already whitespace-controlled)
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,  // text holds the decoded value
  kInteger,
  kFloat,
  kOperator,  // text holds the operator: "+", "//", "(", ...
  kEnd,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string text;
  SourcePos pos;
  int64_t int_value = 0;
  double float_value = 0;
};

// Splits a template into tokens; the last one is kEnd. Errors (an unclosed
// tag, comment or string, an unexpected character, unbalanced brackets)
// name the line and column.
absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source);

// What a human reads for a token in an error message: "'endif'", "end of statement block".
std::string DescribeToken(const Token& token);

}  // namespace dsrt::chat

#endif  // DSRT_RUNTIME_CHAT_LEXER_H_
