// Global functions: Jinja's range, namespace and dict, and the two that
// transformers adds for chat templates, raise_exception and strftime_now.
#include <ctime>

#include "absl/strings/str_cat.h"
#include "runtime/chat/builtins.h"
#include "runtime/chat/call_args.h"

namespace dsrt::chat {
namespace {

// Jinja's sandbox refuses larger ranges (MAX_RANGE).
constexpr int64_t kMaxRange = 100000;

absl::StatusOr<Value> Range(const CallArgs& args) {
  if (!args.keyword.empty()) return TypeError("range() takes no keyword arguments");
  if (args.positional.empty() || args.positional.size() > 3) {
    return TypeError(absl::StrCat("range expected 1 to 3 arguments, got ", args.positional.size()));
  }
  for (const Value& arg : args.positional) {
    if (!arg.is_int() && !arg.is_bool()) {
      return TypeError(absl::StrCat("'", TypeName(arg), "' object cannot be interpreted as an integer"));
    }
  }
  const bool single = args.positional.size() == 1;
  const int64_t start = single ? 0 : args.positional[0].AsInt();
  const int64_t stop = single ? args.positional[0].AsInt() : args.positional[1].AsInt();
  const int64_t step = args.positional.size() == 3 ? args.positional[2].AsInt() : 1;
  if (step == 0) return absl::InvalidArgumentError("range() arg 3 must not be zero");
  // Lengths in long double so that extreme bounds cannot overflow.
  const long double span = static_cast<long double>(stop) - static_cast<long double>(start);
  const long double length = span / step;
  if (length > kMaxRange) {
    return absl::OutOfRangeError(
        absl::StrCat("Range too big. The sandbox blocks ranges larger than MAX_RANGE (", kMaxRange, ")."));
  }
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
    items.push_back(Value::Int(i));
    if (__builtin_add_overflow(i, step, &i)) break;
  }
  std::string repr = absl::StrCat("range(", start, ", ", stop);
  if (step != 1) absl::StrAppend(&repr, ", ", step);
  return Value::Sequence(std::move(items), SequenceKind::kRange, repr + ")");
}

// dict(mapping, **kwargs) / namespace(mapping, **kwargs).
absl::StatusOr<std::vector<std::pair<std::string, Value>>> MappingArguments(const char* name, const CallArgs& args) {
  if (args.positional.size() > 1) {
    return TypeError(absl::StrCat(name, " expected at most 1 positional argument, got ", args.positional.size()));
  }
  std::vector<std::pair<std::string, Value>> entries;
  if (!args.positional.empty()) {
    const Value& mapping = args.positional[0];
    if (!mapping.is_dict()) return TypeError(absl::StrCat(name, "() argument must be a mapping, not ", TypeName(mapping)));
    entries = mapping.dict().entries;
  }
  for (const auto& [key, value] : args.keyword) {
    bool replaced = false;
    for (auto& entry : entries) {
      if (entry.first == key) entry.second = value, replaced = true;
    }
    if (!replaced) entries.emplace_back(key, value);
  }
  return entries;
}

absl::StatusOr<Value> MakeNamespace(const CallArgs& args) {
  absl::StatusOr<std::vector<std::pair<std::string, Value>>> entries = MappingArguments("namespace", args);
  if (!entries.ok()) return entries.status();
  for (const auto& entry : *entries) {
    // Namespaces inside namespaces could form cycles; no chat template needs them.
    if (entry.second.HoldsNamespace()) {
      return absl::UnimplementedError("a namespace holding another namespace is not supported");
    }
  }
  return Value::Namespace(*std::move(entries));
}

absl::StatusOr<Value> MakeDict(const CallArgs& args) {
  absl::StatusOr<std::vector<std::pair<std::string, Value>>> entries = MappingArguments("dict", args);
  if (!entries.ok()) return entries.status();
  return Value::Dict(*std::move(entries));
}

absl::StatusOr<Value> RaiseException(const CallArgs& args) {
  absl::StatusOr<std::vector<Value>> bound = BindArgs("raise_exception", args, {{"message", std::nullopt}});
  if (!bound.ok()) return bound.status();
  return absl::InvalidArgumentError(ToStr((*bound)[0]));
}

absl::StatusOr<Value> StrftimeNow(const CallArgs& args) {
  absl::StatusOr<std::vector<Value>> bound = BindArgs("strftime_now", args, {{"format", std::nullopt}});
  if (!bound.ok()) return bound.status();
  const Value& format = (*bound)[0];
  if (!format.is_string()) return TypeError("strftime_now() format must be a string");
  if (format.string().empty()) return Value::String("");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::string buffer(format.string().size() * 8 + 256, '\0');
  const size_t length = std::strftime(buffer.data(), buffer.size(), format.string().c_str(), &local);
  if (length == 0) return absl::InvalidArgumentError("strftime_now() could not format the date with that format");
  buffer.resize(length);
  return Value::String(std::move(buffer));
}

}  // namespace

std::vector<std::pair<std::string, Value>> MakeGlobals() {
  return {
      {"range", Value::Function("range", Range)},
      {"namespace", Value::Function("namespace", MakeNamespace)},
      {"dict", Value::Function("dict", MakeDict)},
      {"raise_exception", Value::Function("raise_exception", RaiseException, /*errors_verbatim=*/true)},
      {"strftime_now", Value::Function("strftime_now", StrftimeNow)},
  };
}

}  // namespace dsrt::chat
