#include "runtime/chat/interpreter.h"

#include <algorithm>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"
#include "runtime/chat/builtins.h"

namespace dsrt::chat {
namespace {

constexpr int kMaxValueDepth = 256;
constexpr int kMaxMacroDepth = 64;

enum class Flow { kNormal, kBreak, kContinue };

// Prefixes a builtin's error with the position of the expression that failed.
absl::Status Locate(SourcePos pos, const absl::Status& status) {
  if (status.ok()) return status;
  return ErrorAt(pos, status.code(), std::string(status.message()));
}

template <typename T>
absl::StatusOr<T> Locate(SourcePos pos, absl::StatusOr<T> result) {
  if (result.ok()) return result;
  return Locate(pos, result.status());
}

class Interpreter {
 public:
  explicit Interpreter(std::vector<std::pair<std::string, Value>> variables) {
    for (auto& [name, value] : MakeGlobals()) globals_[name] = std::move(value);
    frames_.emplace_back();
    for (auto& [name, value] : variables) frames_[0][name] = std::move(value);
  }

  absl::StatusOr<std::string> Render(const Template& tmpl) {
    std::string out;
    DSRT_ASSIGN_OR_RETURN(Flow flow, RenderBody(tmpl.body, out));
    (void)flow;
    return out;
  }

 private:
  using Frame = std::unordered_map<std::string, Value>;

  // A new innermost scope for the lifetime of the guard.
  class ScopeGuard {
   public:
    explicit ScopeGuard(Interpreter& interpreter) : interpreter_(interpreter) { interpreter_.frames_.emplace_back(); }
    ~ScopeGuard() { interpreter_.frames_.pop_back(); }

   private:
    Interpreter& interpreter_;
  };

  // ---- variables ----

  Value Lookup(const std::string& name) const {
    for (size_t i = frames_.size(); i-- > base_;) {
      const auto found = frames_[i].find(name);
      if (found != frames_[i].end()) return found->second;
    }
    if (base_ > 0) {
      const auto found = frames_[0].find(name);
      if (found != frames_[0].end()) return found->second;
    }
    const auto global = globals_.find(name);
    if (global != globals_.end()) return global->second;
    return Value::Undefined(absl::StrCat("'", name, "' is undefined"));
  }

  void SetVariable(const std::string& name, Value value) { frames_.back()[name] = std::move(value); }

  absl::Status Assign(const AssignTarget& target, const Value& value) {
    switch (target.kind) {
      case AssignTarget::Kind::kName:
        SetVariable(target.name, value);
        return absl::OkStatus();
      case AssignTarget::Kind::kTuple: return AssignTuple(target, value);
      case AssignTarget::Kind::kNamespaceAttr: return AssignNamespaceAttribute(target, value);
    }
    return absl::OkStatus();
  }

  absl::Status AssignTuple(const AssignTarget& target, const Value& value) {
    DSRT_ASSIGN_OR_RETURN(std::vector<Value> items, Locate(target.pos, Iterate(value)));
    const size_t expected = target.elements.size();
    if (items.size() > expected) {
      return Locate(target.pos, absl::InvalidArgumentError(absl::StrCat("too many values to unpack (expected ", expected, ")")));
    }
    if (items.size() < expected) {
      return Locate(target.pos, absl::InvalidArgumentError(absl::StrCat(
                                    "not enough values to unpack (expected ", expected, ", got ", items.size(), ")")));
    }
    for (size_t i = 0; i < expected; ++i) DSRT_RETURN_IF_ERROR(Assign(target.elements[i], items[i]));
    return absl::OkStatus();
  }

  absl::Status AssignNamespaceAttribute(const AssignTarget& target, const Value& value) {
    const Value object = Lookup(target.name);
    if (!object.is_namespace() || object.dict().type_name != "Namespace") {
      return SyntaxErrorAt(target.pos, "cannot assign attribute on non-namespace object");
    }
    if (value.HoldsNamespace()) {
      return ErrorAt(target.pos, absl::StatusCode::kUnimplemented,
                     "storing a namespace inside a namespace is not supported");
    }
    object.mutable_namespace().Set(target.attribute, value);
    return absl::OkStatus();
  }

  // ---- statements ----

  absl::Status Append(std::string& out, const std::string& text) {
    out += text;
    if (out.size() > Budget::kMaxStringBytes) {
      return absl::ResourceExhaustedError(absl::StrCat("rendered text exceeds ", Budget::kMaxStringBytes >> 20, " MiB"));
    }
    return budget_.Step(static_cast<int64_t>(text.size() / 16));
  }

  // Python prints a generator or a function as "<... at 0x...>", which no
  // template means to write.
  static absl::Status CheckPrintable(SourcePos pos, const Value& value) {
    if (!value.is_iterator() && !value.is_function()) return absl::OkStatus();
    return ErrorAt(pos, absl::StatusCode::kUnimplemented,
                   absl::StrCat("printing a ", TypeName(value), " is not supported",
                                value.is_function() ? " (call it?)" : "; convert it with |list or |join"));
  }

  absl::StatusOr<Flow> RenderBody(const Body& body, std::string& out) {
    for (const StmtPtr& stmt : body) {
      DSRT_ASSIGN_OR_RETURN(Flow flow, RenderStatement(*stmt, out));
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> RenderStatement(const Stmt& stmt, std::string& out) {
    DSRT_RETURN_IF_ERROR(Locate(stmt.pos, budget_.Step()));
    switch (stmt.kind) {
      case StmtKind::kText: DSRT_RETURN_IF_ERROR(Append(out, stmt.text)); return Flow::kNormal;
      case StmtKind::kOutput: {
        DSRT_ASSIGN_OR_RETURN(Value value, Eval(*stmt.expr));
        DSRT_RETURN_IF_ERROR(CheckPrintable(stmt.expr->pos, value));
        DSRT_RETURN_IF_ERROR(Append(out, ToStr(value)));
        return Flow::kNormal;
      }
      case StmtKind::kIf: return RenderIf(stmt, out);
      case StmtKind::kFor: return RenderFor(stmt, out);
      case StmtKind::kSet: {
        DSRT_ASSIGN_OR_RETURN(Value value, Eval(*stmt.expr));
        DSRT_RETURN_IF_ERROR(Assign(stmt.target, value));
        return Flow::kNormal;
      }
      case StmtKind::kSetBlock: return RenderSetBlock(stmt);
      case StmtKind::kMacro: DefineMacro(stmt); return Flow::kNormal;
      case StmtKind::kBreak: return Flow::kBreak;
      case StmtKind::kContinue: return Flow::kContinue;
      case StmtKind::kFilterBlock: return RenderFilterBlock(stmt, out);
      case StmtKind::kWith: return RenderWith(stmt, out);
    }
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> RenderIf(const Stmt& stmt, std::string& out) {
    for (const IfBranch& branch : stmt.branches) {
      DSRT_ASSIGN_OR_RETURN(Value condition, Eval(*branch.condition));
      if (Truthy(condition)) return RenderBody(branch.body, out);
    }
    return RenderBody(stmt.else_body, out);
  }

  absl::StatusOr<std::vector<Value>> LoopItems(const Stmt& stmt) {
    DSRT_ASSIGN_OR_RETURN(Value iterable, Eval(*stmt.expr));
    DSRT_ASSIGN_OR_RETURN(std::vector<Value> items, Locate(stmt.expr->pos, Iterate(iterable)));
    DSRT_RETURN_IF_ERROR(Locate(stmt.pos, budget_.Step(static_cast<int64_t>(items.size()))));
    if (stmt.condition == nullptr) return items;
    std::vector<Value> kept;
    for (const Value& item : items) {
      ScopeGuard scope(*this);
      DSRT_RETURN_IF_ERROR(Assign(stmt.target, item));
      DSRT_ASSIGN_OR_RETURN(Value keep, Eval(*stmt.condition));
      if (Truthy(keep)) kept.push_back(item);
    }
    return kept;
  }

  // Jinja's `loop`: one object per loop whose fields move on each iteration.
  class LoopObject {
   public:
    explicit LoopObject(const std::vector<Value>& items) : items_(items), index_(std::make_shared<int64_t>(0)) {
      std::shared_ptr<const int64_t> index = index_;
      auto cycle = [index](const CallArgs& args) -> absl::StatusOr<Value> {
        if (args.positional.empty()) return absl::InvalidArgumentError("no items for cycling given");
        return args.positional[*index % static_cast<int64_t>(args.positional.size())];
      };
      value_ = Value::Namespace({{"index", {}}, {"index0", {}}, {"revindex", {}}, {"revindex0", {}}, {"first", {}},
                                 {"last", {}}, {"length", {}}, {"previtem", {}}, {"nextitem", {}},
                                 {"depth", Value::Int(1)}, {"depth0", Value::Int(0)},
                                 {"cycle", Value::Function("loop.cycle", cycle)}},
                                "LoopContext");
    }

    const Value& MoveTo(size_t position) {
      const int64_t i = static_cast<int64_t>(position);
      const int64_t length = static_cast<int64_t>(items_.size());
      *index_ = i;
      auto& fields = value_.mutable_namespace().entries;  // in the order built above
      fields[0].second = Value::Int(i + 1);
      fields[1].second = Value::Int(i);
      fields[2].second = Value::Int(length - i);
      fields[3].second = Value::Int(length - i - 1);
      fields[4].second = Value::Bool(i == 0);
      fields[5].second = Value::Bool(i == length - 1);
      fields[6].second = Value::Int(length);
      fields[7].second = i > 0 ? items_[position - 1] : Value::Undefined("there is no previous item");
      fields[8].second = i + 1 < length ? items_[position + 1] : Value::Undefined("there is no next item");
      return value_;
    }

   private:
    const std::vector<Value>& items_;
    std::shared_ptr<int64_t> index_;
    Value value_;
  };

  absl::StatusOr<Flow> RenderElse(const Stmt& stmt, std::string& out) {
    ScopeGuard scope(*this);
    DSRT_RETURN_IF_ERROR(RenderBody(stmt.else_body, out).status());
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> RenderFor(const Stmt& stmt, std::string& out) {
    DSRT_ASSIGN_OR_RETURN(std::vector<Value> items, LoopItems(stmt));
    // Jinja marks an iteration as done only when its body ran to the end, so
    // the else block also runs when every iteration ended in continue/break.
    bool completed_an_iteration = false;
    LoopObject loop(items);
    for (size_t i = 0; i < items.size(); ++i) {
      DSRT_RETURN_IF_ERROR(Locate(stmt.pos, budget_.Step(4)));
      ScopeGuard scope(*this);
      DSRT_RETURN_IF_ERROR(Assign(stmt.target, items[i]));
      SetVariable("loop", loop.MoveTo(i));
      DSRT_ASSIGN_OR_RETURN(Flow flow, RenderBody(stmt.body, out));
      if (flow == Flow::kBreak) break;
      if (flow == Flow::kNormal) completed_an_iteration = true;
    }
    if (!completed_an_iteration) return RenderElse(stmt, out);
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> RenderSetBlock(const Stmt& stmt) {
    std::string captured;
    DSRT_ASSIGN_OR_RETURN(Flow flow, RenderBody(stmt.body, captured));
    if (flow != Flow::kNormal) return flow;
    Value value = Value::String(std::move(captured));
    if (stmt.filter != nullptr) {
      DSRT_ASSIGN_OR_RETURN(value, ApplyFilterChain(*stmt.filter, value));
    }
    DSRT_RETURN_IF_ERROR(Assign(stmt.target, value));
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> RenderFilterBlock(const Stmt& stmt, std::string& out) {
    std::string captured;
    DSRT_ASSIGN_OR_RETURN(Flow flow, RenderBody(stmt.body, captured));
    DSRT_ASSIGN_OR_RETURN(Value value, ApplyFilterChain(*stmt.filter, Value::String(std::move(captured))));
    DSRT_RETURN_IF_ERROR(Append(out, ToStr(value)));
    return flow;
  }

  absl::StatusOr<Flow> RenderWith(const Stmt& stmt, std::string& out) {
    std::vector<Value> values;
    for (const auto& assignment : stmt.assignments) {
      DSRT_ASSIGN_OR_RETURN(Value value, Eval(*assignment.second));
      values.push_back(std::move(value));
    }
    ScopeGuard scope(*this);
    for (size_t i = 0; i < values.size(); ++i) DSRT_RETURN_IF_ERROR(Assign(stmt.assignments[i].first, values[i]));
    return RenderBody(stmt.body, out);
  }

  // ---- macros ----

  void DefineMacro(const Stmt& stmt) {
    const Stmt* macro = &stmt;
    SetVariable(stmt.text, Value::Function(
                               stmt.text, [this, macro](const CallArgs& args) { return CallMacro(*macro, args); },
                               /*errors_verbatim=*/true));
  }

  absl::StatusOr<Frame> BindMacroArguments(const Stmt& macro, const CallArgs& args) {
    Frame frame;
    const size_t declared = macro.params.size();
    if (args.positional.size() > declared && !macro.uses_varargs) {
      return SyntaxErrorAt(macro.pos, absl::StrCat("macro '", macro.text, "' takes not more than ", declared,
                                                   " argument(s)"));
    }
    std::vector<Value> extra_positional;
    for (size_t i = 0; i < args.positional.size(); ++i) {
      if (i < declared) {
        frame[macro.params[i].name] = args.positional[i];
      } else {
        extra_positional.push_back(args.positional[i]);
      }
    }
    std::vector<std::pair<std::string, Value>> extra_keyword;
    for (const auto& [key, value] : args.keyword) {
      const bool is_param = std::any_of(macro.params.begin(), macro.params.end(),
                                        [&](const MacroParam& param) { return param.name == key; });
      if (!is_param) {
        if (!macro.uses_kwargs) {
          return SyntaxErrorAt(macro.pos, absl::StrCat("macro '", macro.text, "' takes no keyword argument '", key, "'"));
        }
        extra_keyword.emplace_back(key, value);
        continue;
      }
      if (frame.count(key) > 0) {
        return SyntaxErrorAt(macro.pos, absl::StrCat("macro '", macro.text, "' got multiple values for argument '", key, "'"));
      }
      frame[key] = value;
    }
    if (macro.uses_varargs) frame["varargs"] = Value::Tuple(std::move(extra_positional));
    if (macro.uses_kwargs) frame["kwargs"] = Value::Dict(std::move(extra_keyword));
    return frame;
  }

  absl::StatusOr<Value> CallMacro(const Stmt& macro, const CallArgs& args) {
    if (macro_depth_ >= kMaxMacroDepth) {
      return ErrorAt(macro.pos, absl::StatusCode::kResourceExhausted,
                     absl::StrCat("macro '", macro.text, "' calls nest more than ", kMaxMacroDepth, " deep"));
    }
    DSRT_ASSIGN_OR_RETURN(Frame frame, BindMacroArguments(macro, args));
    // The macro sees its own frame and the template's top level only.
    const size_t saved_base = base_;
    frames_.push_back(std::move(frame));
    base_ = frames_.size() - 1;
    ++macro_depth_;
    absl::StatusOr<std::string> rendered = RenderMacroBody(macro);
    --macro_depth_;
    frames_.resize(base_);
    base_ = saved_base;
    if (!rendered.ok()) return rendered.status();
    return Value::String(*std::move(rendered));
  }

  absl::StatusOr<std::string> RenderMacroBody(const Stmt& macro) {
    for (const MacroParam& param : macro.params) {
      if (frames_.back().count(param.name) > 0) continue;
      if (param.default_value == nullptr) {
        SetVariable(param.name, Value::Undefined(absl::StrCat("parameter '", param.name, "' was not provided")));
        continue;
      }
      DSRT_ASSIGN_OR_RETURN(Value value, Eval(*param.default_value));
      SetVariable(param.name, std::move(value));
    }
    std::string out;
    DSRT_RETURN_IF_ERROR(RenderBody(macro.body, out).status());
    return out;
  }

  // ---- expressions ----

  // What touching `value` costs, so that operations on huge strings and lists
  // (which scan or copy them) use up the work budget in proportion.
  static int64_t WorkUnits(const Value& value) {
    if (value.is_string()) return 1 + static_cast<int64_t>(value.string().size() / 16);
    if (value.is_dict() || value.is_namespace()) return 1 + static_cast<int64_t>(value.dict().entries.size());
    if (!value.is_list()) return 1;
    int64_t units = 1 + static_cast<int64_t>(value.items().size());
    for (const Value& item : value.items()) {
      if (item.is_string()) units += static_cast<int64_t>(item.string().size() / 16);
    }
    return units;
  }

  absl::Status Charge(SourcePos pos, const Value& value) { return Locate(pos, budget_.Step(WorkUnits(value))); }

  absl::StatusOr<Value> CheckDepth(SourcePos pos, Value value) {
    if (value.Depth() <= kMaxValueDepth) return value;
    return ErrorAt(pos, absl::StatusCode::kResourceExhausted,
                   absl::StrCat("value nested more than ", kMaxValueDepth, " levels deep"));
  }

  absl::StatusOr<Value> Eval(const Expr& expr) {
    DSRT_RETURN_IF_ERROR(Locate(expr.pos, budget_.Step()));
    switch (expr.kind) {
      case ExprKind::kLiteral: return expr.literal;
      case ExprKind::kName: return Lookup(expr.name);
      case ExprKind::kList:
      case ExprKind::kTuple: return EvalSequence(expr);
      case ExprKind::kDict: return EvalDict(expr);
      case ExprKind::kGetAttr: return EvalGetAttr(expr);
      case ExprKind::kGetItem: return EvalGetItem(expr);
      case ExprKind::kSlice: return EvalSlice(expr);
      case ExprKind::kCall: return EvalCall(expr);
      case ExprKind::kFilter: return EvalFilter(expr);
      case ExprKind::kTest: return EvalTest(expr);
      case ExprKind::kNot: {
        DSRT_ASSIGN_OR_RETURN(Value operand, Eval(*expr.operand));
        return Value::Bool(!Truthy(operand));
      }
      case ExprKind::kNegate:
      case ExprKind::kPositive: return EvalSign(expr);
      case ExprKind::kAnd:
      case ExprKind::kOr: return EvalLogical(expr);
      case ExprKind::kBinary: return EvalBinary(expr);
      case ExprKind::kConcat: return EvalConcat(expr);
      case ExprKind::kCompare: return EvalCompare(expr);
      case ExprKind::kConditional: return EvalConditional(expr);
    }
    return absl::InternalError("unknown expression kind");
  }

  absl::StatusOr<std::vector<Value>> EvalAll(const std::vector<ExprPtr>& exprs) {
    std::vector<Value> values;
    values.reserve(exprs.size());
    for (const ExprPtr& expr : exprs) {
      DSRT_ASSIGN_OR_RETURN(Value value, Eval(*expr));
      values.push_back(std::move(value));
    }
    return values;
  }

  absl::StatusOr<CallArgs> EvalArgs(const ArgsExpr& args) {
    CallArgs values;
    DSRT_ASSIGN_OR_RETURN(values.positional, EvalAll(args.positional));
    for (const auto& [key, expr] : args.keyword) {
      DSRT_ASSIGN_OR_RETURN(Value value, Eval(*expr));
      values.keyword.emplace_back(key, std::move(value));
    }
    return values;
  }

  absl::StatusOr<Value> EvalSequence(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(std::vector<Value> items, EvalAll(expr.items));
    Value sequence = expr.kind == ExprKind::kTuple ? Value::Tuple(std::move(items)) : Value::List(std::move(items));
    return CheckDepth(expr.pos, std::move(sequence));
  }

  absl::StatusOr<Value> EvalDict(const Expr& expr) {
    DictData entries;
    for (size_t i = 0; i + 1 < expr.items.size(); i += 2) {
      DSRT_ASSIGN_OR_RETURN(Value key, Eval(*expr.items[i]));
      if (!key.is_string()) {
        return ErrorAt(expr.items[i]->pos, absl::StatusCode::kUnimplemented,
                       absl::StrCat("dict keys must be strings here, not ", TypeName(key)));
      }
      DSRT_ASSIGN_OR_RETURN(Value value, Eval(*expr.items[i + 1]));
      entries.Set(key.string(), std::move(value));
    }
    return CheckDepth(expr.pos, Value::Dict(std::move(entries.entries)));
  }

  absl::StatusOr<Value> EvalGetAttr(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(Value object, Eval(*expr.operand));
    return Locate(expr.pos, GetAttribute(object, expr.name));
  }

  absl::StatusOr<Value> EvalGetItem(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(Value object, Eval(*expr.operand));
    DSRT_ASSIGN_OR_RETURN(Value key, Eval(*expr.items[0]));
    if (object.is_string()) DSRT_RETURN_IF_ERROR(Charge(expr.pos, object));
    return Locate(expr.pos, GetItem(object, key));
  }

  absl::StatusOr<Value> EvalOptional(const ExprPtr& expr) {
    if (expr == nullptr) return Value::None();
    return Eval(*expr);
  }

  absl::StatusOr<Value> EvalSlice(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(Value object, Eval(*expr.operand));
    DSRT_ASSIGN_OR_RETURN(Value start, EvalOptional(expr.items[0]));
    DSRT_ASSIGN_OR_RETURN(Value stop, EvalOptional(expr.items[1]));
    DSRT_ASSIGN_OR_RETURN(Value step, EvalOptional(expr.items[2]));
    DSRT_RETURN_IF_ERROR(Charge(expr.pos, object));
    return Locate(expr.pos, GetSlice(object, start, stop, step));
  }

  absl::StatusOr<Value> EvalCall(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(Value callee, Eval(*expr.operand));
    DSRT_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(expr.args));
    if (callee.is_undefined()) return Locate(expr.pos, UndefinedError(callee));
    if (!callee.is_function()) {
      return Locate(expr.pos, absl::InvalidArgumentError(absl::StrCat("'", TypeName(callee), "' object is not callable")));
    }
    const FunctionData& function = callee.function();
    absl::StatusOr<Value> result = function.call(args);
    if (!result.ok()) return function.errors_verbatim ? result.status() : Locate(expr.pos, result.status());
    DSRT_RETURN_IF_ERROR(Charge(expr.pos, *result));
    return CheckDepth(expr.pos, *std::move(result));
  }

  absl::StatusOr<Value> ApplyFilterExpr(const Expr& filter, const Value& input) {
    DSRT_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(filter.args));
    DSRT_RETURN_IF_ERROR(Charge(filter.pos, input));
    DSRT_ASSIGN_OR_RETURN(Value result, Locate(filter.pos, ApplyFilter(filter.name, input, args, budget_)));
    DSRT_RETURN_IF_ERROR(Charge(filter.pos, result));
    return CheckDepth(filter.pos, std::move(result));
  }

  // A filter chain of a {% filter %} or {% set %} block: the innermost
  // filter (null operand) gets the block's output.
  absl::StatusOr<Value> ApplyFilterChain(const Expr& filter, const Value& block_output) {
    Value input = block_output;
    if (filter.operand != nullptr) {
      DSRT_ASSIGN_OR_RETURN(input, ApplyFilterChain(*filter.operand, block_output));
    }
    return ApplyFilterExpr(filter, input);
  }

  absl::StatusOr<Value> EvalFilter(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(Value input, Eval(*expr.operand));
    return ApplyFilterExpr(expr, input);
  }

  absl::StatusOr<Value> EvalTest(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(Value operand, Eval(*expr.operand));
    DSRT_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(expr.args));
    DSRT_RETURN_IF_ERROR(Charge(expr.pos, operand));
    DSRT_ASSIGN_OR_RETURN(bool passed, Locate(expr.pos, ApplyTest(expr.name, operand, args)));
    return Value::Bool(passed != expr.negated);
  }

  absl::StatusOr<Value> EvalSign(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(Value operand, Eval(*expr.operand));
    if (expr.kind == ExprKind::kNegate) return Locate(expr.pos, Negate(operand));
    return Locate(expr.pos, Positive(operand));
  }

  // Python's `and` / `or` return one of their operands.
  absl::StatusOr<Value> EvalLogical(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(Value left, Eval(*expr.operand));
    const bool decided = expr.kind == ExprKind::kAnd ? !Truthy(left) : Truthy(left);
    if (decided) return left;
    return Eval(*expr.right);
  }

  absl::StatusOr<Value> EvalBinary(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(Value left, Eval(*expr.operand));
    DSRT_ASSIGN_OR_RETURN(Value right, Eval(*expr.right));
    DSRT_ASSIGN_OR_RETURN(Value result, Locate(expr.pos, BinaryOperation(expr.name, left, right, budget_)));
    return CheckDepth(expr.pos, std::move(result));
  }

  absl::StatusOr<Value> EvalConcat(const Expr& expr) {
    std::string out;
    for (const ExprPtr& item : expr.items) {
      DSRT_ASSIGN_OR_RETURN(Value value, Eval(*item));
      DSRT_RETURN_IF_ERROR(CheckPrintable(item->pos, value));
      out += ToStr(value);
      DSRT_RETURN_IF_ERROR(Locate(expr.pos, budget_.BuildString(out.size())));
    }
    return Value::String(std::move(out));
  }

  absl::StatusOr<Value> EvalCompare(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(Value left, Eval(*expr.operand));
    for (const Comparison& comparison : expr.comparisons) {
      DSRT_ASSIGN_OR_RETURN(Value right, Eval(*comparison.right));
      DSRT_RETURN_IF_ERROR(Locate(comparison.pos, budget_.Step(WorkUnits(left) + WorkUnits(right))));
      DSRT_ASSIGN_OR_RETURN(bool holds, Locate(comparison.pos, Compare(comparison.op, left, right)));
      if (!holds) return Value::Bool(false);
      left = std::move(right);
    }
    return Value::Bool(true);
  }

  absl::StatusOr<Value> EvalConditional(const Expr& expr) {
    DSRT_ASSIGN_OR_RETURN(Value condition, Eval(*expr.items[1]));
    if (Truthy(condition)) return Eval(*expr.items[0]);
    if (expr.items[2] != nullptr) return Eval(*expr.items[2]);
    return Value::Undefined("the inline if-expression evaluated to false and no else section was defined.");
  }

  std::vector<Frame> frames_;
  size_t base_ = 0;  // the innermost macro call's frame (0 outside macros)
  std::unordered_map<std::string, Value> globals_;
  Budget budget_;
  int macro_depth_ = 0;
};

}  // namespace

absl::StatusOr<std::string> RenderTemplate(const Template& tmpl,
                                           std::vector<std::pair<std::string, Value>> variables) {
  Interpreter interpreter(std::move(variables));
  return interpreter.Render(tmpl);
}

}  // namespace dsrt::chat
