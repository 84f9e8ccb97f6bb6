// Renders a parsed template with Jinja's semantics: scoping (a for loop body
// and a macro call get their own variables; if does not), loop objects,
// loop controls, macros, namespaces, and Undefined for missing names.
#ifndef DSRT_RUNTIME_CHAT_INTERPRETER_H_
#define DSRT_RUNTIME_CHAT_INTERPRETER_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/chat/ast.h"
#include "runtime/chat/value.h"

namespace dsrt::chat {

// `variables` are the template's context (messages, bos_token, ...); the
// globals (range, namespace, raise_exception, ...) are added here.
absl::StatusOr<std::string> RenderTemplate(const Template& tmpl,
                                           std::vector<std::pair<std::string, Value>> variables);

}  // namespace dsrt::chat

#endif  // DSRT_RUNTIME_CHAT_INTERPRETER_H_
