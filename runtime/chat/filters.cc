// Jinja's builtin filters and tests (jinja2/filters.py, jinja2/tests.py),
// with transformers' own `tojson` (json.dumps without HTML escaping).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "runtime/chat/builtins.h"
#include "runtime/chat/call_args.h"
#include "runtime/chat/py_string.h"

namespace dsrt::chat {
namespace {

using Args = std::vector<Value>;
using FilterFunction = absl::StatusOr<Value> (*)(const Value&, const CallArgs&, Budget&);
using TestFunction = absl::StatusOr<bool> (*)(const Value&, const CallArgs&);

absl::StatusOr<Value> StringResult(std::string text, Budget& budget) {
  absl::Status status = budget.BuildString(text.size());
  if (!status.ok()) return status;
  return Value::String(std::move(text));
}

absl::Status RequireDefinedForConversion(const Value& value) {
  return value.is_undefined() ? UndefinedError(value) : absl::OkStatus();
}

// ---- attribute getters (make_attrgetter) ----

// "a.b.0" → getitem(getitem(getitem(item, "a"), "b"), 0).
absl::StatusOr<Value> LookupAttribute(const Value& item, const Value& attribute) {
  if (attribute.is_int()) return GetItem(item, attribute);
  if (!attribute.is_string()) return TypeError("attribute must be a string or an integer");
  Value current = item;
  const std::string dot = ".";
  for (const std::string& part : PySplit(attribute.string(), &dot, -1)) {
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    Value key = Value::String(part);
    if (numeric) {
      int64_t index = 0;
      const auto result = std::from_chars(part.data(), part.data() + part.size(), index);
      if (result.ec == std::errc()) key = Value::Int(index);
    }
    absl::StatusOr<Value> next = GetItem(current, key);
    if (!next.ok()) return next.status();
    current = *std::move(next);
  }
  return current;
}

Value IgnoreCase(const Value& value, bool case_sensitive) {
  if (case_sensitive || !value.is_string()) return value;
  return Value::String(PyLower(value.string()));
}

// The sort/min/max/unique key of an item.
absl::StatusOr<Value> ItemKey(const Value& item, const Value& attribute, bool case_sensitive) {
  if (attribute.is_none()) return IgnoreCase(item, case_sensitive);
  absl::StatusOr<Value> looked_up = LookupAttribute(item, attribute);
  if (!looked_up.ok()) return looked_up.status();
  return IgnoreCase(*looked_up, case_sensitive);
}

absl::StatusOr<std::vector<Value>> ItemKeys(const std::vector<Value>& items, const Value& attribute,
                                            bool case_sensitive) {
  std::vector<Value> keys;
  keys.reserve(items.size());
  for (const Value& item : items) {
    absl::StatusOr<Value> key = ItemKey(item, attribute, case_sensitive);
    if (!key.ok()) return key.status();
    keys.push_back(*std::move(key));
  }
  return keys;
}

// Stable order of `items` by `keys`; Python's sorted(), errors included.
absl::StatusOr<std::vector<Value>> SortByKeys(const std::vector<Value>& items, const std::vector<Value>& keys,
                                              bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  absl::Status error;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (!error.ok()) return false;
    absl::StatusOr<bool> less = reverse ? Compare("<", keys[b], keys[a]) : Compare("<", keys[a], keys[b]);
    if (!less.ok()) {
      error = less.status();
      return false;
    }
    return *less;
  });
  if (!error.ok()) return error;
  std::vector<Value> sorted;
  sorted.reserve(items.size());
  for (size_t index : order) sorted.push_back(items[index]);
  return sorted;
}

// ---- string filters ----

absl::StatusOr<Value> FilterString(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound = BindArgs("string", args, {});
  if (!bound.ok()) return bound.status();
  if (value.is_string()) return value;
  return StringResult(ToStr(value), budget);
}

absl::StatusOr<Value> FilterTrim(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("trim", args, {{"chars", Value::None()}});
  if (!bound.ok()) return bound.status();
  const Value& chars = (*bound)[0];
  if (!chars.is_none() && !chars.is_string()) return TypeError("trim() chars must be a string or None");
  return Value::String(PyStrip(ToStr(value), chars.is_string() ? &chars.string() : nullptr, true, true));
}

absl::StatusOr<Value> FilterLower(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("lower", args, {});
  if (!bound.ok()) return bound.status();
  return Value::String(PyLower(ToStr(value)));
}

absl::StatusOr<Value> FilterUpper(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("upper", args, {});
  if (!bound.ok()) return bound.status();
  return Value::String(PyUpper(ToStr(value)));
}

absl::StatusOr<Value> FilterCapitalize(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("capitalize", args, {});
  if (!bound.ok()) return bound.status();
  std::u32string cps = DecodeUtf8(ToStr(value));
  for (size_t i = 0; i < cps.size(); ++i) cps[i] = i == 0 ? UpperCodePoint(cps[i]) : LowerCodePoint(cps[i]);
  return Value::String(EncodeUtf8(cps));
}

// Jinja's title: each piece between runs of [-\s({[<] gets its first
// character upper-cased and the rest lower-cased.
absl::StatusOr<Value> FilterTitle(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("title", args, {});
  if (!bound.ok()) return bound.status();
  const auto is_boundary = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || IsPyWhitespace(c);
  };
  std::u32string cps = DecodeUtf8(ToStr(value));
  bool piece_start = true;
  bool in_boundary = false;
  for (char32_t& c : cps) {
    const bool boundary = is_boundary(c);
    if (boundary != in_boundary) piece_start = true;
    in_boundary = boundary;
    c = piece_start ? UpperCodePoint(c) : LowerCodePoint(c);
    piece_start = false;
  }
  return Value::String(EncodeUtf8(cps));
}

absl::StatusOr<Value> FilterReplace(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound =
      BindArgs("replace", args, {{"old", std::nullopt}, {"new", std::nullopt}, {"count", Value::None()}});
  if (!bound.ok()) return bound.status();
  const Value& count = (*bound)[2];
  if (!count.is_none() && !count.is_int() && !count.is_bool()) return TypeError("replace() count must be an integer");
  const int64_t limit = count.is_none() ? -1 : count.AsInt();
  return StringResult(PyReplace(ToStr(value), ToStr((*bound)[0]), ToStr((*bound)[1]), limit), budget);
}

absl::StatusOr<Value> FilterForceEscape(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound = BindArgs("escape", args, {});
  if (!bound.ok()) return bound.status();
  std::string out;
  for (char c : ToStr(value)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  absl::Status status = budget.BuildString(out.size());
  if (!status.ok()) return status;
  return Value::Markup(std::move(out));
}

// markupsafe.escape: a Markup string is already escaped.
absl::StatusOr<Value> FilterEscape(const Value& value, const CallArgs& args, Budget& budget) {
  if (value.is_markup()) {
    absl::StatusOr<Args> bound = BindArgs("escape", args, {});
    if (!bound.ok()) return bound.status();
    return value;
  }
  return FilterForceEscape(value, args, budget);
}

absl::StatusOr<Value> FilterSafe(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound = BindArgs("safe", args, {});
  if (!bound.ok()) return bound.status();
  const std::string text = ToStr(value);
  absl::Status status = budget.BuildString(text.size());
  if (!status.ok()) return status;
  return Value::Markup(text);
}

absl::StatusOr<Value> FilterIndent(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound = BindArgs(
      "indent", args, {{"width", Value::Int(4)}, {"first", Value::Bool(false)}, {"blank", Value::Bool(false)}});
  if (!bound.ok()) return bound.status();
  const Value& width = (*bound)[0];
  std::string indentation;
  if (width.is_string()) {
    indentation = width.string();
  } else if (width.is_int() || width.is_bool()) {
    indentation.assign(static_cast<size_t>(std::clamp<int64_t>(width.AsInt(), 0, 1 << 16)), ' ');
  } else {
    return TypeError("indent() width must be an integer or a string");
  }
  if (value.is_undefined()) return UndefinedError(value);
  if (!value.is_string()) return TypeError(absl::StrCat("indent() needs a string, not ", TypeName(value)));
  // Jinja appends "\n" so that splitlines() sees a final empty line.
  const std::vector<std::string> lines = PySplitLines(value.string() + "\n", false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    const bool indent_line = i > 0 && (Truthy((*bound)[2]) || !lines[i].empty());
    if (indent_line) out += indentation;
    out += lines[i];
    absl::Status status = budget.BuildString(out.size());
    if (!status.ok()) return status;
  }
  if (Truthy((*bound)[1])) out = indentation + out;
  return StringResult(std::move(out), budget);
}

// ---- conversions ----

// Python's int(str, base): optional sign, digits with single underscores,
// surrounding whitespace.
bool ParsePythonInt(const std::string& text, int base, int64_t& out) {
  std::string digits = PyStrip(text, nullptr, true, true);
  bool negative = false;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    negative = digits[0] == '-';
    digits.erase(0, 1);
  }
  if (digits.empty() || digits.front() == '_' || digits.back() == '_' || digits.find("__") != std::string::npos) {
    return false;
  }
  digits.erase(std::remove(digits.begin(), digits.end(), '_'), digits.end());
  if (negative) digits.insert(0, "-");
  const auto result = std::from_chars(digits.data(), digits.data() + digits.size(), out, base);
  return result.ec == std::errc() && result.ptr == digits.data() + digits.size();
}

// Python's float(str): decimal or exponent notation, inf, nan.
bool ParsePythonFloat(const std::string& text, double& out) {
  std::string digits = PyLower(PyStrip(text, nullptr, true, true));
  if (digits.empty() || digits.find("__") != std::string::npos) return false;
  digits.erase(std::remove(digits.begin(), digits.end(), '_'), digits.end());
  std::string_view view(digits);
  bool negative = false;
  if (!view.empty() && (view[0] == '+' || view[0] == '-')) {
    negative = view[0] == '-';
    view.remove_prefix(1);
  }
  if (view == "inf" || view == "infinity") {
    out = negative ? -HUGE_VAL : HUGE_VAL;
    return true;
  }
  if (view == "nan") {
    out = std::nan("");
    return true;
  }
  if (view.empty() || !(std::isdigit(static_cast<unsigned char>(view[0])) || view[0] == '.')) return false;
  double magnitude = 0;
  const auto result = std::from_chars(view.data(), view.data() + view.size(), magnitude);
  if (result.ptr != view.data() + view.size()) return false;
  if (result.ec == std::errc::result_out_of_range) magnitude = view.find("e-") != std::string_view::npos ? 0.0 : HUGE_VAL;
  out = negative ? -magnitude : magnitude;
  return true;
}

absl::StatusOr<Value> FloatToInt(double value) {
  if (std::isnan(value)) return absl::InvalidArgumentError("cannot convert float NaN to integer");
  if (!(value >= -9223372036854775808.0 && value < 9223372036854775808.0)) {
    return absl::OutOfRangeError("cannot convert float infinity or a huge float to a 64-bit integer");
  }
  return Value::Int(static_cast<int64_t>(std::trunc(value)));
}

absl::StatusOr<Value> FilterInt(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("int", args, {{"default", Value::Int(0)}, {"base", Value::Int(10)}});
  if (!bound.ok()) return bound.status();
  absl::Status status = RequireDefinedForConversion(value);
  if (!status.ok()) return status;
  const Value& base = (*bound)[1];
  if (!base.is_int() || base.integer() < 2 || base.integer() > 36) {
    return absl::InvalidArgumentError("int() base must be between 2 and 36");
  }
  if (value.is_int() || value.is_bool()) return Value::Int(value.AsInt());
  if (value.is_float()) return FloatToInt(value.floating());
  if (!value.is_string()) return (*bound)[0];
  int64_t parsed = 0;
  if (ParsePythonInt(value.string(), static_cast<int>(base.integer()), parsed)) return Value::Int(parsed);
  double as_float = 0;
  if (ParsePythonFloat(value.string(), as_float)) return FloatToInt(as_float);
  return (*bound)[0];
}

absl::StatusOr<Value> FilterFloat(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("float", args, {{"default", Value::Float(0.0)}});
  if (!bound.ok()) return bound.status();
  absl::Status status = RequireDefinedForConversion(value);
  if (!status.ok()) return status;
  if (value.is_number()) return Value::Float(value.AsDouble());
  double parsed = 0;
  if (value.is_string() && ParsePythonFloat(value.string(), parsed)) return Value::Float(parsed);
  return (*bound)[0];
}

absl::StatusOr<Value> FilterAbs(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("abs", args, {});
  if (!bound.ok()) return bound.status();
  if (value.is_float()) return Value::Float(std::fabs(value.floating()));
  if (value.is_int() || value.is_bool()) {
    if (value.AsInt() == INT64_MIN) return absl::OutOfRangeError("integer overflow");
    return Value::Int(value.AsInt() < 0 ? -value.AsInt() : value.AsInt());
  }
  if (value.is_undefined()) return UndefinedError(value);
  return TypeError(absl::StrCat("bad operand type for abs(): '", TypeName(value), "'"));
}

// Python's round(x, n): correctly rounded, ties to even — what printf does
// with the exact binary value.
double PythonRound(double value, int64_t precision) {
  if (!std::isfinite(value) || precision > 300) return value;
  if (precision < -300) return std::copysign(0.0, value);
  if (precision < 0) {
    const double scale = std::pow(10.0, static_cast<double>(-precision));
    return std::nearbyint(value / scale) * scale;
  }
  char buffer[512];
  std::snprintf(buffer, sizeof(buffer), "%.*f", static_cast<int>(precision), value);
  return std::strtod(buffer, nullptr);
}

absl::StatusOr<Value> FilterRound(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound =
      BindArgs("round", args, {{"precision", Value::Int(0)}, {"method", Value::String("common")}});
  if (!bound.ok()) return bound.status();
  const Value& precision = (*bound)[0];
  const Value& method = (*bound)[1];
  if (!precision.is_int() && !precision.is_bool()) return TypeError("round() precision must be an integer");
  if (!method.is_string() || (method.string() != "common" && method.string() != "ceil" && method.string() != "floor")) {
    return absl::InvalidArgumentError("method must be common, ceil or floor");
  }
  if (value.is_undefined()) return UndefinedError(value);
  if (!value.is_number()) return TypeError(absl::StrCat("type ", TypeName(value), " doesn't define __round__ method"));
  if (method.string() == "common") {
    if (!value.is_float()) return Value::Int(value.AsInt());  // round(int, n) stays an int
    return Value::Float(PythonRound(value.floating(), precision.AsInt()));
  }
  const double scale = std::pow(10.0, static_cast<double>(precision.AsInt()));
  const double scaled = value.AsDouble() * scale;
  return Value::Float((method.string() == "ceil" ? std::ceil(scaled) : std::floor(scaled)) / scale);
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None,
// separators=None, sort_keys=False).
absl::StatusOr<Value> FilterToJson(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound = BindArgs("tojson", args,
                                        {{"ensure_ascii", Value::Bool(false)},
                                         {"indent", Value::None()},
                                         {"separators", Value::None()},
                                         {"sort_keys", Value::Bool(false)}});
  if (!bound.ok()) return bound.status();
  JsonOptions options;
  options.ensure_ascii = Truthy((*bound)[0]);
  options.sort_keys = Truthy((*bound)[3]);
  const Value& indent = (*bound)[1];
  if (indent.is_string()) {
    options.indent_given = true;
    options.indent_string = indent.string();
  } else if (indent.is_int() || indent.is_bool()) {
    options.indent_given = true;
    options.indent_string.assign(static_cast<size_t>(std::clamp<int64_t>(indent.AsInt(), 0, 1 << 16)), ' ');
  } else if (!indent.is_none()) {
    return TypeError("tojson() indent must be an integer, a string or None");
  }
  if (options.indent_given) options.item_separator = ",";
  const Value& separators = (*bound)[2];
  if (!separators.is_none()) {
    if (!separators.is_list() || separators.items().size() != 2 || !separators.items()[0].is_string() ||
        !separators.items()[1].is_string()) {
      return TypeError("tojson() separators must be a pair of strings");
    }
    options.item_separator = separators.items()[0].string();
    options.key_separator = separators.items()[1].string();
  }
  absl::StatusOr<std::string> json = ToJson(value, options);
  if (!json.ok()) return TypeError(std::string(json.status().message()));
  return StringResult(*std::move(json), budget);
}

// ---- sequences ----

absl::StatusOr<Value> FilterLength(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("length", args, {});
  if (!bound.ok()) return bound.status();
  switch (value.kind()) {
    case Value::Kind::kUndefined: return Value::Int(0);
    case Value::Kind::kString: return Value::Int(CodePointCount(value.string()));
    case Value::Kind::kList:
      if (value.is_iterator()) break;
      return Value::Int(static_cast<int64_t>(value.items().size()));
    case Value::Kind::kDict: return Value::Int(static_cast<int64_t>(value.dict().entries.size()));
    default: break;
  }
  return TypeError(absl::StrCat("object of type '", TypeName(value), "' has no len()"));
}

absl::StatusOr<Value> FilterList(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound = BindArgs("list", args, {});
  if (!bound.ok()) return bound.status();
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) return items.status();
  absl::Status status = budget.Step(static_cast<int64_t>(items->size()));
  if (!status.ok()) return status;
  return Value::List(*std::move(items));
}

absl::StatusOr<Value> FilterFirst(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("first", args, {});
  if (!bound.ok()) return bound.status();
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) return items.status();
  if (items->empty()) return Value::Undefined("No first item, sequence was empty.");
  return items->front();
}

absl::StatusOr<Value> FilterLast(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("last", args, {});
  if (!bound.ok()) return bound.status();
  if (value.is_iterator()) return TypeError(absl::StrCat("'", TypeName(value), "' object is not reversible"));
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) return items.status();
  if (items->empty()) return Value::Undefined("No last item, sequence was empty.");
  return items->back();
}

absl::StatusOr<Value> FilterReverse(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("reverse", args, {});
  if (!bound.ok()) return bound.status();
  if (value.is_string()) {
    std::u32string cps = DecodeUtf8(value.string());
    std::reverse(cps.begin(), cps.end());
    return Value::String(EncodeUtf8(cps));
  }
  const bool from_generator = value.is_iterator();
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) return items.status();
  std::reverse(items->begin(), items->end());
  // reversed() where Python can; a generator is first made into a list.
  if (from_generator) return Value::List(*std::move(items));
  return Value::Sequence(*std::move(items), SequenceKind::kReverseIterator);
}

absl::StatusOr<Value> FilterJoin(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound = BindArgs("join", args, {{"d", Value::String("")}, {"attribute", Value::None()}});
  if (!bound.ok()) return bound.status();
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) return items.status();
  const std::string separator = ToStr((*bound)[0]);
  std::string out;
  for (size_t i = 0; i < items->size(); ++i) {
    Value item = (*items)[i];
    if (!(*bound)[1].is_none()) {
      absl::StatusOr<Value> looked_up = LookupAttribute(item, (*bound)[1]);
      if (!looked_up.ok()) return looked_up.status();
      item = *std::move(looked_up);
    }
    if (i > 0) out += separator;
    out += ToStr(item);
    absl::Status status = budget.BuildString(out.size());
    if (!status.ok()) return status;
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> FilterDefault(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound =
      BindArgs("default", args, {{"default_value", Value::String("")}, {"boolean", Value::Bool(false)}});
  if (!bound.ok()) return bound.status();
  if (value.is_undefined() || (Truthy((*bound)[1]) && !Truthy(value))) return (*bound)[0];
  return value;
}

absl::StatusOr<Value> FilterItems(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound = BindArgs("items", args, {});
  if (!bound.ok()) return bound.status();
  if (value.is_undefined()) return Value::Sequence({}, SequenceKind::kGenerator);
  if (!value.is_dict()) return TypeError("Can only get item pairs from a mapping.");
  std::vector<Value> pairs;
  for (const auto& [key, item] : value.dict().entries) pairs.push_back(Value::Tuple({Value::String(key), item}));
  absl::Status status = budget.Step(static_cast<int64_t>(pairs.size()));
  if (!status.ok()) return status;
  return Value::Sequence(std::move(pairs), SequenceKind::kGenerator);
}

absl::StatusOr<Value> FilterDictSort(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound = BindArgs(
      "dictsort", args,
      {{"case_sensitive", Value::Bool(false)}, {"by", Value::String("key")}, {"reverse", Value::Bool(false)}});
  if (!bound.ok()) return bound.status();
  const Value& by = (*bound)[1];
  if (!by.is_string() || (by.string() != "key" && by.string() != "value")) {
    return absl::InvalidArgumentError("You can only sort by either 'key' or 'value'");
  }
  if (value.is_undefined()) return UndefinedError(value);
  if (!value.is_dict()) return TypeError(absl::StrCat("'", TypeName(value), "' object has no attribute 'items'"));
  absl::StatusOr<Value> pairs = FilterItems(value, CallArgs(), budget);
  if (!pairs.ok()) return pairs.status();
  std::vector<Value> keys;
  for (const Value& pair : pairs->items()) {
    keys.push_back(IgnoreCase(pair.items()[by.string() == "key" ? 0 : 1], Truthy((*bound)[0])));
  }
  absl::StatusOr<std::vector<Value>> sorted = SortByKeys(pairs->items(), keys, Truthy((*bound)[2]));
  if (!sorted.ok()) return sorted.status();
  return Value::List(*std::move(sorted));
}

absl::StatusOr<Value> FilterSort(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound = BindArgs("sort", args,
                                        {{"reverse", Value::Bool(false)},
                                         {"case_sensitive", Value::Bool(false)},
                                         {"attribute", Value::None()}});
  if (!bound.ok()) return bound.status();
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) return items.status();
  absl::Status status = budget.Step(static_cast<int64_t>(items->size()) * 8);
  if (!status.ok()) return status;
  absl::StatusOr<std::vector<Value>> keys = ItemKeys(*items, (*bound)[2], Truthy((*bound)[1]));
  if (!keys.ok()) return keys.status();
  absl::StatusOr<std::vector<Value>> sorted = SortByKeys(*items, *keys, Truthy((*bound)[0]));
  if (!sorted.ok()) return sorted.status();
  return Value::List(*std::move(sorted));
}

absl::StatusOr<Value> FilterUnique(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound =
      BindArgs("unique", args, {{"case_sensitive", Value::Bool(false)}, {"attribute", Value::None()}});
  if (!bound.ok()) return bound.status();
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) return items.status();
  absl::Status status = budget.Step(static_cast<int64_t>(items->size() * items->size()));
  if (!status.ok()) return status;
  absl::StatusOr<std::vector<Value>> keys = ItemKeys(*items, (*bound)[1], Truthy((*bound)[0]));
  if (!keys.ok()) return keys.status();
  std::vector<Value> unique;
  std::vector<Value> seen;
  for (size_t i = 0; i < items->size(); ++i) {
    const bool duplicate = std::any_of(seen.begin(), seen.end(), [&](const Value& key) { return Equals(key, (*keys)[i]); });
    if (duplicate) continue;
    seen.push_back((*keys)[i]);
    unique.push_back((*items)[i]);
  }
  return Value::Sequence(std::move(unique), SequenceKind::kGenerator);
}

absl::StatusOr<Value> MinOrMax(const char* name, bool want_max, const Value& value, const CallArgs& args) {
  absl::StatusOr<Args> bound =
      BindArgs(name, args, {{"case_sensitive", Value::Bool(false)}, {"attribute", Value::None()}});
  if (!bound.ok()) return bound.status();
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) return items.status();
  if (items->empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  absl::StatusOr<std::vector<Value>> keys = ItemKeys(*items, (*bound)[1], Truthy((*bound)[0]));
  if (!keys.ok()) return keys.status();
  size_t best = 0;
  for (size_t i = 1; i < items->size(); ++i) {
    absl::StatusOr<bool> better =
        want_max ? Compare(">", (*keys)[i], (*keys)[best]) : Compare("<", (*keys)[i], (*keys)[best]);
    if (!better.ok()) return better.status();
    if (*better) best = i;
  }
  return (*items)[best];
}

absl::StatusOr<Value> FilterMin(const Value& value, const CallArgs& args, Budget&) {
  return MinOrMax("min", false, value, args);
}

absl::StatusOr<Value> FilterMax(const Value& value, const CallArgs& args, Budget&) {
  return MinOrMax("max", true, value, args);
}

absl::StatusOr<Value> FilterSum(const Value& value, const CallArgs& args, Budget& budget) {
  absl::StatusOr<Args> bound = BindArgs("sum", args, {{"attribute", Value::None()}, {"start", Value::Int(0)}});
  if (!bound.ok()) return bound.status();
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) return items.status();
  Value total = (*bound)[1];
  for (const Value& item : *items) {
    Value term = item;
    if (!(*bound)[0].is_none()) {
      absl::StatusOr<Value> looked_up = LookupAttribute(item, (*bound)[0]);
      if (!looked_up.ok()) return looked_up.status();
      term = *std::move(looked_up);
    }
    absl::StatusOr<Value> sum = BinaryOperation("+", total, term, budget);
    if (!sum.ok()) return sum.status();
    total = *std::move(sum);
  }
  return total;
}

absl::StatusOr<Value> FilterAttr(const Value& value, const CallArgs& args, Budget&) {
  absl::StatusOr<Args> bound = BindArgs("attr", args, {{"name", std::nullopt}});
  if (!bound.ok()) return bound.status();
  const std::string name = ToStr((*bound)[0]);
  // Only Python attributes: a dict's keys are not attributes.
  if (value.is_dict() && value.dict().Find(name) != nullptr) {
    return Value::Undefined(absl::StrCat("'dict object' has no attribute '", name, "'"));
  }
  return GetAttribute(value, name);
}

// map(attribute=..., default=...) or map('filter', args...).
absl::StatusOr<Value> FilterMap(const Value& value, const CallArgs& args, Budget& budget) {
  if (!Truthy(value)) return Value::Sequence({}, SequenceKind::kGenerator);
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) return items.status();
  std::vector<Value> mapped;
  if (args.positional.empty()) {
    Value attribute, fallback = Value::None();
    for (const auto& [key, argument] : args.keyword) {
      if (key == "attribute") {
        attribute = argument;
      } else if (key == "default") {
        fallback = argument;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("Unexpected keyword argument '", key, "'"));
      }
    }
    if (attribute.is_undefined()) return absl::InvalidArgumentError("map requires a filter argument");
    for (const Value& item : *items) {
      absl::StatusOr<Value> looked_up = LookupAttribute(item, attribute);
      if (!looked_up.ok()) return looked_up.status();
      mapped.push_back(looked_up->is_undefined() && !fallback.is_none() ? fallback : *std::move(looked_up));
    }
    return Value::Sequence(std::move(mapped), SequenceKind::kGenerator);
  }
  if (!args.positional[0].is_string()) return TypeError("map() filter name must be a string");
  const std::string name = args.positional[0].string();
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : *items) {
    absl::StatusOr<Value> result = ApplyFilter(name, item, rest, budget);
    if (!result.ok()) return result.status();
    mapped.push_back(*std::move(result));
  }
  return Value::Sequence(std::move(mapped), SequenceKind::kGenerator);
}

// select / reject / selectattr / rejectattr (select_or_reject in Jinja).
absl::StatusOr<Value> SelectOrReject(const Value& value, const CallArgs& args, bool select, bool by_attribute) {
  if (!Truthy(value)) return Value::Sequence({}, SequenceKind::kGenerator);
  size_t offset = 0;
  Value attribute;
  if (by_attribute) {
    if (args.positional.empty()) return absl::InvalidArgumentError("Missing parameter for attribute name");
    attribute = args.positional[0];
    offset = 1;
  }
  std::string test;
  CallArgs test_args;
  if (args.positional.size() > offset) {
    if (!args.positional[offset].is_string()) return TypeError("the test name must be a string");
    test = args.positional[offset].string();
    test_args.positional.assign(args.positional.begin() + offset + 1, args.positional.end());
    test_args.keyword = args.keyword;
  }
  absl::StatusOr<std::vector<Value>> items = Iterate(value);
  if (!items.ok()) return items.status();
  std::vector<Value> kept;
  for (const Value& item : *items) {
    Value subject = item;
    if (by_attribute) {
      absl::StatusOr<Value> looked_up = LookupAttribute(item, attribute);
      if (!looked_up.ok()) return looked_up.status();
      subject = *std::move(looked_up);
    }
    bool passed = Truthy(subject);
    if (!test.empty()) {
      absl::StatusOr<bool> result = ApplyTest(test, subject, test_args);
      if (!result.ok()) return result.status();
      passed = *result;
    }
    if (passed == select) kept.push_back(item);
  }
  return Value::Sequence(std::move(kept), SequenceKind::kGenerator);
}

absl::StatusOr<Value> FilterSelect(const Value& value, const CallArgs& args, Budget&) {
  return SelectOrReject(value, args, true, false);
}
absl::StatusOr<Value> FilterReject(const Value& value, const CallArgs& args, Budget&) {
  return SelectOrReject(value, args, false, false);
}
absl::StatusOr<Value> FilterSelectAttr(const Value& value, const CallArgs& args, Budget&) {
  return SelectOrReject(value, args, true, true);
}
absl::StatusOr<Value> FilterRejectAttr(const Value& value, const CallArgs& args, Budget&) {
  return SelectOrReject(value, args, false, true);
}

const std::map<std::string, FilterFunction>& Filters() {
  static const auto* filters = new std::map<std::string, FilterFunction>{
      {"abs", FilterAbs},
      {"attr", FilterAttr},
      {"capitalize", FilterCapitalize},
      {"count", FilterLength},
      {"d", FilterDefault},
      {"default", FilterDefault},
      {"dictsort", FilterDictSort},
      {"e", FilterEscape},
      {"escape", FilterEscape},
      {"first", FilterFirst},
      {"float", FilterFloat},
      {"forceescape", FilterForceEscape},
      {"indent", FilterIndent},
      {"int", FilterInt},
      {"items", FilterItems},
      {"join", FilterJoin},
      {"last", FilterLast},
      {"length", FilterLength},
      {"list", FilterList},
      {"lower", FilterLower},
      {"map", FilterMap},
      {"max", FilterMax},
      {"min", FilterMin},
      {"reject", FilterReject},
      {"rejectattr", FilterRejectAttr},
      {"replace", FilterReplace},
      {"reverse", FilterReverse},
      {"round", FilterRound},
      {"safe", FilterSafe},
      {"select", FilterSelect},
      {"selectattr", FilterSelectAttr},
      {"sort", FilterSort},
      {"string", FilterString},
      {"sum", FilterSum},
      {"title", FilterTitle},
      {"tojson", FilterToJson},
      {"trim", FilterTrim},
      {"unique", FilterUnique},
      {"upper", FilterUpper},
  };
  return *filters;
}

bool IsUnsupportedJinjaFilter(const std::string& name) {
  static const char* const kNames[] = {"batch", "center", "filesizeformat", "format", "groupby", "pprint",
                                       "random", "slice", "striptags", "truncate", "urlencode", "urlize",
                                       "wordcount", "wordwrap", "xmlattr"};
  return std::any_of(std::begin(kNames), std::end(kNames), [&](const char* n) { return name == n; });
}

// ---- tests ----

absl::StatusOr<Value> OneTestArgument(const char* name, const CallArgs& args) {
  absl::StatusOr<Args> bound = BindArgs(name, args, {{"other", std::nullopt}});
  if (!bound.ok()) return bound.status();
  return (*bound)[0];
}

absl::Status NoTestArguments(const char* name, const CallArgs& args) {
  absl::StatusOr<Args> bound = BindArgs(name, args, {});
  return bound.status();
}

#define DSRT_SIMPLE_TEST(function, name, expression)                        \
  absl::StatusOr<bool> function(const Value& value, const CallArgs& args) { \
    absl::Status status = NoTestArguments(name, args);                      \
    if (!status.ok()) return status;                                        \
    return (expression);                                                    \
  }

DSRT_SIMPLE_TEST(TestDefined, "defined", !value.is_undefined())
DSRT_SIMPLE_TEST(TestUndefined, "undefined", value.is_undefined())
DSRT_SIMPLE_TEST(TestNone, "none", value.is_none())
DSRT_SIMPLE_TEST(TestString, "string", value.is_string())
DSRT_SIMPLE_TEST(TestNumber, "number", value.is_number())
DSRT_SIMPLE_TEST(TestInteger, "integer", value.is_int())
DSRT_SIMPLE_TEST(TestFloat, "float", value.is_float())
DSRT_SIMPLE_TEST(TestBoolean, "boolean", value.is_bool())
DSRT_SIMPLE_TEST(TestTrue, "true", value.is_bool() && value.boolean())
DSRT_SIMPLE_TEST(TestFalse, "false", value.is_bool() && !value.boolean())
DSRT_SIMPLE_TEST(TestMapping, "mapping", value.is_dict())
DSRT_SIMPLE_TEST(TestIterable, "iterable",
                 value.is_string() || value.is_list() || value.is_dict() || value.is_undefined())
DSRT_SIMPLE_TEST(TestSequence, "sequence",
                 value.is_string() || value.is_plain_sequence() || value.is_dict() || value.is_undefined() ||
                     (value.is_list() && value.sequence_kind() == SequenceKind::kRange))
DSRT_SIMPLE_TEST(TestCallable, "callable", value.is_function() || value.is_undefined())  // Undefined has __call__
DSRT_SIMPLE_TEST(TestLower, "lower", ToStr(value) != PyUpper(ToStr(value)) && ToStr(value) == PyLower(ToStr(value)))
DSRT_SIMPLE_TEST(TestUpper, "upper", ToStr(value) != PyLower(ToStr(value)) && ToStr(value) == PyUpper(ToStr(value)))

#undef DSRT_SIMPLE_TEST

absl::StatusOr<bool> Divisible(const Value& value, const Value& divisor, int64_t remainder) {
  Budget budget;
  absl::StatusOr<Value> mod = BinaryOperation("%", value, divisor, budget);
  if (!mod.ok()) return mod.status();
  return Equals(*mod, Value::Int(remainder));
}

absl::StatusOr<bool> TestOdd(const Value& value, const CallArgs& args) {
  absl::Status status = NoTestArguments("odd", args);
  if (!status.ok()) return status;
  return Divisible(value, Value::Int(2), 1);
}

absl::StatusOr<bool> TestEven(const Value& value, const CallArgs& args) {
  absl::Status status = NoTestArguments("even", args);
  if (!status.ok()) return status;
  return Divisible(value, Value::Int(2), 0);
}

absl::StatusOr<bool> TestDivisibleBy(const Value& value, const CallArgs& args) {
  absl::StatusOr<Args> bound = BindArgs("divisibleby", args, {{"num", std::nullopt}});
  if (!bound.ok()) return bound.status();
  return Divisible(value, (*bound)[0], 0);
}

absl::StatusOr<bool> CompareTest(const char* name, const char* op, const Value& value, const CallArgs& args) {
  absl::StatusOr<Value> other = OneTestArgument(name, args);
  if (!other.ok()) return other.status();
  return Compare(op, value, *other);
}

absl::StatusOr<bool> TestEq(const Value& v, const CallArgs& a) { return CompareTest("eq", "==", v, a); }
absl::StatusOr<bool> TestNe(const Value& v, const CallArgs& a) { return CompareTest("ne", "!=", v, a); }
absl::StatusOr<bool> TestLt(const Value& v, const CallArgs& a) { return CompareTest("lt", "<", v, a); }
absl::StatusOr<bool> TestLe(const Value& v, const CallArgs& a) { return CompareTest("le", "<=", v, a); }
absl::StatusOr<bool> TestGt(const Value& v, const CallArgs& a) { return CompareTest("gt", ">", v, a); }
absl::StatusOr<bool> TestGe(const Value& v, const CallArgs& a) { return CompareTest("ge", ">=", v, a); }
absl::StatusOr<bool> TestIn(const Value& v, const CallArgs& a) { return CompareTest("in", "in", v, a); }

// Python's `is`: None, True and False are singletons, small ints are cached.
absl::StatusOr<bool> TestSameAs(const Value& value, const CallArgs& args) {
  absl::StatusOr<Value> other = OneTestArgument("sameas", args);
  if (!other.ok()) return other.status();
  if (value.kind() != other->kind()) return false;
  switch (value.kind()) {
    case Value::Kind::kNone: return true;
    case Value::Kind::kBool: return value.boolean() == other->boolean();
    case Value::Kind::kInt: return value.integer() == other->integer() && value.integer() >= -5 && value.integer() <= 256;
    default: return value.SameObject(*other);
  }
}

const std::map<std::string, TestFunction>& Tests() {
  static const auto* tests = new std::map<std::string, TestFunction>{
      {"boolean", TestBoolean},     {"callable", TestCallable}, {"defined", TestDefined},
      {"divisibleby", TestDivisibleBy}, {"eq", TestEq},       {"equalto", TestEq},
      {"even", TestEven},           {"false", TestFalse},       {"float", TestFloat},
      {"ge", TestGe},               {"gt", TestGt},             {"greaterthan", TestGt},
      {"in", TestIn},               {"integer", TestInteger},   {"iterable", TestIterable},
      {"le", TestLe},               {"lessthan", TestLt},       {"lower", TestLower},
      {"lt", TestLt},               {"mapping", TestMapping},   {"ne", TestNe},
      {"none", TestNone},           {"number", TestNumber},     {"odd", TestOdd},
      {"sameas", TestSameAs},       {"sequence", TestSequence}, {"string", TestString},
      {"true", TestTrue},           {"undefined", TestUndefined}, {"upper", TestUpper},
  };
  return *tests;
}

}  // namespace

BuiltinSupport FilterSupport(const std::string& name) {
  if (Filters().count(name) > 0) return BuiltinSupport::kSupported;
  if (IsUnsupportedJinjaFilter(name)) return BuiltinSupport::kUnsupported;
  return BuiltinSupport::kUnknown;
}

BuiltinSupport TestSupport(const std::string& name) {
  if (Tests().count(name) > 0) return BuiltinSupport::kSupported;
  if (name == "escaped" || name == "filter" || name == "test") return BuiltinSupport::kUnsupported;
  return BuiltinSupport::kUnknown;
}

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& operand, const CallArgs& args,
                                  Budget& budget) {
  const auto found = Filters().find(name);
  if (found == Filters().end()) {
    if (IsUnsupportedJinjaFilter(name)) return absl::UnimplementedError(absl::StrCat("the '", name, "' filter is not supported"));
    return absl::InvalidArgumentError(absl::StrCat("no filter named '", name, "'"));
  }
  absl::Status status = budget.Step();
  if (!status.ok()) return status;
  absl::StatusOr<Value> result = found->second(operand, args, budget);
  // These filters work on soft_str(value), which keeps a Markup a Markup.
  static const char* const kKeepMarkup[] = {"trim", "lower", "upper", "capitalize", "title", "string", "indent"};
  const bool keeps_markup = std::any_of(std::begin(kKeepMarkup), std::end(kKeepMarkup),
                                        [&](const char* filter) { return name == filter; });
  if (result.ok() && keeps_markup && operand.is_markup() && result->is_string() && !result->is_markup()) {
    return Value::Markup(result->string());
  }
  return result;
}

absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& operand, const CallArgs& args) {
  const auto found = Tests().find(name);
  if (found == Tests().end()) {
    if (TestSupport(name) == BuiltinSupport::kUnsupported) {
      return absl::UnimplementedError(absl::StrCat("the '", name, "' test is not supported"));
    }
    return absl::InvalidArgumentError(absl::StrCat("no test named '", name, "'"));
  }
  return found->second(operand, args);
}

}  // namespace dsrt::chat
