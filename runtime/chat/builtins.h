// What a template can use besides syntax: Jinja's filters and tests, Python
// operators and methods on str/list/dict, attribute and item access with the
// immutable sandbox's rules, and the globals transformers provides
// (raise_exception, strftime_now, range, namespace, dict).
//
// Errors returned here carry no position; the interpreter adds the position
// of the expression that failed.
#ifndef DSRT_RUNTIME_CHAT_BUILTINS_H_
#define DSRT_RUNTIME_CHAT_BUILTINS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/chat/value.h"

namespace dsrt::chat {

// Bounds the work of one render so that no template (or fuzzed input) can
// run away with time or memory.
class Budget {
 public:
  static constexpr int64_t kDefaultSteps = 20'000'000;
  static constexpr size_t kMaxStringBytes = size_t{64} << 20;

  explicit Budget(int64_t steps = kDefaultSteps) : remaining_(steps) {}
  absl::Status Step(int64_t units = 1);
  // Charges for building a string of `bytes` bytes and checks its size.
  absl::Status BuildString(size_t bytes);

 private:
  int64_t remaining_;
};

enum class BuiltinSupport { kSupported, kUnsupported, kUnknown };
// kUnsupported: a Jinja builtin this engine does not implement.
BuiltinSupport FilterSupport(const std::string& name);
BuiltinSupport TestSupport(const std::string& name);

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& operand, const CallArgs& args,
                                  Budget& budget);
absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& operand, const CallArgs& args);

// obj.name: Python attribute (a method) first, then the item.
absl::StatusOr<Value> GetAttribute(const Value& object, const std::string& name);
// obj[key]: the item first, then (for a string key) the attribute.
absl::StatusOr<Value> GetItem(const Value& object, const Value& key);
// obj[start:stop:step]; each bound may be None.
absl::StatusOr<Value> GetSlice(const Value& object, const Value& start, const Value& stop, const Value& step);

// The error Jinja raises when an Undefined is used for more than printing,
// testing or iterating.
absl::Status UndefinedError(const Value& undefined);

// What `for x in value` visits: items, dict keys, string characters;
// nothing for Undefined.
absl::StatusOr<std::vector<Value>> Iterate(const Value& value);

// Operators. `op` is the operator's spelling ("+", "//", "<=", "in", "notin").
absl::StatusOr<Value> BinaryOperation(const std::string& op, const Value& left, const Value& right, Budget& budget);
absl::StatusOr<bool> Compare(const std::string& op, const Value& left, const Value& right);
absl::StatusOr<Value> Negate(const Value& operand);
absl::StatusOr<Value> Positive(const Value& operand);

// range, namespace, dict, raise_exception, strftime_now.
std::vector<std::pair<std::string, Value>> MakeGlobals();

}  // namespace dsrt::chat

#endif  // DSRT_RUNTIME_CHAT_BUILTINS_H_
