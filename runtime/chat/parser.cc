#include "runtime/chat/parser.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/chat/builtins.h"
#include "ir/status_macros.h"

namespace dsrt::chat {
namespace {

constexpr int kMaxExpressionDepth = 100;
constexpr size_t kMaxBlockNesting = 100;

ExprPtr MakeExpr(ExprKind kind, SourcePos pos) {
  auto expr = std::make_unique<Expr>();
  expr->kind = kind;
  expr->pos = pos;
  return expr;
}

ExprPtr MakeUnary(ExprKind kind, SourcePos pos, ExprPtr operand) {
  ExprPtr expr = MakeExpr(kind, pos);
  expr->operand = std::move(operand);
  return expr;
}

ExprPtr MakeBinary(ExprKind kind, SourcePos pos, std::string op, ExprPtr left, ExprPtr right) {
  ExprPtr expr = MakeExpr(kind, pos);
  expr->name = std::move(op);
  expr->operand = std::move(left);
  expr->right = std::move(right);
  return expr;
}

StmtPtr MakeStmt(StmtKind kind, SourcePos pos) {
  auto stmt = std::make_unique<Stmt>();
  stmt->kind = kind;
  stmt->pos = pos;
  return stmt;
}

bool IsConstantName(const std::string& name) {
  return name == "true" || name == "false" || name == "none" || name == "True" || name == "False" ||
         name == "None";
}

std::string QuoteList(const std::vector<std::string>& names) {
  std::vector<std::string> quoted;
  for (const std::string& name : names) quoted.push_back(absl::StrCat("'", name, "'"));
  return absl::StrJoin(quoted, " or ");
}

// Tags Jinja knows that this engine does not implement.
bool IsUnsupportedTag(const std::string& name) {
  static const char* const kTags[] = {"block", "extends", "include", "import", "from", "call",
                                      "autoescape", "trans", "do"};
  return std::any_of(std::begin(kTags), std::end(kTags), [&](const char* tag) { return name == tag; });
}

enum class TupleItems { kExpression, kNoConditional, kPrimary };

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  absl::StatusOr<std::unique_ptr<Template>> Run() {
    auto result = std::make_unique<Template>();
    DSRT_ASSIGN_OR_RETURN(result->body, ParseBody({}));
    return result;
  }

 private:
  struct OpenBlock {
    std::string name;
    SourcePos pos;
    std::vector<std::string> end_tags;
  };

  // Counts recursion so that hostile nesting fails cleanly instead of
  // exhausting the stack.
  class DepthGuard {
   public:
    explicit DepthGuard(int& depth) : depth_(depth) { ++depth_; }
    ~DepthGuard() { --depth_; }
    bool exceeded() const { return depth_ > kMaxExpressionDepth; }

   private:
    int& depth_;
  };

  // ---- token stream ----

  const Token& Current() const { return tokens_[index_]; }
  const Token& Peek() const { return tokens_[std::min(index_ + 1, tokens_.size() - 1)]; }
  void Advance() {
    if (index_ + 1 < tokens_.size()) ++index_;
  }
  bool AtOperator(std::string_view op) const {
    return Current().kind == TokenKind::kOperator && Current().text == op;
  }
  bool AtName(std::string_view name) const { return Current().kind == TokenKind::kName && Current().text == name; }
  bool SkipOperator(std::string_view op) {
    if (!AtOperator(op)) return false;
    Advance();
    return true;
  }
  bool SkipName(std::string_view name) {
    if (!AtName(name)) return false;
    Advance();
    return true;
  }

  absl::Status ErrorHere(const std::string& message) const { return SyntaxErrorAt(Current().pos, message); }
  absl::Status UnexpectedHere(const std::string& expected) const {
    return ErrorHere(absl::StrCat("expected ", expected, ", got ", DescribeToken(Current())));
  }

  absl::Status ExpectOperator(std::string_view op) {
    if (SkipOperator(op)) return absl::OkStatus();
    return UnexpectedHere(absl::StrCat("'", std::string(op), "'"));
  }
  absl::Status ExpectName(std::string_view name) {
    if (SkipName(name)) return absl::OkStatus();
    return UnexpectedHere(absl::StrCat("'", std::string(name), "'"));
  }
  absl::StatusOr<std::string> ExpectAnyName(const char* what) {
    if (Current().kind != TokenKind::kName) return UnexpectedHere(what);
    std::string name = Current().text;
    Advance();
    return name;
  }
  absl::Status ExpectBlockEnd() {
    if (Current().kind != TokenKind::kBlockEnd) return UnexpectedHere("end of statement block '%}'");
    Advance();
    return absl::OkStatus();
  }
  // After a nested body stopped at `{% <end tag>`: consume the tag's name.
  std::string TakeEndTag() {
    std::string tag = Current().text;
    Advance();
    return tag;
  }

  // ---- statements ----

  // Parses until `{% <one of end_tags>`, leaving the end tag's name current.
  absl::StatusOr<Body> ParseBody(const std::vector<std::string>& end_tags) {
    Body body;
    while (true) {
      const Token& token = Current();
      switch (token.kind) {
        case TokenKind::kText: {
          StmtPtr text = MakeStmt(StmtKind::kText, token.pos);
          text->text = token.text;
          body.push_back(std::move(text));
          Advance();
          continue;
        }
        case TokenKind::kVariableBegin: {
          StmtPtr output = MakeStmt(StmtKind::kOutput, token.pos);
          Advance();
          DSRT_ASSIGN_OR_RETURN(output->expr, ParseTuple(TupleItems::kExpression, false, ""));
          if (Current().kind != TokenKind::kVariableEnd) return UnexpectedHere("end of print statement '}}'");
          Advance();
          body.push_back(std::move(output));
          continue;
        }
        case TokenKind::kBlockBegin: {
          tag_start_ = token.pos;
          const Token& name = Peek();
          if (name.kind == TokenKind::kName &&
              std::find(end_tags.begin(), end_tags.end(), name.text) != end_tags.end()) {
            Advance();
            return body;
          }
          Advance();
          DSRT_ASSIGN_OR_RETURN(StmtPtr stmt, ParseStatement());
          body.push_back(std::move(stmt));
          continue;
        }
        case TokenKind::kEnd:
          if (end_tags.empty()) return body;
          return SyntaxErrorAt(open_blocks_.back().pos,
                               absl::StrCat("'", open_blocks_.back().name, "' is never closed: expected ",
                                            QuoteList(end_tags), " before the end of the template"));
        default: return ErrorHere(absl::StrCat("unexpected ", DescribeToken(token)));
      }
    }
  }

  absl::StatusOr<Body> ParseNestedBody(const std::string& block, SourcePos pos, std::vector<std::string> end_tags) {
    if (open_blocks_.size() >= kMaxBlockNesting) return SyntaxErrorAt(pos, "blocks are nested too deeply");
    open_blocks_.push_back(OpenBlock{block, pos, end_tags});
    absl::StatusOr<Body> body = ParseBody(end_tags);
    open_blocks_.pop_back();
    return body;
  }

  // Current() is the tag name right after `{%`.
  absl::StatusOr<StmtPtr> ParseStatement() {
    if (Current().kind != TokenKind::kName) return UnexpectedHere("a tag name");
    const std::string tag = Current().text;
    if (tag == "if") return ParseIf();
    if (tag == "for") return ParseFor();
    if (tag == "set") return ParseSet();
    if (tag == "macro") return ParseMacro();
    if (tag == "filter") return ParseFilterBlock();
    if (tag == "with") return ParseWith();
    if (tag == "generation") return ParseGeneration();
    if (tag == "break" || tag == "continue") return ParseLoopControl();
    if (IsUnsupportedTag(tag)) {
      return ErrorAt(Current().pos, absl::StatusCode::kUnimplemented,
                     absl::StrCat("the '", tag, "' tag is not supported"));
    }
    if (open_blocks_.empty()) return ErrorHere(absl::StrCat("unknown tag '", tag, "'"));
    const OpenBlock& open = open_blocks_.back();
    return ErrorHere(absl::StrCat("unexpected tag '", tag, "': the innermost open block is '", open.name, "' at ",
                                  open.pos.line, ":", open.pos.column, ", which expects ",
                                  QuoteList(open.end_tags)));
  }

  absl::StatusOr<StmtPtr> ParseIf() {
    StmtPtr stmt = MakeStmt(StmtKind::kIf, tag_start_);
    Advance();
    while (true) {
      IfBranch branch;
      DSRT_ASSIGN_OR_RETURN(branch.condition, ParseTuple(TupleItems::kNoConditional, false, ""));
      DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
      DSRT_ASSIGN_OR_RETURN(branch.body, ParseNestedBody("if", stmt->pos, {"elif", "else", "endif"}));
      stmt->branches.push_back(std::move(branch));
      const std::string tag = TakeEndTag();
      if (tag == "elif") continue;
      if (tag == "else") {
        DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
        DSRT_ASSIGN_OR_RETURN(stmt->else_body, ParseNestedBody("if", stmt->pos, {"endif"}));
        TakeEndTag();
      }
      DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
  }

  absl::StatusOr<StmtPtr> ParseFor() {
    StmtPtr stmt = MakeStmt(StmtKind::kFor, tag_start_);
    Advance();
    DSRT_ASSIGN_OR_RETURN(stmt->target, ParseAssignTarget(/*with_tuple=*/true, /*with_namespace=*/false, "in"));
    DSRT_RETURN_IF_ERROR(ExpectName("in"));
    DSRT_ASSIGN_OR_RETURN(stmt->expr, ParseTuple(TupleItems::kNoConditional, false, "recursive"));
    if (SkipName("if")) {
      DSRT_ASSIGN_OR_RETURN(stmt->condition, ParseExpression(true));
    }
    if (AtName("recursive")) {
      return ErrorAt(Current().pos, absl::StatusCode::kUnimplemented, "recursive loops are not supported");
    }
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    ++loop_depth_;
    absl::StatusOr<Body> body = ParseNestedBody("for", stmt->pos, {"endfor", "else"});
    --loop_depth_;
    if (!body.ok()) return body.status();
    stmt->body = *std::move(body);
    if (TakeEndTag() == "else") {
      DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
      DSRT_ASSIGN_OR_RETURN(stmt->else_body, ParseNestedBody("for", stmt->pos, {"endfor"}));
      TakeEndTag();
    }
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    return stmt;
  }

  absl::StatusOr<StmtPtr> ParseSet() {
    StmtPtr stmt = MakeStmt(StmtKind::kSet, tag_start_);
    Advance();
    DSRT_ASSIGN_OR_RETURN(stmt->target, ParseAssignTarget(/*with_tuple=*/true, /*with_namespace=*/true, ""));
    if (SkipOperator("=")) {
      DSRT_ASSIGN_OR_RETURN(stmt->expr, ParseTuple(TupleItems::kExpression, false, ""));
      DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
      return stmt;
    }
    stmt->kind = StmtKind::kSetBlock;
    if (stmt->target.kind == AssignTarget::Kind::kTuple) {
      return SyntaxErrorAt(stmt->target.pos, "a block can only be assigned to a name or namespace attribute");
    }
    if (AtOperator("|")) {
      DSRT_ASSIGN_OR_RETURN(stmt->filter, ParseFilter(nullptr, /*start_inline=*/false));
    }
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    DSRT_ASSIGN_OR_RETURN(stmt->body, ParseNestedBody("set", stmt->pos, {"endset"}));
    TakeEndTag();
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    return stmt;
  }

  absl::StatusOr<StmtPtr> ParseMacro() {
    StmtPtr stmt = MakeStmt(StmtKind::kMacro, tag_start_);
    Advance();
    DSRT_ASSIGN_OR_RETURN(stmt->text, ExpectAnyName("a macro name"));
    if (IsConstantName(stmt->text)) return SyntaxErrorAt(stmt->pos, absl::StrCat("can't assign to '", stmt->text, "'"));
    DSRT_RETURN_IF_ERROR(ExpectOperator("("));
    while (!AtOperator(")")) {
      if (!stmt->params.empty()) DSRT_RETURN_IF_ERROR(ExpectOperator(","));
      MacroParam param;
      DSRT_ASSIGN_OR_RETURN(param.name, ExpectAnyName("a parameter name"));
      if (SkipOperator("=")) {
        DSRT_ASSIGN_OR_RETURN(param.default_value, ParseExpression(true));
      } else if (!stmt->params.empty() && stmt->params.back().default_value != nullptr) {
        return ErrorHere("non-default argument follows default argument");
      }
      stmt->params.push_back(std::move(param));
    }
    Advance();
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    macro_usage_.emplace_back(false, false);
    absl::StatusOr<Body> body = ParseNestedBody("macro", stmt->pos, {"endmacro"});
    std::tie(stmt->uses_varargs, stmt->uses_kwargs) = macro_usage_.back();
    macro_usage_.pop_back();
    loop_depth_ = saved_loop_depth;
    if (!body.ok()) return body.status();
    stmt->body = *std::move(body);
    TakeEndTag();
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    return stmt;
  }

  absl::StatusOr<StmtPtr> ParseFilterBlock() {
    StmtPtr stmt = MakeStmt(StmtKind::kFilterBlock, tag_start_);
    Advance();
    DSRT_ASSIGN_OR_RETURN(stmt->filter, ParseFilter(nullptr, /*start_inline=*/true));
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    DSRT_ASSIGN_OR_RETURN(stmt->body, ParseNestedBody("filter", stmt->pos, {"endfilter"}));
    TakeEndTag();
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    return stmt;
  }

  absl::StatusOr<StmtPtr> ParseWith() {
    StmtPtr stmt = MakeStmt(StmtKind::kWith, tag_start_);
    Advance();
    while (Current().kind != TokenKind::kBlockEnd) {
      if (!stmt->assignments.empty()) DSRT_RETURN_IF_ERROR(ExpectOperator(","));
      DSRT_ASSIGN_OR_RETURN(AssignTarget target, ParseAssignTarget(/*with_tuple=*/true, false, ""));
      DSRT_RETURN_IF_ERROR(ExpectOperator("="));
      DSRT_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
      stmt->assignments.emplace_back(std::move(target), std::move(value));
    }
    Advance();
    DSRT_ASSIGN_OR_RETURN(stmt->body, ParseNestedBody("with", stmt->pos, {"endwith"}));
    TakeEndTag();
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    return stmt;
  }

  // transformers' AssistantTracker extension: {% generation %} renders its
  // body (in a scope of its own, as Jinja's call blocks do).
  absl::StatusOr<StmtPtr> ParseGeneration() {
    StmtPtr stmt = MakeStmt(StmtKind::kWith, tag_start_);
    Advance();
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    absl::StatusOr<Body> body = ParseNestedBody("generation", stmt->pos, {"endgeneration"});
    loop_depth_ = saved_loop_depth;
    if (!body.ok()) return body.status();
    stmt->body = *std::move(body);
    TakeEndTag();
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    return stmt;
  }

  absl::StatusOr<StmtPtr> ParseLoopControl() {
    const bool is_break = AtName("break");
    StmtPtr stmt = MakeStmt(is_break ? StmtKind::kBreak : StmtKind::kContinue, Current().pos);
    if (loop_depth_ == 0) return ErrorHere(absl::StrCat("'", Current().text, "' outside of a loop"));
    Advance();
    DSRT_RETURN_IF_ERROR(ExpectBlockEnd());
    return stmt;
  }

  // ---- assignment targets ----

  absl::StatusOr<AssignTarget> ParseAssignTarget(bool with_tuple, bool with_namespace,
                                                 const std::string& extra_end) {
    AssignTarget target;
    target.pos = Current().pos;
    if (with_namespace && Current().kind == TokenKind::kName && Peek().kind == TokenKind::kOperator &&
        Peek().text == ".") {
      target.kind = AssignTarget::Kind::kNamespaceAttr;
      target.name = Current().text;
      Advance();
      Advance();
      DSRT_ASSIGN_OR_RETURN(target.attribute, ExpectAnyName("an attribute name"));
      return target;
    }
    ExprPtr expr;
    if (with_tuple) {
      DSRT_ASSIGN_OR_RETURN(expr, ParseTuple(TupleItems::kPrimary, false, extra_end));
    } else {
      DSRT_ASSIGN_OR_RETURN(expr, ParsePrimary());
    }
    return ToAssignTarget(*expr);
  }

  absl::StatusOr<AssignTarget> ToAssignTarget(const Expr& expr) {
    AssignTarget target;
    target.pos = expr.pos;
    if (expr.kind == ExprKind::kName) {
      target.name = expr.name;
      return target;
    }
    if (expr.kind != ExprKind::kTuple) return SyntaxErrorAt(expr.pos, "can't assign to this expression");
    target.kind = AssignTarget::Kind::kTuple;
    for (const ExprPtr& item : expr.items) {
      DSRT_ASSIGN_OR_RETURN(AssignTarget element, ToAssignTarget(*item));
      target.elements.push_back(std::move(element));
    }
    return target;
  }

  // ---- expressions (Jinja2's parser, function for function) ----

  bool IsTupleEnd(const std::string& extra_end) const {
    const TokenKind kind = Current().kind;
    if (kind == TokenKind::kVariableEnd || kind == TokenKind::kBlockEnd || AtOperator(")")) return true;
    return !extra_end.empty() && AtName(extra_end);
  }

  absl::StatusOr<ExprPtr> ParseTupleItem(TupleItems items) {
    switch (items) {
      case TupleItems::kExpression: return ParseExpression(true);
      case TupleItems::kNoConditional: return ParseExpression(false);
      case TupleItems::kPrimary: return ParsePrimary();
    }
    return ParseExpression(true);
  }

  absl::StatusOr<ExprPtr> ParseTuple(TupleItems items, bool explicit_parentheses, const std::string& extra_end) {
    const SourcePos pos = Current().pos;
    std::vector<ExprPtr> elements;
    bool is_tuple = false;
    while (true) {
      if (!elements.empty()) DSRT_RETURN_IF_ERROR(ExpectOperator(","));
      if (IsTupleEnd(extra_end)) break;
      DSRT_ASSIGN_OR_RETURN(ExprPtr element, ParseTupleItem(items));
      elements.push_back(std::move(element));
      if (!AtOperator(",")) break;
      is_tuple = true;
    }
    if (!is_tuple && !elements.empty()) return std::move(elements.front());
    if (!is_tuple && !explicit_parentheses) return UnexpectedHere("an expression");
    ExprPtr tuple = MakeExpr(ExprKind::kTuple, pos);
    tuple->items = std::move(elements);
    return tuple;
  }

  absl::StatusOr<ExprPtr> ParseExpression(bool with_conditional) {
    DepthGuard guard(depth_);
    if (guard.exceeded()) return ErrorHere("expression is nested too deeply");
    if (with_conditional) return ParseConditional();
    return ParseOr();
  }

  absl::StatusOr<ExprPtr> ParseConditional() {
    DepthGuard guard(depth_);
    if (guard.exceeded()) return ErrorHere("expression is nested too deeply");
    DSRT_ASSIGN_OR_RETURN(ExprPtr value, ParseOr());
    while (AtName("if")) {
      const SourcePos pos = Current().pos;
      Advance();
      ExprPtr conditional = MakeExpr(ExprKind::kConditional, pos);
      DSRT_ASSIGN_OR_RETURN(ExprPtr condition, ParseOr());
      ExprPtr otherwise;
      if (SkipName("else")) {
        DSRT_ASSIGN_OR_RETURN(otherwise, ParseConditional());
      }
      conditional->items.push_back(std::move(value));
      conditional->items.push_back(std::move(condition));
      conditional->items.push_back(std::move(otherwise));
      value = std::move(conditional);
    }
    return value;
  }

  absl::StatusOr<ExprPtr> ParseOr() {
    DSRT_ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
    while (AtName("or")) {
      const SourcePos pos = Current().pos;
      Advance();
      DSRT_ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
      left = MakeBinary(ExprKind::kOr, pos, "or", std::move(left), std::move(right));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseAnd() {
    DSRT_ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
    while (AtName("and")) {
      const SourcePos pos = Current().pos;
      Advance();
      DSRT_ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
      left = MakeBinary(ExprKind::kAnd, pos, "and", std::move(left), std::move(right));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseNot() {
    if (!AtName("not")) return ParseCompare();
    DepthGuard guard(depth_);
    if (guard.exceeded()) return ErrorHere("expression is nested too deeply");
    const SourcePos pos = Current().pos;
    Advance();
    DSRT_ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
    return MakeUnary(ExprKind::kNot, pos, std::move(operand));
  }

  absl::StatusOr<ExprPtr> ParseCompare() {
    const SourcePos pos = Current().pos;
    DSRT_ASSIGN_OR_RETURN(ExprPtr left, ParseMath1());
    std::vector<Comparison> comparisons;
    while (true) {
      Comparison comparison;
      comparison.pos = Current().pos;
      if (Current().kind == TokenKind::kOperator &&
          (Current().text == "==" || Current().text == "!=" || Current().text == "<" || Current().text == "<=" ||
           Current().text == ">" || Current().text == ">=")) {
        comparison.op = Current().text;
        Advance();
      } else if (AtName("in")) {
        comparison.op = "in";
        Advance();
      } else if (AtName("not") && Peek().kind == TokenKind::kName && Peek().text == "in") {
        comparison.op = "notin";
        Advance();
        Advance();
      } else {
        break;
      }
      DSRT_ASSIGN_OR_RETURN(comparison.right, ParseMath1());
      comparisons.push_back(std::move(comparison));
    }
    if (comparisons.empty()) return left;
    ExprPtr compare = MakeExpr(ExprKind::kCompare, pos);
    compare->operand = std::move(left);
    compare->comparisons = std::move(comparisons);
    return compare;
  }

  absl::StatusOr<ExprPtr> ParseMath1() {
    DSRT_ASSIGN_OR_RETURN(ExprPtr left, ParseConcat());
    while (AtOperator("+") || AtOperator("-")) {
      const Token op = Current();
      Advance();
      DSRT_ASSIGN_OR_RETURN(ExprPtr right, ParseConcat());
      left = MakeBinary(ExprKind::kBinary, op.pos, op.text, std::move(left), std::move(right));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseConcat() {
    const SourcePos pos = Current().pos;
    DSRT_ASSIGN_OR_RETURN(ExprPtr first, ParseMath2());
    if (!AtOperator("~")) return first;
    ExprPtr concat = MakeExpr(ExprKind::kConcat, pos);
    concat->items.push_back(std::move(first));
    while (SkipOperator("~")) {
      DSRT_ASSIGN_OR_RETURN(ExprPtr next, ParseMath2());
      concat->items.push_back(std::move(next));
    }
    return concat;
  }

  absl::StatusOr<ExprPtr> ParseMath2() {
    DSRT_ASSIGN_OR_RETURN(ExprPtr left, ParsePow());
    while (AtOperator("*") || AtOperator("/") || AtOperator("//") || AtOperator("%")) {
      const Token op = Current();
      Advance();
      DSRT_ASSIGN_OR_RETURN(ExprPtr right, ParsePow());
      left = MakeBinary(ExprKind::kBinary, op.pos, op.text, std::move(left), std::move(right));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParsePow() {
    DSRT_ASSIGN_OR_RETURN(ExprPtr left, ParseUnary(true));
    while (AtOperator("**")) {
      const SourcePos pos = Current().pos;
      Advance();
      DSRT_ASSIGN_OR_RETURN(ExprPtr right, ParseUnary(true));
      left = MakeBinary(ExprKind::kBinary, pos, "**", std::move(left), std::move(right));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    DepthGuard guard(depth_);
    if (guard.exceeded()) return ErrorHere("expression is nested too deeply");
    const SourcePos pos = Current().pos;
    ExprPtr node;
    if (AtOperator("-") || AtOperator("+")) {
      const ExprKind kind = AtOperator("-") ? ExprKind::kNegate : ExprKind::kPositive;
      Advance();
      DSRT_ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(false));
      node = MakeUnary(kind, pos, std::move(operand));
    } else {
      DSRT_ASSIGN_OR_RETURN(node, ParsePrimary());
    }
    DSRT_ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
    if (!with_filter) return node;
    return ParseFilterExpression(std::move(node));
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    const Token& token = Current();
    switch (token.kind) {
      case TokenKind::kName: return ParseName();
      case TokenKind::kString: {
        ExprPtr literal = MakeExpr(ExprKind::kLiteral, token.pos);
        std::string text;
        while (Current().kind == TokenKind::kString) {
          text += Current().text;
          Advance();
        }
        literal->literal = Value::String(std::move(text));
        return literal;
      }
      case TokenKind::kInteger:
      case TokenKind::kFloat: {
        ExprPtr literal = MakeExpr(ExprKind::kLiteral, token.pos);
        literal->literal =
            token.kind == TokenKind::kInteger ? Value::Int(token.int_value) : Value::Float(token.float_value);
        Advance();
        return literal;
      }
      default: break;
    }
    if (AtOperator("(")) {
      Advance();
      DSRT_ASSIGN_OR_RETURN(ExprPtr inner, ParseTuple(TupleItems::kExpression, true, ""));
      DSRT_RETURN_IF_ERROR(ExpectOperator(")"));
      return inner;
    }
    if (AtOperator("[")) return ParseList();
    if (AtOperator("{")) return ParseDict();
    return ErrorHere(absl::StrCat("unexpected ", DescribeToken(token)));
  }

  absl::StatusOr<ExprPtr> ParseName() {
    const Token& token = Current();
    ExprPtr expr = MakeExpr(ExprKind::kLiteral, token.pos);
    if (token.text == "true" || token.text == "True") {
      expr->literal = Value::Bool(true);
    } else if (token.text == "false" || token.text == "False") {
      expr->literal = Value::Bool(false);
    } else if (token.text == "none" || token.text == "None") {
      expr->literal = Value::None();
    } else {
      expr->kind = ExprKind::kName;
      expr->name = token.text;
      NoteNameUse(token.text);
    }
    Advance();
    return expr;
  }

  void NoteNameUse(const std::string& name) {
    if (macro_usage_.empty()) return;
    if (name == "varargs") macro_usage_.back().first = true;
    if (name == "kwargs") macro_usage_.back().second = true;
  }

  absl::StatusOr<ExprPtr> ParseList() {
    ExprPtr list = MakeExpr(ExprKind::kList, Current().pos);
    Advance();
    while (!AtOperator("]")) {
      if (!list->items.empty()) {
        DSRT_RETURN_IF_ERROR(ExpectOperator(","));
        if (AtOperator("]")) break;
      }
      DSRT_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression(true));
      list->items.push_back(std::move(item));
    }
    Advance();
    return list;
  }

  absl::StatusOr<ExprPtr> ParseDict() {
    ExprPtr dict = MakeExpr(ExprKind::kDict, Current().pos);
    Advance();
    while (!AtOperator("}")) {
      if (!dict->items.empty()) {
        DSRT_RETURN_IF_ERROR(ExpectOperator(","));
        if (AtOperator("}")) break;
      }
      DSRT_ASSIGN_OR_RETURN(ExprPtr key, ParseExpression(true));
      DSRT_RETURN_IF_ERROR(ExpectOperator(":"));
      DSRT_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
      dict->items.push_back(std::move(key));
      dict->items.push_back(std::move(value));
    }
    Advance();
    return dict;
  }

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      if (AtOperator(".") || AtOperator("[")) {
        DSRT_ASSIGN_OR_RETURN(node, ParseSubscript(std::move(node)));
      } else if (AtOperator("(")) {
        DSRT_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  absl::StatusOr<ExprPtr> ParseFilterExpression(ExprPtr node) {
    while (true) {
      if (AtOperator("|")) {
        DSRT_ASSIGN_OR_RETURN(node, ParseFilter(std::move(node), false));
      } else if (AtName("is")) {
        DSRT_ASSIGN_OR_RETURN(node, ParseTest(std::move(node)));
      } else if (AtOperator("(")) {
        DSRT_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr node) {
    const SourcePos pos = Current().pos;
    if (SkipOperator(".")) {
      const Token attribute = Current();
      Advance();
      if (attribute.kind == TokenKind::kName) {
        ExprPtr get = MakeUnary(ExprKind::kGetAttr, pos, std::move(node));
        get->name = attribute.text;
        return get;
      }
      if (attribute.kind != TokenKind::kInteger) return SyntaxErrorAt(attribute.pos, "expected name or number after '.'");
      ExprPtr get = MakeUnary(ExprKind::kGetItem, pos, std::move(node));
      ExprPtr index = MakeExpr(ExprKind::kLiteral, attribute.pos);
      index->literal = Value::Int(attribute.int_value);
      get->items.push_back(std::move(index));
      return get;
    }
    Advance();  // [
    DSRT_ASSIGN_OR_RETURN(ExprPtr subscript, ParseSubscribed(std::move(node), pos));
    if (AtOperator(",")) {
      return ErrorAt(Current().pos, absl::StatusCode::kUnimplemented, "tuple subscripts are not supported");
    }
    DSRT_RETURN_IF_ERROR(ExpectOperator("]"));
    return subscript;
  }

  // One subscript: an index, or a slice [start:stop:step] with any part absent.
  absl::StatusOr<ExprPtr> ParseSubscribed(ExprPtr object, SourcePos pos) {
    ExprPtr start;
    if (!AtOperator(":")) {
      DSRT_ASSIGN_OR_RETURN(start, ParseExpression(true));
      if (!AtOperator(":")) {
        ExprPtr get = MakeUnary(ExprKind::kGetItem, pos, std::move(object));
        get->items.push_back(std::move(start));
        return get;
      }
    }
    Advance();  // :
    ExprPtr slice = MakeUnary(ExprKind::kSlice, pos, std::move(object));
    slice->items.push_back(std::move(start));
    ExprPtr stop;
    if (!AtOperator(":") && !AtOperator("]") && !AtOperator(",")) {
      DSRT_ASSIGN_OR_RETURN(stop, ParseExpression(true));
    }
    slice->items.push_back(std::move(stop));
    ExprPtr step;
    if (SkipOperator(":") && !AtOperator("]") && !AtOperator(",")) {
      DSRT_ASSIGN_OR_RETURN(step, ParseExpression(true));
    }
    slice->items.push_back(std::move(step));
    return slice;
  }

  absl::StatusOr<ArgsExpr> ParseCallArgs() {
    ArgsExpr args;
    DSRT_RETURN_IF_ERROR(ExpectOperator("("));
    while (!AtOperator(")")) {
      if (!args.positional.empty() || !args.keyword.empty()) {
        DSRT_RETURN_IF_ERROR(ExpectOperator(","));
        if (AtOperator(")")) break;
      }
      if (AtOperator("*") || AtOperator("**")) {
        return ErrorAt(Current().pos, absl::StatusCode::kUnimplemented, "*args and **kwargs in calls are not supported");
      }
      if (Current().kind == TokenKind::kName && Peek().kind == TokenKind::kOperator && Peek().text == "=") {
        const std::string key = Current().text;
        for (const auto& existing : args.keyword) {
          if (existing.first == key) return ErrorHere(absl::StrCat("keyword argument '", key, "' repeated"));
        }
        Advance();
        Advance();
        DSRT_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
        args.keyword.emplace_back(key, std::move(value));
        continue;
      }
      if (!args.keyword.empty()) return ErrorHere("positional argument follows keyword argument");
      DSRT_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression(true));
      args.positional.push_back(std::move(value));
    }
    Advance();
    return args;
  }

  absl::StatusOr<ExprPtr> ParseCall(ExprPtr callee) {
    ExprPtr call = MakeUnary(ExprKind::kCall, Current().pos, std::move(callee));
    DSRT_ASSIGN_OR_RETURN(call->args, ParseCallArgs());
    return call;
  }

  absl::StatusOr<std::string> ParseDottedName(const char* what) {
    DSRT_ASSIGN_OR_RETURN(std::string name, ExpectAnyName(what));
    while (SkipOperator(".")) {
      DSRT_ASSIGN_OR_RETURN(std::string part, ExpectAnyName(what));
      name += "." + part;
    }
    return name;
  }

  static absl::Status CheckSupport(BuiltinSupport support, const char* what, const std::string& name, SourcePos pos) {
    if (support == BuiltinSupport::kSupported) return absl::OkStatus();
    if (support == BuiltinSupport::kUnsupported) {
      return ErrorAt(pos, absl::StatusCode::kUnimplemented, absl::StrCat("the '", name, "' ", what, " is not supported"));
    }
    return SyntaxErrorAt(pos, absl::StrCat("no ", what, " named '", name, "'"));
  }

  // `|name(args)|name...`; with start_inline the first name has no '|'
  // (`{% filter upper %}`). A null operand stands for a block's output.
  absl::StatusOr<ExprPtr> ParseFilter(ExprPtr operand, bool start_inline) {
    while (AtOperator("|") || start_inline) {
      if (!start_inline) Advance();
      start_inline = false;
      const SourcePos pos = Current().pos;
      DSRT_ASSIGN_OR_RETURN(std::string name, ParseDottedName("a filter name"));
      DSRT_RETURN_IF_ERROR(CheckSupport(FilterSupport(name), "filter", name, pos));
      ExprPtr filter = MakeUnary(ExprKind::kFilter, pos, std::move(operand));
      filter->name = std::move(name);
      if (AtOperator("(")) {
        DSRT_ASSIGN_OR_RETURN(filter->args, ParseCallArgs());
      }
      operand = std::move(filter);
    }
    return operand;
  }

  absl::StatusOr<ExprPtr> ParseTest(ExprPtr operand) {
    Advance();  // is
    const bool negated = SkipName("not");
    const SourcePos pos = Current().pos;
    DSRT_ASSIGN_OR_RETURN(std::string name, ParseDottedName("a test name"));
    DSRT_RETURN_IF_ERROR(CheckSupport(TestSupport(name), "test", name, pos));
    ExprPtr test = MakeUnary(ExprKind::kTest, pos, std::move(operand));
    test->name = std::move(name);
    test->negated = negated;
    if (AtOperator("(")) {
      DSRT_ASSIGN_OR_RETURN(test->args, ParseCallArgs());
      return test;
    }
    const TokenKind kind = Current().kind;
    const bool argument_follows = kind == TokenKind::kName || kind == TokenKind::kString ||
                                  kind == TokenKind::kInteger || kind == TokenKind::kFloat || AtOperator("[") ||
                                  AtOperator("{");
    if (!argument_follows || AtName("else") || AtName("or") || AtName("and")) return test;
    if (AtName("is")) return ErrorHere("you cannot chain multiple tests with 'is'");
    DSRT_ASSIGN_OR_RETURN(ExprPtr argument, ParsePrimary());
    DSRT_ASSIGN_OR_RETURN(argument, ParsePostfix(std::move(argument)));
    test->args.positional.push_back(std::move(argument));
    return test;
  }

  std::vector<Token> tokens_;
  size_t index_ = 0;
  SourcePos tag_start_;  // the '{%' of the statement being parsed
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<OpenBlock> open_blocks_;
  std::vector<std::pair<bool, bool>> macro_usage_;  // (varargs, kwargs) per macro being parsed
};

}  // namespace

absl::StatusOr<std::unique_ptr<Template>> ParseTemplate(std::string_view source) {
  DSRT_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(source));
  return Parser(std::move(tokens)).Run();
}

}  // namespace dsrt::chat
