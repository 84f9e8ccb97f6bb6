// Attribute and item access as Jinja's ImmutableSandboxedEnvironment does it,
// and the Python methods of str, list and dict that templates call.
#include <algorithm>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "runtime/chat/builtins.h"
#include "runtime/chat/call_args.h"
#include "runtime/chat/py_string.h"

namespace dsrt::chat {
namespace {

bool IsOneOf(const std::string& name, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

Value MissingAttribute(const Value& object, const std::string& name) {
  return Value::Undefined(absl::StrCat("'", ObjectDescription(object), "' has no attribute '", name, "'"));
}

Value MissingElement(const Value& object, const Value& key) {
  return Value::Undefined(absl::StrCat(ObjectDescription(object), " has no element ", ToRepr(key)));
}

// The sandbox refuses methods that would mutate a list or dict.
Value UnsafeAttribute(const Value& object, const std::string& name) {
  return Value::Undefined(
      absl::StrCat("access to attribute '", name, "' of '", TypeName(object), "' object is unsafe."));
}

Value UnsupportedMethod(const std::string& type, const std::string& name) {
  const std::string full_name = absl::StrCat(type, ".", name);
  return Value::Function(full_name, [full_name](const CallArgs&) -> absl::StatusOr<Value> {
    return absl::UnimplementedError(absl::StrCat(full_name, "() is not supported"));
  });
}

// ---- str ----

const std::string* OptionalString(const Value& value) { return value.is_string() ? &value.string() : nullptr; }

absl::Status ExpectStringOrNone(const std::string& function, const char* param, const Value& value) {
  return ExpectArgType(function, param, value, value.is_string() || value.is_none(), "str or None");
}

absl::StatusOr<Value> StringList(std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (std::string& part : parts) items.push_back(Value::String(std::move(part)));
  return Value::List(std::move(items));
}

absl::StatusOr<Value> StrSplit(const std::string& self, const std::string& method, const CallArgs& args) {
  const std::string function = "str." + method;
  absl::StatusOr<std::vector<Value>> bound = BindArgs(function, args, {{"sep", Value::None()}, {"maxsplit", Value::Int(-1)}});
  if (!bound.ok()) return bound.status();
  const Value& sep = (*bound)[0];
  const Value& maxsplit = (*bound)[1];
  absl::Status status = ExpectStringOrNone(function, "sep", sep);
  if (!status.ok()) return status;
  status = ExpectArgType(function, "maxsplit", maxsplit, maxsplit.is_int() || maxsplit.is_bool(), "int");
  if (!status.ok()) return status;
  if (sep.is_string() && sep.string().empty()) return absl::InvalidArgumentError("empty separator");
  const std::string* separator = OptionalString(sep);
  if (method == "split") return StringList(PySplit(self, separator, maxsplit.AsInt()));
  return StringList(PyRSplit(self, separator, maxsplit.AsInt()));
}

absl::StatusOr<Value> StrStrip(const std::string& self, const std::string& method, const CallArgs& args) {
  const std::string function = "str." + method;
  absl::StatusOr<std::vector<Value>> bound = BindArgs(function, args, {{"chars", Value::None()}});
  if (!bound.ok()) return bound.status();
  absl::Status status = ExpectStringOrNone(function, "chars", (*bound)[0]);
  if (!status.ok()) return status;
  const bool left = method != "rstrip";
  const bool right = method != "lstrip";
  return Value::String(PyStrip(self, OptionalString((*bound)[0]), left, right));
}

absl::StatusOr<Value> StrAffix(const std::string& self, const std::string& method, const CallArgs& args) {
  const std::string function = "str." + method;
  absl::StatusOr<std::vector<Value>> bound = BindArgs(function, args, {{"prefix", std::nullopt}});
  if (!bound.ok()) return bound.status();
  const Value& affix = (*bound)[0];
  std::vector<Value> candidates = affix.is_list() && affix.is_tuple() ? affix.items() : std::vector<Value>{affix};
  const bool at_start = method == "startswith";
  for (const Value& candidate : candidates) {
    if (!candidate.is_string()) {
      return TypeError(absl::StrCat(method, " first arg must be str or a tuple of str, not ", TypeName(candidate)));
    }
    const std::string& text = candidate.string();
    if (text.size() > self.size()) continue;
    const bool match = at_start ? self.compare(0, text.size(), text) == 0
                                : self.compare(self.size() - text.size(), text.size(), text) == 0;
    if (match) return Value::Bool(true);
  }
  return Value::Bool(false);
}

absl::StatusOr<Value> StrReplace(const std::string& self, const CallArgs& args, Budget& budget) {
  absl::StatusOr<std::vector<Value>> bound =
      BindArgs("str.replace", args, {{"old", std::nullopt}, {"new", std::nullopt}, {"count", Value::Int(-1)}});
  if (!bound.ok()) return bound.status();
  const Value& old = (*bound)[0];
  const Value& replacement = (*bound)[1];
  const Value& count = (*bound)[2];
  if (!old.is_string() || !replacement.is_string()) {
    return TypeError(absl::StrCat("replace() argument must be str, not ",
                                  TypeName(old.is_string() ? replacement : old)));
  }
  absl::Status status = ExpectArgType("str.replace", "count", count, count.is_int() || count.is_bool(), "int");
  if (!status.ok()) return status;
  std::string result = PyReplace(self, old.string(), replacement.string(), count.AsInt());
  status = budget.BuildString(result.size());
  if (!status.ok()) return status;
  return Value::String(std::move(result));
}

// str.find / rfind / index / rindex / count, with code point positions.
absl::StatusOr<Value> StrSearch(const std::string& self, const std::string& method, const CallArgs& args) {
  const std::string function = "str." + method;
  absl::StatusOr<std::vector<Value>> bound = BindArgs(function, args, {{"sub", std::nullopt}});
  if (!bound.ok()) return bound.status();
  const Value& sub = (*bound)[0];
  if (!sub.is_string()) return TypeError(absl::StrCat("must be str, not ", TypeName(sub)));
  const std::string& needle = sub.string();
  if (method == "count") {
    if (needle.empty()) return Value::Int(CodePointCount(self) + 1);
    int64_t count = 0;
    for (size_t at = self.find(needle); at != std::string::npos; at = self.find(needle, at + needle.size())) ++count;
    return Value::Int(count);
  }
  const bool from_right = method == "rfind" || method == "rindex";
  const size_t at = from_right ? self.rfind(needle) : self.find(needle);
  if (at == std::string::npos) {
    if (method == "index" || method == "rindex") return absl::InvalidArgumentError("substring not found");
    return Value::Int(-1);
  }
  return Value::Int(CodePointCount(std::string_view(self).substr(0, at)));
}

absl::StatusOr<Value> StrJoin(const std::string& self, const CallArgs& args, Budget& budget) {
  absl::StatusOr<std::vector<Value>> bound = BindArgs("str.join", args, {{"iterable", std::nullopt}});
  if (!bound.ok()) return bound.status();
  absl::StatusOr<std::vector<Value>> items = Iterate((*bound)[0]);
  if (!items.ok()) return items.status();
  std::string out;
  for (size_t i = 0; i < items->size(); ++i) {
    const Value& item = (*items)[i];
    if (!item.is_string()) {
      return TypeError(absl::StrCat("sequence item ", i, ": expected str instance, ", TypeName(item), " found"));
    }
    if (i > 0) out += self;
    out += item.string();
    absl::Status status = budget.BuildString(out.size());
    if (!status.ok()) return status;
  }
  return Value::String(std::move(out));
}

bool IsCased(char32_t c) { return LowerCodePoint(c) != c || UpperCodePoint(c) != c; }
bool IsLowerCase(char32_t c) { return UpperCodePoint(c) != c; }
bool IsUpperCase(char32_t c) { return LowerCodePoint(c) != c; }

std::string PyTitle(const std::string& self) {
  std::u32string cps = DecodeUtf8(self);
  bool previous_cased = false;
  for (char32_t& c : cps) {
    if (!IsCased(c)) {
      previous_cased = false;
      continue;
    }
    c = previous_cased ? LowerCodePoint(c) : UpperCodePoint(c);
    previous_cased = true;
  }
  return EncodeUtf8(cps);
}

std::string PyCapitalize(const std::string& self) {
  std::u32string cps = DecodeUtf8(self);
  for (size_t i = 0; i < cps.size(); ++i) cps[i] = i == 0 ? UpperCodePoint(cps[i]) : LowerCodePoint(cps[i]);
  return EncodeUtf8(cps);
}

std::string PySwapCase(const std::string& self) {
  std::u32string cps = DecodeUtf8(self);
  for (char32_t& c : cps) c = IsUpperCase(c) ? LowerCodePoint(c) : UpperCodePoint(c);
  return EncodeUtf8(cps);
}

// str.islower()/isupper(): at least one cased character, all in that case.
bool PyIsCase(const std::string& self, bool lower) {
  bool any_cased = false;
  for (char32_t c : DecodeUtf8(self)) {
    if (!IsCased(c)) continue;
    any_cased = true;
    if (lower ? IsUpperCase(c) : IsLowerCase(c)) return false;
  }
  return any_cased;
}

// isdigit/isalpha/isalnum need Unicode tables beyond ASCII; refuse rather
// than guess.
absl::StatusOr<Value> StrClassify(const std::string& self, const std::string& method) {
  if (method == "isspace") {
    const std::u32string cps = DecodeUtf8(self);
    return Value::Bool(!cps.empty() && std::all_of(cps.begin(), cps.end(), IsPyWhitespace));
  }
  if (method == "islower" || method == "isupper") return Value::Bool(PyIsCase(self, method == "islower"));
  if (std::any_of(self.begin(), self.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
    return absl::UnimplementedError(absl::StrCat("str.", method, "() of non-ASCII text is not supported"));
  }
  const auto all = [&](auto predicate) {
    return !self.empty() && std::all_of(self.begin(), self.end(), [&](char c) { return predicate(c); });
  };
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  const auto is_alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (method == "isalpha") return Value::Bool(all(is_alpha));
  if (method == "isalnum") return Value::Bool(all([&](char c) { return is_alpha(c) || is_digit(c); }));
  return Value::Bool(all(is_digit));  // isdigit, isdecimal, isnumeric
}

absl::StatusOr<Value> StrNoArgs(const std::string& self, const std::string& method, const CallArgs& args) {
  absl::StatusOr<std::vector<Value>> bound = BindArgs("str." + method, args, {});
  if (!bound.ok()) return bound.status();
  if (method == "lower") return Value::String(PyLower(self));
  if (method == "upper") return Value::String(PyUpper(self));
  if (method == "title") return Value::String(PyTitle(self));
  if (method == "capitalize") return Value::String(PyCapitalize(self));
  if (method == "swapcase") return Value::String(PySwapCase(self));
  return StrClassify(self, method);
}

absl::StatusOr<Value> StrSplitLines(const std::string& self, const CallArgs& args) {
  absl::StatusOr<std::vector<Value>> bound = BindArgs("str.splitlines", args, {{"keepends", Value::Bool(false)}});
  if (!bound.ok()) return bound.status();
  return StringList(PySplitLines(self, Truthy((*bound)[0])));
}

absl::StatusOr<Value> StrRemoveAffix(const std::string& self, const std::string& method, const CallArgs& args) {
  absl::StatusOr<std::vector<Value>> bound = BindArgs("str." + method, args, {{"affix", std::nullopt}});
  if (!bound.ok()) return bound.status();
  const Value& affix = (*bound)[0];
  if (!affix.is_string()) return TypeError(absl::StrCat(method, "() argument must be str, not ", TypeName(affix)));
  const std::string& text = affix.string();
  if (method == "removeprefix" && self.compare(0, text.size(), text) == 0) return Value::String(self.substr(text.size()));
  if (method == "removesuffix" && !text.empty() && text.size() <= self.size() &&
      self.compare(self.size() - text.size(), text.size(), text) == 0) {
    return Value::String(self.substr(0, self.size() - text.size()));
  }
  return Value::String(self);
}

bool IsImplementedStringMethod(const std::string& name) {
  return IsOneOf(name, {"split", "rsplit", "strip", "lstrip", "rstrip", "startswith", "endswith", "replace", "find",
                        "rfind", "index", "rindex", "count", "join", "lower", "upper", "title", "capitalize",
                        "swapcase", "isspace", "islower", "isupper", "isalpha", "isalnum", "isdigit", "isdecimal",
                        "isnumeric", "splitlines", "removeprefix", "removesuffix"});
}

bool IsPythonStringMethod(const std::string& name) {
  return IsOneOf(name, {"casefold", "center", "encode", "expandtabs", "format", "format_map", "isascii",
                        "isidentifier", "isprintable", "istitle", "ljust", "maketrans", "partition", "rjust",
                        "rpartition", "translate", "zfill"});
}

absl::StatusOr<Value> CallStringMethod(const std::string& self, const std::string& method, const CallArgs& args) {
  // Method calls run outside the interpreter's budget; their results are
  // bounded by the size checks below and by the interpreter's own checks.
  Budget budget;
  if (method == "split" || method == "rsplit") return StrSplit(self, method, args);
  if (method == "strip" || method == "lstrip" || method == "rstrip") return StrStrip(self, method, args);
  if (method == "startswith" || method == "endswith") return StrAffix(self, method, args);
  if (method == "replace") return StrReplace(self, args, budget);
  if (IsOneOf(method, {"find", "rfind", "index", "rindex", "count"})) return StrSearch(self, method, args);
  if (method == "join") return StrJoin(self, args, budget);
  if (method == "splitlines") return StrSplitLines(self, args);
  if (method == "removeprefix" || method == "removesuffix") return StrRemoveAffix(self, method, args);
  return StrNoArgs(self, method, args);
}

absl::StatusOr<Value> StringAttribute(const Value& object, const std::string& name) {
  // Markup's methods escape their arguments and return Markup.
  if (object.is_markup() && (IsImplementedStringMethod(name) || IsPythonStringMethod(name))) {
    return UnsupportedMethod("Markup", name);
  }
  if (IsImplementedStringMethod(name)) {
    const std::string self = object.string();
    return Value::Function("str." + name, [self, name](const CallArgs& args) { return CallStringMethod(self, name, args); });
  }
  if (IsPythonStringMethod(name)) return UnsupportedMethod("str", name);
  return MissingAttribute(object, name);
}

// ---- list ----

absl::StatusOr<Value> CallListMethod(const Value& self, const std::string& method, const CallArgs& args) {
  if (method == "copy") {
    absl::StatusOr<std::vector<Value>> bound = BindArgs("list.copy", args, {});
    if (!bound.ok()) return bound.status();
    return self;
  }
  absl::StatusOr<std::vector<Value>> bound = BindArgs(TypeName(self) + "." + method, args, {{"value", std::nullopt}});
  if (!bound.ok()) return bound.status();
  const Value& needle = (*bound)[0];
  int64_t count = 0;
  for (size_t i = 0; i < self.items().size(); ++i) {
    if (!Equals(self.items()[i], needle)) continue;
    if (method == "index") return Value::Int(static_cast<int64_t>(i));
    ++count;
  }
  if (method == "index") return absl::InvalidArgumentError(absl::StrCat(ToRepr(needle), " is not in list"));
  return Value::Int(count);
}

absl::StatusOr<Value> ListAttribute(const Value& object, const std::string& name) {
  if (IsOneOf(name, {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"})) {
    return UnsafeAttribute(object, name);
  }
  if (!object.is_plain_sequence()) return MissingAttribute(object, name);
  if (name == "index" || name == "count" || (name == "copy" && !object.is_tuple())) {
    return Value::Function(TypeName(object) + "." + name,
                           [object, name](const CallArgs& args) { return CallListMethod(object, name, args); });
  }
  return MissingAttribute(object, name);
}

// ---- dict ----

bool IsDictMethod(const std::string& name) {
  return IsOneOf(name, {"items", "keys", "values", "get", "copy", "clear", "pop", "popitem", "setdefault", "update",
                        "fromkeys"});
}

absl::StatusOr<Value> CallDictMethod(const Value& self, const std::string& method, const CallArgs& args) {
  if (method == "get") {
    absl::StatusOr<std::vector<Value>> bound =
        BindArgs("dict.get", args, {{"key", std::nullopt}, {"default", Value::None()}});
    if (!bound.ok()) return bound.status();
    const Value& key = (*bound)[0];
    const Value* found = key.is_string() ? self.dict().Find(key.string()) : nullptr;
    return found != nullptr ? *found : (*bound)[1];
  }
  absl::StatusOr<std::vector<Value>> bound = BindArgs("dict." + method, args, {});
  if (!bound.ok()) return bound.status();
  if (method == "copy") return self;
  std::vector<Value> items;
  for (const auto& [key, value] : self.dict().entries) {
    if (method == "keys") {
      items.push_back(Value::String(key));
    } else if (method == "values") {
      items.push_back(value);
    } else {
      items.push_back(Value::Tuple({Value::String(key), value}));
    }
  }
  const SequenceKind kind = method == "keys" ? SequenceKind::kDictKeys
                            : method == "values" ? SequenceKind::kDictValues
                                                 : SequenceKind::kDictItems;
  return Value::Sequence(std::move(items), kind);
}

absl::StatusOr<Value> DictMethod(const Value& object, const std::string& name) {
  if (IsOneOf(name, {"clear", "pop", "popitem", "setdefault", "update"})) return UnsafeAttribute(object, name);
  if (name == "fromkeys") return UnsupportedMethod("dict", name);
  return Value::Function("dict." + name,
                         [object, name](const CallArgs& args) { return CallDictMethod(object, name, args); });
}

// ---- indexing ----

// Python index normalization; false when out of range.
bool NormalizeIndex(int64_t& index, int64_t length) {
  if (index < 0) index += length;
  return index >= 0 && index < length;
}

Value IndexSequence(const Value& object, const Value& key) {
  int64_t index = key.AsInt();
  if (object.is_list()) {
    if (!NormalizeIndex(index, static_cast<int64_t>(object.items().size()))) return MissingElement(object, key);
    return object.items()[index];
  }
  const std::u32string cps = DecodeUtf8(object.string());
  if (!NormalizeIndex(index, static_cast<int64_t>(cps.size()))) return MissingElement(object, key);
  std::string character;
  AppendUtf8(cps[index], character);
  return Value::String(std::move(character));
}

// PySlice_AdjustIndices: clamps one bound.
int64_t AdjustSliceBound(const Value& bound, int64_t length, int64_t step, bool is_start) {
  if (bound.is_none()) {
    if (is_start) return step < 0 ? length - 1 : 0;
    return step < 0 ? -1 : length;
  }
  int64_t value = bound.AsInt();
  if (value < 0) {
    value = value < -length ? -length - 1 : value;  // avoids overflow below
    value += length;
    if (value < 0) value = step < 0 ? -1 : 0;
  } else if (value >= length) {
    value = step < 0 ? length - 1 : length;
  }
  return value;
}

std::vector<int64_t> SliceIndices(int64_t length, const Value& start, const Value& stop, int64_t step) {
  // A step longer than the sequence selects at most one element either way.
  step = std::clamp<int64_t>(step, -(length + 1), length + 1);
  const int64_t first = AdjustSliceBound(start, length, step, true);
  const int64_t last = AdjustSliceBound(stop, length, step, false);
  std::vector<int64_t> indices;
  if (step > 0) {
    for (int64_t i = first; i < last; i += step) indices.push_back(i);
  } else {
    for (int64_t i = first; i > last; i += step) indices.push_back(i);
  }
  return indices;
}

bool IsSliceBound(const Value& value) { return value.is_none() || value.is_int() || value.is_bool(); }

}  // namespace

absl::StatusOr<Value> GetAttribute(const Value& object, const std::string& name) {
  switch (object.kind()) {
    case Value::Kind::kUndefined: return UndefinedError(object);
    case Value::Kind::kString: return StringAttribute(object, name);
    case Value::Kind::kList: return ListAttribute(object, name);
    case Value::Kind::kDict: {
      if (IsDictMethod(name)) return DictMethod(object, name);
      const Value* found = object.dict().Find(name);
      return found != nullptr ? *found : MissingAttribute(object, name);
    }
    case Value::Kind::kNamespace: {
      const Value* found = object.dict().Find(name);
      return found != nullptr ? *found : MissingAttribute(object, name);
    }
    default: return MissingAttribute(object, name);
  }
}

absl::StatusOr<Value> GetItem(const Value& object, const Value& key) {
  if (object.is_undefined()) return UndefinedError(object);
  if (object.is_dict() && key.is_string()) {
    const Value* found = object.dict().Find(key.string());
    if (found != nullptr) return *found;
    if (IsDictMethod(key.string())) return DictMethod(object, key.string());
    return MissingAttribute(object, key.string());
  }
  const bool indexable = object.is_string() || object.is_plain_sequence() ||
                         (object.is_list() && object.sequence_kind() == SequenceKind::kRange);
  if (indexable && (key.is_int() || key.is_bool())) return IndexSequence(object, key);
  if (key.is_string()) return GetAttribute(object, key.string());
  return MissingElement(object, key);
}

// Jinja compiles slices to plain Python subscripts (they bypass the
// environment's getitem), so a bad slice is a TypeError, not an Undefined.
absl::StatusOr<Value> GetSlice(const Value& object, const Value& start, const Value& stop, const Value& step) {
  if (object.is_undefined()) return UndefinedError(object);
  if (object.is_dict()) return TypeError("unhashable type: 'slice'");
  const bool sliceable = object.is_string() || object.is_plain_sequence() ||
                         (object.is_list() && object.sequence_kind() == SequenceKind::kRange);
  if (!sliceable) return TypeError(absl::StrCat("'", TypeName(object), "' object is not subscriptable"));
  if (!IsSliceBound(start) || !IsSliceBound(stop) || !IsSliceBound(step)) {
    return TypeError("slice indices must be integers or None or have an __index__ method");
  }
  const int64_t step_value = step.is_none() ? 1 : step.AsInt();
  if (step_value == 0) return absl::InvalidArgumentError("slice step cannot be zero");
  if (object.is_list()) {
    std::vector<Value> items;
    for (int64_t i : SliceIndices(static_cast<int64_t>(object.items().size()), start, stop, step_value)) {
      items.push_back(object.items()[i]);
    }
    // A sliced range stays a range in Python; it becomes a list here.
    return object.is_tuple() ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
  }
  const std::u32string cps = DecodeUtf8(object.string());
  std::string out;
  for (int64_t i : SliceIndices(static_cast<int64_t>(cps.size()), start, stop, step_value)) AppendUtf8(cps[i], out);
  return Value::String(std::move(out));
}

}  // namespace dsrt::chat
