// The values a chat template computes with: Python's None, bool, int, float,
// str, list, tuple and dict, plus Jinja's Undefined, namespace() objects and
// callables. Lists and dicts are immutable once built (transformers renders in
// an ImmutableSandboxedEnvironment), so copies share their contents; only a
// namespace is mutable, through `{% set ns.attr = ... %}`.
#ifndef DSRT_RUNTIME_CHAT_VALUE_H_
#define DSRT_RUNTIME_CHAT_VALUE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace dsrt::chat {

class Value;

// Python's sequence types. Lists and tuples are plain data; the others exist
// so that a template sees what Jinja would give it: a generator from |map or
// |select is always true, has no len() and can be iterated once;
// dict.items() prints as dict_items([...]); range(3) prints as range(0, 3).
enum class SequenceKind { kList, kTuple, kGenerator, kReverseIterator, kDictKeys, kDictValues, kDictItems, kRange };

struct ListData {
  std::vector<Value> items;
  SequenceKind kind = SequenceKind::kList;
  std::string range_repr;         // kRange: "range(0, 3)"
  mutable bool consumed = false;  // kGenerator, kReverseIterator: already iterated
  int depth = 1;                  // nesting depth, to bound recursion
  bool holds_namespace = false;   // a namespace somewhere inside
};

// Keys keep their insertion order, as Python dicts do.
struct DictData {
  std::vector<std::pair<std::string, Value>> entries;
  std::string type_name;  // "dict", "Namespace" or "LoopContext"
  int depth = 1;
  bool holds_namespace = false;

  const Value* Find(const std::string& key) const;
  void Set(const std::string& key, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

using NativeFunction = std::function<absl::StatusOr<Value>(const CallArgs&)>;

struct FunctionData {
  std::string name;
  NativeFunction call;
  // Errors of macros already name their position, and raise_exception's
  // message is the template author's; neither gets the call site prefixed.
  bool errors_verbatim = false;
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kFunction };

  Value() = default;  // Undefined without a hint
  static Value Undefined(std::string hint);
  static Value None();
  static Value Bool(bool value);
  static Value Int(int64_t value);
  static Value Float(double value);
  static Value String(std::string value);
  // A str marked safe (markupsafe.Markup, from |safe or |escape). Combining
  // it with `+` escapes the other operand in Jinja; see builtins.
  static Value Markup(std::string value);
  static Value List(std::vector<Value> items);
  static Value Tuple(std::vector<Value> items);
  static Value Sequence(std::vector<Value> items, SequenceKind kind, std::string range_repr = "");
  static Value Dict(std::vector<std::pair<std::string, Value>> entries);
  // A namespace() object (type_name "Namespace") or a read-only loop object.
  static Value Namespace(std::vector<std::pair<std::string, Value>> entries,
                         std::string type_name = "Namespace");
  static Value Function(std::string name, NativeFunction call, bool errors_verbatim = false);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_markup() const { return kind_ == Kind::kString && markup_; }
  bool is_list() const { return kind_ == Kind::kList; }  // any SequenceKind
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_function() const { return kind_ == Kind::kFunction; }
  // int, float or bool (bool is an int in Python).
  bool is_number() const { return is_int() || is_float() || is_bool(); }

  bool boolean() const { return std::get<bool>(data_); }
  int64_t integer() const { return std::get<int64_t>(data_); }
  double floating() const { return std::get<double>(data_); }
  const std::string& string() const { return *std::get<std::shared_ptr<const std::string>>(data_); }
  const std::string& undefined_hint() const;
  const std::vector<Value>& items() const { return list().items; }
  SequenceKind sequence_kind() const { return list().kind; }
  bool is_tuple() const { return is_list() && list().kind == SequenceKind::kTuple; }
  // A list or tuple: indexable, sliceable, JSON-serializable data.
  bool is_plain_sequence() const {
    return is_list() && (list().kind == SequenceKind::kList || list().kind == SequenceKind::kTuple);
  }
  // A generator or reverse iterator: always true, no len(), one pass.
  bool is_iterator() const {
    return is_list() && (list().kind == SequenceKind::kGenerator || list().kind == SequenceKind::kReverseIterator);
  }
  const ListData& list() const { return *std::get<std::shared_ptr<const ListData>>(data_); }
  const DictData& dict() const { return *std::get<std::shared_ptr<DictData>>(data_); }
  DictData& mutable_namespace() const { return *std::get<std::shared_ptr<DictData>>(data_); }
  const FunctionData& function() const { return *std::get<std::shared_ptr<const FunctionData>>(data_); }

  // Bool or int as int64 (Python treats True as 1).
  int64_t AsInt() const { return is_bool() ? (boolean() ? 1 : 0) : integer(); }
  // Any number as double.
  double AsDouble() const;

  int Depth() const;
  bool HoldsNamespace() const;
  // True when both refer to the same namespace or function object.
  bool SameObject(const Value& other) const;

 private:
  // Strings are shared too: templates pass message contents around a lot.
  using Data = std::variant<std::monostate, bool, int64_t, double, std::shared_ptr<const std::string>,
                            std::shared_ptr<const ListData>, std::shared_ptr<DictData>,
                            std::shared_ptr<const FunctionData>>;
  Value(Kind kind, Data data) : kind_(kind), data_(std::move(data)) {}

  Kind kind_ = Kind::kUndefined;
  bool markup_ = false;
  Data data_;
};

// Python's type name: "NoneType", "str", "dict", ...
std::string TypeName(const Value& value);
// Jinja's description of an object in undefined-value messages: "dict object", "None".
std::string ObjectDescription(const Value& value);

// Python truthiness (Undefined is false).
bool Truthy(const Value& value);
// Python ==, plus Undefined == Undefined.
bool Equals(const Value& a, const Value& b);

// str(value) as Jinja prints it: Undefined prints as "".
std::string ToStr(const Value& value);
// repr(value).
std::string ToRepr(const Value& value);

struct JsonOptions {
  bool ensure_ascii = false;
  bool sort_keys = false;
  int indent = -1;            // < 0: no newlines
  std::string indent_string;  // used when indent was given as a string
  bool indent_given = false;
  std::string item_separator = ", ";
  std::string key_separator = ": ";
};
// json.dumps(value, ...) as Python writes it; an error for values JSON cannot hold.
absl::StatusOr<std::string> ToJson(const Value& value, const JsonOptions& options);

// JSON (sorted or insertion-ordered objects) to a Value, and back.
absl::StatusOr<Value> FromJson(const nlohmann::json& json);
absl::StatusOr<Value> FromJson(const nlohmann::ordered_json& json);

}  // namespace dsrt::chat

#endif  // DSRT_RUNTIME_CHAT_VALUE_H_
