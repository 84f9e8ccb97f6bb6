#include "runtime/chat/value.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/chat/py_string.h"

namespace dsrt::chat {
namespace {

constexpr int kMaxJsonInputDepth = 200;
// repr() and json.dumps() stop descending here; values are never this deep
// unless a namespace refers to itself through a loop object.
constexpr int kMaxPrintDepth = 600;

template <typename Container>
void ComputeShape(const Container& children, int& depth, bool& holds_namespace) {
  depth = 1;
  holds_namespace = false;
  for (const Value& child : children) {
    depth = std::max(depth, child.Depth() + 1);
    holds_namespace = holds_namespace || child.HoldsNamespace();
  }
}

std::vector<Value> EntryValues(const std::vector<std::pair<std::string, Value>>& entries) {
  std::vector<Value> values;
  values.reserve(entries.size());
  for (const auto& entry : entries) values.push_back(entry.second);
  return values;
}

std::string Join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return out;
}

std::string ReprAt(const Value& value, int depth);

std::string ListRepr(const Value& value, int depth) {
  switch (value.sequence_kind()) {
    case SequenceKind::kGenerator:
    case SequenceKind::kReverseIterator: return "<" + TypeName(value) + " object>";
    case SequenceKind::kRange: return value.list().range_repr;
    default: break;
  }
  std::vector<std::string> parts;
  for (const Value& item : value.items()) parts.push_back(ReprAt(item, depth + 1));
  const std::string list = "[" + Join(parts, ", ") + "]";
  switch (value.sequence_kind()) {
    case SequenceKind::kList: return list;
    case SequenceKind::kTuple: return parts.size() == 1 ? "(" + parts[0] + ",)" : "(" + Join(parts, ", ") + ")";
    default: return TypeName(value) + "(" + list + ")";  // dict_items([...])
  }
}

std::string DictRepr(const DictData& dict, int depth) {
  std::vector<std::string> parts;
  for (const auto& [key, item] : dict.entries) parts.push_back(PyStrRepr(key) + ": " + ReprAt(item, depth + 1));
  return "{" + Join(parts, ", ") + "}";
}

std::string ReprAt(const Value& value, int depth) {
  if (depth > kMaxPrintDepth) return "...";
  switch (value.kind()) {
    case Value::Kind::kUndefined: return "Undefined";
    case Value::Kind::kString:
      return value.is_markup() ? "Markup(" + PyStrRepr(value.string()) + ")" : PyStrRepr(value.string());
    case Value::Kind::kList: return ListRepr(value, depth);
    case Value::Kind::kDict: return DictRepr(value.dict(), depth);
    case Value::Kind::kNamespace: {
      const DictData& ns = value.dict();
      if (ns.type_name == "LoopContext") {
        const Value* index = ns.Find("index");
        const Value* length = ns.Find("length");
        if (index == nullptr || length == nullptr) return "<LoopContext>";
        return "<LoopContext " + ToStr(*index) + "/" + ToStr(*length) + ">";
      }
      return "<Namespace " + DictRepr(ns, depth) + ">";
    }
    case Value::Kind::kFunction: return "<function " + value.function().name + ">";
    default: return ToStr(value);
  }
}

class JsonWriter {
 public:
  explicit JsonWriter(const JsonOptions& options) : options_(options) {}

  absl::Status Write(const Value& value, int level) {
    if (level > kMaxPrintDepth) return absl::InvalidArgumentError("Circular reference detected");
    switch (value.kind()) {
      case Value::Kind::kNone: out_ += "null"; return absl::OkStatus();
      case Value::Kind::kBool: out_ += value.boolean() ? "true" : "false"; return absl::OkStatus();
      case Value::Kind::kInt: out_ += std::to_string(value.integer()); return absl::OkStatus();
      case Value::Kind::kFloat: out_ += FloatText(value.floating()); return absl::OkStatus();
      case Value::Kind::kString: out_ += PyJsonString(value.string(), options_.ensure_ascii); return absl::OkStatus();
      case Value::Kind::kList:
        if (!value.is_plain_sequence()) break;
        return WriteList(value.items(), level);
      case Value::Kind::kDict: return WriteDict(value.dict(), level);
      default: break;
    }
    return absl::InvalidArgumentError(absl::StrCat("Object of type ", TypeName(value), " is not JSON serializable"));
  }

  std::string Take() { return std::move(out_); }

 private:
  static std::string FloatText(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value < 0 ? "-Infinity" : "Infinity";
    return PyFloatRepr(value);
  }

  void NewLine(int level) {
    if (!options_.indent_given) return;
    out_ += '\n';
    for (int i = 0; i < level; ++i) out_ += options_.indent_string;
  }

  absl::Status WriteList(const std::vector<Value>& items, int level) {
    if (items.empty()) {
      out_ += "[]";
      return absl::OkStatus();
    }
    out_ += '[';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out_ += options_.item_separator;
      NewLine(level + 1);
      absl::Status status = Write(items[i], level + 1);
      if (!status.ok()) return status;
    }
    NewLine(level);
    out_ += ']';
    return absl::OkStatus();
  }

  absl::Status WriteDict(const DictData& dict, int level) {
    if (dict.entries.empty()) {
      out_ += "{}";
      return absl::OkStatus();
    }
    std::vector<const std::pair<std::string, Value>*> entries;
    for (const auto& entry : dict.entries) entries.push_back(&entry);
    if (options_.sort_keys) {
      std::stable_sort(entries.begin(), entries.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
    }
    out_ += '{';
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) out_ += options_.item_separator;
      NewLine(level + 1);
      out_ += PyJsonString(entries[i]->first, options_.ensure_ascii);
      out_ += options_.key_separator;
      absl::Status status = Write(entries[i]->second, level + 1);
      if (!status.ok()) return status;
    }
    NewLine(level);
    out_ += '}';
    return absl::OkStatus();
  }

  const JsonOptions& options_;
  std::string out_;
};

template <typename Json>
absl::StatusOr<Value> ConvertJson(const Json& json, int depth) {
  if (depth > kMaxJsonInputDepth) {
    return absl::InvalidArgumentError(absl::StrCat("JSON nested deeper than ", kMaxJsonInputDepth, " levels"));
  }
  switch (json.type()) {
    case Json::value_t::null: return Value::None();
    case Json::value_t::boolean: return Value::Bool(json.template get<bool>());
    case Json::value_t::number_integer: return Value::Int(json.template get<int64_t>());
    case Json::value_t::number_unsigned: {
      const uint64_t value = json.template get<uint64_t>();
      if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return absl::InvalidArgumentError(absl::StrCat("integer ", value, " is too large (more than 64-bit signed)"));
      }
      return Value::Int(static_cast<int64_t>(value));
    }
    case Json::value_t::number_float: return Value::Float(json.template get<double>());
    case Json::value_t::string: return Value::String(json.template get_ref<const std::string&>());
    case Json::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const Json& item : json) {
        absl::StatusOr<Value> converted = ConvertJson(item, depth + 1);
        if (!converted.ok()) return converted.status();
        items.push_back(*std::move(converted));
      }
      return Value::List(std::move(items));
    }
    case Json::value_t::object: {
      std::vector<std::pair<std::string, Value>> entries;
      entries.reserve(json.size());
      for (auto it = json.begin(); it != json.end(); ++it) {
        absl::StatusOr<Value> converted = ConvertJson(it.value(), depth + 1);
        if (!converted.ok()) return converted.status();
        entries.emplace_back(it.key(), *std::move(converted));
      }
      return Value::Dict(std::move(entries));
    }
    default: return absl::InvalidArgumentError("JSON binary values are not supported");
  }
}

}  // namespace

const Value* DictData::Find(const std::string& key) const {
  for (const auto& entry : entries) {
    if (entry.first == key) return &entry.second;
  }
  return nullptr;
}

void DictData::Set(const std::string& key, Value value) {
  for (auto& entry : entries) {
    if (entry.first == key) {
      entry.second = std::move(value);
      return;
    }
  }
  entries.emplace_back(key, std::move(value));
}

Value Value::Undefined(std::string hint) {
  return Value(Kind::kUndefined, std::make_shared<const std::string>(std::move(hint)));
}
Value Value::None() { return Value(Kind::kNone, std::monostate()); }
Value Value::Bool(bool value) { return Value(Kind::kBool, value); }
Value Value::Int(int64_t value) { return Value(Kind::kInt, value); }
Value Value::Float(double value) { return Value(Kind::kFloat, value); }
Value Value::String(std::string value) {
  return Value(Kind::kString, std::make_shared<const std::string>(std::move(value)));
}

Value Value::Markup(std::string value) {
  Value markup = String(std::move(value));
  markup.markup_ = true;
  return markup;
}

Value Value::List(std::vector<Value> items) {
  auto data = std::make_shared<ListData>();
  ComputeShape(items, data->depth, data->holds_namespace);
  data->items = std::move(items);
  return Value(Kind::kList, std::shared_ptr<const ListData>(std::move(data)));
}

Value Value::Tuple(std::vector<Value> items) { return Sequence(std::move(items), SequenceKind::kTuple); }

Value Value::Sequence(std::vector<Value> items, SequenceKind kind, std::string range_repr) {
  auto data = std::make_shared<ListData>();
  ComputeShape(items, data->depth, data->holds_namespace);
  data->items = std::move(items);
  data->kind = kind;
  data->range_repr = std::move(range_repr);
  return Value(Kind::kList, std::shared_ptr<const ListData>(std::move(data)));
}

Value Value::Dict(std::vector<std::pair<std::string, Value>> entries) {
  auto data = std::make_shared<DictData>();
  ComputeShape(EntryValues(entries), data->depth, data->holds_namespace);
  data->entries = std::move(entries);
  data->type_name = "dict";
  return Value(Kind::kDict, std::move(data));
}

Value Value::Namespace(std::vector<std::pair<std::string, Value>> entries, std::string type_name) {
  auto data = std::make_shared<DictData>();
  ComputeShape(EntryValues(entries), data->depth, data->holds_namespace);
  data->entries = std::move(entries);
  data->type_name = std::move(type_name);
  return Value(Kind::kNamespace, std::move(data));
}

Value Value::Function(std::string name, NativeFunction call, bool errors_verbatim) {
  auto data = std::make_shared<FunctionData>();
  data->name = std::move(name);
  data->call = std::move(call);
  data->errors_verbatim = errors_verbatim;
  return Value(Kind::kFunction, std::shared_ptr<const FunctionData>(std::move(data)));
}

const std::string& Value::undefined_hint() const {
  static const std::string kEmpty;
  if (const auto* hint = std::get_if<std::shared_ptr<const std::string>>(&data_)) return **hint;
  return kEmpty;
}

double Value::AsDouble() const {
  if (is_float()) return floating();
  return static_cast<double>(AsInt());
}

int Value::Depth() const {
  if (is_list()) return list().depth;
  if (is_dict()) return dict().depth;
  if (is_namespace()) {
    // Namespaces change after construction; measure them now.
    int depth = 1;
    for (const auto& entry : dict().entries) depth = std::max(depth, entry.second.Depth() + 1);
    return depth;
  }
  return 0;
}

bool Value::HoldsNamespace() const {
  if (is_namespace()) return true;
  if (is_list()) return list().holds_namespace;
  if (is_dict()) return dict().holds_namespace;
  return false;
}

bool Value::SameObject(const Value& other) const {
  if (kind_ != other.kind_) return false;
  if (is_namespace()) return &dict() == &other.dict();
  if (is_function()) return &function() == &other.function();
  return false;
}

std::string TypeName(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kUndefined: return "Undefined";
    case Value::Kind::kNone: return "NoneType";
    case Value::Kind::kBool: return "bool";
    case Value::Kind::kInt: return "int";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "str";
    case Value::Kind::kList:
      switch (value.sequence_kind()) {
        case SequenceKind::kList: return "list";
        case SequenceKind::kTuple: return "tuple";
        case SequenceKind::kGenerator: return "generator";
        case SequenceKind::kReverseIterator: return "list_reverseiterator";
        case SequenceKind::kDictKeys: return "dict_keys";
        case SequenceKind::kDictValues: return "dict_values";
        case SequenceKind::kDictItems: return "dict_items";
        case SequenceKind::kRange: return "range";
      }
      return "list";
    case Value::Kind::kDict: return "dict";
    case Value::Kind::kNamespace: return value.dict().type_name;
    case Value::Kind::kFunction: return "function";
  }
  return "object";
}

std::string ObjectDescription(const Value& value) {
  if (value.is_none()) return "None";
  return TypeName(value) + " object";
}

bool Truthy(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return false;
    case Value::Kind::kBool: return value.boolean();
    case Value::Kind::kInt: return value.integer() != 0;
    case Value::Kind::kFloat: return value.floating() != 0.0;
    case Value::Kind::kString: return !value.string().empty();
    case Value::Kind::kList: return value.is_iterator() || !value.items().empty();
    case Value::Kind::kDict: return !value.dict().entries.empty();
    default: return true;
  }
}

namespace {

bool NumbersEqual(const Value& a, const Value& b) {
  if (!a.is_float() && !b.is_float()) return a.AsInt() == b.AsInt();
  if (a.is_float() && b.is_float()) return a.floating() == b.floating();
  const double d = a.is_float() ? a.floating() : b.floating();
  const int64_t i = a.is_float() ? b.AsInt() : a.AsInt();
  // Exact comparison, as Python does for int == float.
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || std::trunc(d) != d) return false;
  return static_cast<int64_t>(d) == i;
}

bool DictsEqual(const DictData& a, const DictData& b) {
  if (a.entries.size() != b.entries.size()) return false;
  for (const auto& [key, value] : a.entries) {
    const Value* other = b.Find(key);
    if (other == nullptr || !Equals(value, *other)) return false;
  }
  return true;
}

}  // namespace

bool Equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return NumbersEqual(a, b);
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.string() == b.string();
    case Value::Kind::kList: {
      if (a.is_iterator() || a.sequence_kind() == SequenceKind::kDictValues) return &a.list() == &b.list();
      if (a.sequence_kind() != b.sequence_kind() || a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i) {
        if (!Equals(a.items()[i], b.items()[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: return DictsEqual(a.dict(), b.dict());
    default: return a.SameObject(b);
  }
}

std::string ToStr(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kUndefined: return "";
    case Value::Kind::kNone: return "None";
    case Value::Kind::kBool: return value.boolean() ? "True" : "False";
    case Value::Kind::kInt: return std::to_string(value.integer());
    case Value::Kind::kFloat: return PyFloatRepr(value.floating());
    case Value::Kind::kString: return value.string();
    default: return ReprAt(value, 0);
  }
}

std::string ToRepr(const Value& value) { return ReprAt(value, 0); }

absl::StatusOr<std::string> ToJson(const Value& value, const JsonOptions& options) {
  JsonWriter writer(options);
  absl::Status status = writer.Write(value, 0);
  if (!status.ok()) return status;
  return writer.Take();
}

absl::StatusOr<Value> FromJson(const nlohmann::json& json) { return ConvertJson(json, 0); }
absl::StatusOr<Value> FromJson(const nlohmann::ordered_json& json) { return ConvertJson(json, 0); }

}  // namespace dsrt::chat
