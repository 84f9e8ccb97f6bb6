// Python operator semantics: arithmetic, comparison, membership, iteration.
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "runtime/chat/builtins.h"
#include "runtime/chat/call_args.h"
#include "runtime/chat/py_string.h"

namespace dsrt::chat {
namespace {

bool IsIntLike(const Value& value) { return value.is_int() || value.is_bool(); }

absl::Status Unsupported(const std::string& op, const Value& left, const Value& right) {
  return TypeError(absl::StrCat("unsupported operand type(s) for ", op, ": '", TypeName(left), "' and '",
                                TypeName(right), "'"));
}

absl::Status IntegerOverflow() {
  return absl::OutOfRangeError("integer overflow (Python would switch to big integers here)");
}

absl::StatusOr<Value> ConcatenateLists(const Value& left, const Value& right, Budget& budget) {
  if (left.sequence_kind() != right.sequence_kind()) {
    return TypeError(absl::StrCat("can only concatenate ", TypeName(left), " (not \"", TypeName(right), "\") to ",
                                  TypeName(left)));
  }
  std::vector<Value> items = left.items();
  items.insert(items.end(), right.items().begin(), right.items().end());
  absl::Status status = budget.Step(static_cast<int64_t>(items.size()));
  if (!status.ok()) return status;
  return left.is_tuple() ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
}

absl::StatusOr<Value> Add(const Value& left, const Value& right, Budget& budget) {
  if ((left.is_markup() && right.is_string()) || (left.is_string() && right.is_markup())) {
    return absl::UnimplementedError(
        "'+' with a Markup string (from |safe or |escape) is not supported: Jinja would HTML-escape the other side");
  }
  if (left.is_number() && right.is_number()) {
    if (left.is_float() || right.is_float()) return Value::Float(left.AsDouble() + right.AsDouble());
    int64_t sum = 0;
    if (__builtin_add_overflow(left.AsInt(), right.AsInt(), &sum)) return IntegerOverflow();
    return Value::Int(sum);
  }
  if (left.is_string() && right.is_string()) {
    absl::Status status = budget.BuildString(left.string().size() + right.string().size());
    if (!status.ok()) return status;
    return Value::String(left.string() + right.string());
  }
  if (left.is_plain_sequence() && right.is_list()) return ConcatenateLists(left, right, budget);
  if (left.is_string() || left.is_plain_sequence()) {
    return TypeError(absl::StrCat("can only concatenate ", TypeName(left), " (not \"", TypeName(right), "\") to ",
                                  TypeName(left)));
  }
  return Unsupported("+", left, right);
}

absl::StatusOr<Value> Subtract(const Value& left, const Value& right) {
  if (!left.is_number() || !right.is_number()) return Unsupported("-", left, right);
  if (left.is_float() || right.is_float()) return Value::Float(left.AsDouble() - right.AsDouble());
  int64_t difference = 0;
  if (__builtin_sub_overflow(left.AsInt(), right.AsInt(), &difference)) return IntegerOverflow();
  return Value::Int(difference);
}

absl::StatusOr<Value> Repeat(const Value& sequence, int64_t count, Budget& budget) {
  if (count <= 0) return sequence.is_string() ? Value::String("") : (sequence.is_tuple() ? Value::Tuple({}) : Value::List({}));
  constexpr size_t kMaxListItems = size_t{1} << 20;
  const size_t unit = sequence.is_string() ? sequence.string().size() : sequence.items().size();
  const size_t limit = sequence.is_string() ? Budget::kMaxStringBytes : kMaxListItems;
  size_t total = 0;
  if (__builtin_mul_overflow(unit, static_cast<uint64_t>(count), &total) || total > limit) {
    return absl::ResourceExhaustedError("repetition result is too large");
  }
  absl::Status status = sequence.is_string() ? budget.BuildString(total) : budget.Step(static_cast<int64_t>(total));
  if (!status.ok()) return status;
  if (sequence.is_string()) {
    std::string out;
    out.reserve(total);
    for (int64_t i = 0; i < count; ++i) out += sequence.string();
    return Value::String(std::move(out));
  }
  std::vector<Value> items;
  items.reserve(total);
  for (int64_t i = 0; i < count; ++i) items.insert(items.end(), sequence.items().begin(), sequence.items().end());
  return sequence.is_tuple() ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
}

absl::StatusOr<Value> Multiply(const Value& left, const Value& right, Budget& budget) {
  if (left.is_number() && right.is_number()) {
    if (left.is_float() || right.is_float()) return Value::Float(left.AsDouble() * right.AsDouble());
    int64_t product = 0;
    if (__builtin_mul_overflow(left.AsInt(), right.AsInt(), &product)) return IntegerOverflow();
    return Value::Int(product);
  }
  if ((left.is_string() || left.is_plain_sequence()) && IsIntLike(right)) return Repeat(left, right.AsInt(), budget);
  if (IsIntLike(left) && (right.is_string() || right.is_plain_sequence())) return Repeat(right, left.AsInt(), budget);
  return Unsupported("*", left, right);
}

absl::StatusOr<Value> TrueDivide(const Value& left, const Value& right) {
  if (!left.is_number() || !right.is_number()) return Unsupported("/", left, right);
  if (right.AsDouble() == 0.0) return absl::InvalidArgumentError("division by zero");
  return Value::Float(left.AsDouble() / right.AsDouble());
}

// Python's float divmod (Objects/floatobject.c).
void FloatDivMod(double x, double y, double& floor_div, double& mod) {
  mod = std::fmod(x, y);
  double div = (x - mod) / y;
  if (mod != 0.0) {
    if ((y < 0) != (mod < 0)) {
      mod += y;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, y);
  }
  if (div != 0.0) {
    floor_div = std::floor(div);
    if (div - floor_div > 0.5) floor_div += 1.0;
  } else {
    floor_div = std::copysign(0.0, x / y);
  }
}

absl::StatusOr<Value> FloorDivide(const Value& left, const Value& right) {
  if (!left.is_number() || !right.is_number()) return Unsupported("//", left, right);
  if (left.is_float() || right.is_float()) {
    if (right.AsDouble() == 0.0) return absl::InvalidArgumentError("float floor division by zero");
    double floor_div = 0, mod = 0;
    FloatDivMod(left.AsDouble(), right.AsDouble(), floor_div, mod);
    return Value::Float(floor_div);
  }
  const int64_t a = left.AsInt(), b = right.AsInt();
  if (b == 0) return absl::InvalidArgumentError("integer division or modulo by zero");
  if (a == std::numeric_limits<int64_t>::min() && b == -1) return IntegerOverflow();
  int64_t quotient = a / b;
  if (a % b != 0 && ((a < 0) != (b < 0))) --quotient;
  return Value::Int(quotient);
}

absl::StatusOr<Value> Modulo(const Value& left, const Value& right) {
  if (left.is_string()) return absl::UnimplementedError("printf-style '%' string formatting is not supported");
  if (!left.is_number() || !right.is_number()) return Unsupported("%", left, right);
  if (left.is_float() || right.is_float()) {
    if (right.AsDouble() == 0.0) return absl::InvalidArgumentError("float modulo");
    double floor_div = 0, mod = 0;
    FloatDivMod(left.AsDouble(), right.AsDouble(), floor_div, mod);
    return Value::Float(mod);
  }
  const int64_t a = left.AsInt(), b = right.AsInt();
  if (b == 0) return absl::InvalidArgumentError("integer division or modulo by zero");
  if (b == -1) return Value::Int(0);
  int64_t remainder = a % b;
  if (remainder != 0 && ((remainder < 0) != (b < 0))) remainder += b;
  return Value::Int(remainder);
}

absl::StatusOr<Value> Power(const Value& left, const Value& right) {
  if (!left.is_number() || !right.is_number()) return Unsupported("** or pow()", left, right);
  if (IsIntLike(left) && IsIntLike(right) && right.AsInt() >= 0) {
    int64_t base = left.AsInt(), exponent = right.AsInt(), result = 1;
    while (exponent > 0) {
      if ((exponent & 1) && __builtin_mul_overflow(result, base, &result)) return IntegerOverflow();
      exponent >>= 1;
      if (exponent > 0 && __builtin_mul_overflow(base, base, &base)) return IntegerOverflow();
    }
    return Value::Int(result);
  }
  const double base = left.AsDouble(), exponent = right.AsDouble();
  if (base == 0.0 && exponent < 0) return absl::InvalidArgumentError("0.0 cannot be raised to a negative power");
  if (base < 0 && std::trunc(exponent) != exponent) {
    return absl::UnimplementedError("complex results of '**' are not supported");
  }
  return Value::Float(std::pow(base, exponent));
}

bool ApplyOrdering(const std::string& op, int sign) {
  if (op == "<") return sign < 0;
  if (op == "<=") return sign <= 0;
  if (op == ">") return sign > 0;
  return sign >= 0;
}

absl::StatusOr<bool> Ordering(const std::string& op, const Value& left, const Value& right) {
  if (left.is_number() && right.is_number()) {
    if (IsIntLike(left) && IsIntLike(right)) {
      const int64_t a = left.AsInt(), b = right.AsInt();
      return ApplyOrdering(op, a < b ? -1 : (a > b ? 1 : 0));
    }
    const double a = left.AsDouble(), b = right.AsDouble();
    if (op == "<") return a < b;
    if (op == "<=") return a <= b;
    if (op == ">") return a > b;
    return a >= b;
  }
  if (left.is_string() && right.is_string()) return ApplyOrdering(op, left.string().compare(right.string()));
  if (left.is_plain_sequence() && right.is_list() && left.sequence_kind() == right.sequence_kind()) {
    const auto& a = left.items();
    const auto& b = right.items();
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      if (!Equals(a[i], b[i])) return Ordering(op, a[i], b[i]);
    }
    return ApplyOrdering(op, a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0));
  }
  return TypeError(absl::StrCat("'", op, "' not supported between instances of '", TypeName(left), "' and '",
                                TypeName(right), "'"));
}

absl::StatusOr<bool> Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined: return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        return TypeError(absl::StrCat("'in <string>' requires string as left operand, not ", TypeName(item)));
      }
      return container.string().find(item.string()) != std::string::npos;
    case Value::Kind::kList: {
      absl::StatusOr<std::vector<Value>> elements = Iterate(container);
      if (!elements.ok()) return elements.status();
      for (const Value& element : *elements) {
        if (Equals(element, item)) return true;
      }
      return false;
    }
    case Value::Kind::kDict:
      if (item.is_list() && item.sequence_kind() == SequenceKind::kList) return TypeError("unhashable type: 'list'");
      if (item.is_dict()) return TypeError("unhashable type: 'dict'");
      return item.is_string() && container.dict().Find(item.string()) != nullptr;
    default: return TypeError(absl::StrCat("argument of type '", TypeName(container), "' is not iterable"));
  }
}

}  // namespace

absl::Status Budget::Step(int64_t units) {
  remaining_ -= units;
  if (remaining_ >= 0) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      "rendering exceeded its work budget (a loop that is endless or far too large?)");
}

absl::Status Budget::BuildString(size_t bytes) {
  if (bytes > kMaxStringBytes) {
    return absl::ResourceExhaustedError(absl::StrCat("a string would exceed ", kMaxStringBytes >> 20, " MiB"));
  }
  return Step(static_cast<int64_t>(bytes / 16));
}

absl::Status UndefinedError(const Value& undefined) {
  if (undefined.undefined_hint().empty()) return absl::InvalidArgumentError("undefined value");
  return absl::InvalidArgumentError(undefined.undefined_hint());
}

absl::StatusOr<std::vector<Value>> Iterate(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kUndefined: return std::vector<Value>();
    case Value::Kind::kList:
      if (value.is_iterator()) {
        // Generators are single-use in Python; a second pass would see
        // nothing (or the rest). Refuse rather than guess.
        if (value.list().consumed) {
          return absl::UnimplementedError(absl::StrCat("iterating a ", TypeName(value),
                                                       " a second time is not supported; convert it with |list"));
        }
        value.list().consumed = true;
      }
      return value.items();
    case Value::Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(value.dict().entries.size());
      for (const auto& entry : value.dict().entries) keys.push_back(Value::String(entry.first));
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<Value> characters;
      for (char32_t c : DecodeUtf8(value.string())) {
        std::string character;
        AppendUtf8(c, character);
        characters.push_back(Value::String(std::move(character)));
      }
      return characters;
    }
    default: return TypeError(absl::StrCat("'", TypeName(value), "' object is not iterable"));
  }
}

absl::StatusOr<Value> BinaryOperation(const std::string& op, const Value& left, const Value& right, Budget& budget) {
  if (op == "%" && left.is_string()) return Modulo(left, right);  // formatting, whatever the right side
  if (left.is_undefined()) return UndefinedError(left);
  if (right.is_undefined()) return UndefinedError(right);
  if (op == "+") return Add(left, right, budget);
  if (op == "-") return Subtract(left, right);
  if (op == "*") return Multiply(left, right, budget);
  if (op == "/") return TrueDivide(left, right);
  if (op == "//") return FloorDivide(left, right);
  if (op == "%") return Modulo(left, right);
  if (op == "**") return Power(left, right);
  return absl::InternalError(absl::StrCat("unknown operator ", op));
}

absl::StatusOr<bool> Compare(const std::string& op, const Value& left, const Value& right) {
  if (op == "==") return Equals(left, right);
  if (op == "!=") return !Equals(left, right);
  if (op == "in" || op == "notin") {
    absl::StatusOr<bool> contained = Contains(right, left);
    if (!contained.ok()) return contained.status();
    return op == "in" ? *contained : !*contained;
  }
  if (left.is_undefined()) return UndefinedError(left);
  if (right.is_undefined()) return UndefinedError(right);
  return Ordering(op, left, right);
}

absl::StatusOr<Value> Negate(const Value& operand) {
  if (operand.is_undefined()) return UndefinedError(operand);
  if (operand.is_float()) return Value::Float(-operand.floating());
  if (!IsIntLike(operand)) return TypeError(absl::StrCat("bad operand type for unary -: '", TypeName(operand), "'"));
  if (operand.AsInt() == std::numeric_limits<int64_t>::min()) return IntegerOverflow();
  return Value::Int(-operand.AsInt());
}

absl::StatusOr<Value> Positive(const Value& operand) {
  if (operand.is_undefined()) return UndefinedError(operand);
  if (operand.is_float()) return operand;
  if (!IsIntLike(operand)) return TypeError(absl::StrCat("bad operand type for unary +: '", TypeName(operand), "'"));
  return Value::Int(operand.AsInt());
}

}  // namespace dsrt::chat
