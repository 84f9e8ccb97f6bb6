// Binding Python-style call arguments (positional, then keyword, then
// defaults) for builtin filters, tests, methods and globals.
#ifndef DSRT_RUNTIME_CHAT_CALL_ARGS_H_
#define DSRT_RUNTIME_CHAT_CALL_ARGS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "runtime/chat/value.h"

namespace dsrt::chat {

struct Param {
  const char* name;
  std::optional<Value> default_value;  // nullopt: required
};

// The arguments in `params` order, defaults filled in; errors as Python's
// TypeError words them.
inline absl::StatusOr<std::vector<Value>> BindArgs(const std::string& function, const CallArgs& args,
                                                   const std::vector<Param>& params) {
  if (args.positional.size() > params.size()) {
    return absl::InvalidArgumentError(absl::StrCat(function, "() takes at most ", params.size(), " argument(s) (",
                                                   args.positional.size(), " given)"));
  }
  std::vector<std::optional<Value>> bound(params.size());
  for (size_t i = 0; i < args.positional.size(); ++i) bound[i] = args.positional[i];
  for (const auto& [key, value] : args.keyword) {
    size_t index = 0;
    while (index < params.size() && key != params[index].name) ++index;
    if (index == params.size()) {
      return absl::InvalidArgumentError(absl::StrCat(function, "() got an unexpected keyword argument '", key, "'"));
    }
    if (bound[index].has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(function, "() got multiple values for argument '", key, "'"));
    }
    bound[index] = value;
  }
  std::vector<Value> values;
  values.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    if (bound[i].has_value()) {
      values.push_back(*bound[i]);
    } else if (params[i].default_value.has_value()) {
      values.push_back(*params[i].default_value);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(function, "() missing required argument '", params[i].name, "'"));
    }
  }
  return values;
}

inline absl::Status TypeError(const std::string& message) { return absl::InvalidArgumentError(message); }

inline absl::Status ExpectArgType(const std::string& function, const char* param, const Value& value,
                                  bool ok, const char* expected) {
  if (ok) return absl::OkStatus();
  return TypeError(absl::StrCat(function, "() argument '", param, "' must be ", expected, ", not ",
                                TypeName(value)));
}

}  // namespace dsrt::chat

#endif  // DSRT_RUNTIME_CHAT_CALL_ARGS_H_
