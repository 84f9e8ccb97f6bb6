// Jinja parser: tokens → Template. Follows Jinja2's grammar and operator
// precedence (filters and `is` tests bind tighter than arithmetic; `not`
// binds looser than comparisons). Unknown or unsupported tags, filters and
// tests are rejected here, each error naming line:column.
#ifndef DSRT_RUNTIME_CHAT_PARSER_H_
#define DSRT_RUNTIME_CHAT_PARSER_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "runtime/chat/ast.h"

namespace dsrt::chat {

absl::StatusOr<std::unique_ptr<Template>> ParseTemplate(std::string_view source);

}  // namespace dsrt::chat

#endif  // DSRT_RUNTIME_CHAT_PARSER_H_
