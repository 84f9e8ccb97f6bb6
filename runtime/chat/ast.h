// The parsed form of a template: statements (text, output, if, for, set,
// macro, ...) holding expressions. Built by parser.cc, walked by
// interpreter.cc. Every node keeps its source position for error messages.
#ifndef DSRT_RUNTIME_CHAT_AST_H_
#define DSRT_RUNTIME_CHAT_AST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/chat/lexer.h"
#include "runtime/chat/value.h"

namespace dsrt::chat {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct ArgsExpr {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
};

enum class ExprKind {
  kLiteral,      // literal
  kName,         // name
  kList,         // items
  kTuple,        // items
  kDict,         // items: key, value, key, value, ...
  kGetAttr,      // operand.name
  kGetItem,      // operand[items[0]]
  kSlice,        // operand[items[0]:items[1]:items[2]], a null item is absent
  kCall,         // operand(args)
  kFilter,       // operand|name(args); a null operand stands for a block's output
  kTest,         // operand is [not] name(args)
  kNot,          // not operand
  kNegate,       // -operand
  kPositive,     // +operand
  kAnd,          // operand and right
  kOr,           // operand or right
  kBinary,       // operand <name> right, name one of + - * / // % **
  kConcat,       // items joined with ~
  kCompare,      // operand, then comparisons chained (a < b < c)
  kConditional,  // items: value if true, condition, value if false (may be null)
};

struct Comparison {
  std::string op;  // "==", "!=", "<", "<=", ">", ">=", "in", "notin"
  SourcePos pos;   // of the operator
  ExprPtr right;
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  SourcePos pos;
  Value literal;
  std::string name;
  ExprPtr operand;
  ExprPtr right;
  std::vector<ExprPtr> items;
  ArgsExpr args;
  std::vector<Comparison> comparisons;
  bool negated = false;  // kTest: `is not`
};

struct AssignTarget {
  enum class Kind { kName, kTuple, kNamespaceAttr };
  Kind kind = Kind::kName;
  SourcePos pos;
  std::string name;                    // the variable (kName, kNamespaceAttr)
  std::string attribute;               // kNamespaceAttr: ns.attribute
  std::vector<AssignTarget> elements;  // kTuple
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct IfBranch {
  ExprPtr condition;
  Body body;
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null when required
};

enum class StmtKind {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches, else_body
  kFor,          // for target in expr [if condition]: body, else_body
  kSet,          // set target = expr
  kSetBlock,     // set target [| filter] %} body {% endset
  kMacro,        // macro text(params): body
  kBreak,
  kContinue,
  kFilterBlock,  // filter <filter> %} body {% endfilter
  kWith,         // with assignments: body (also transformers' {% generation %})
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  SourcePos pos;
  std::string text;  // kText: the text; kMacro: the macro's name
  ExprPtr expr;
  ExprPtr condition;
  ExprPtr filter;  // kSetBlock, kFilterBlock: a kFilter chain ending in a null operand
  AssignTarget target;
  std::vector<IfBranch> branches;
  Body body;
  Body else_body;
  std::vector<MacroParam> params;
  bool uses_varargs = false;
  bool uses_kwargs = false;
  std::vector<std::pair<AssignTarget, ExprPtr>> assignments;
};

struct Template {
  Body body;
};

}  // namespace dsrt::chat

#endif  // DSRT_RUNTIME_CHAT_AST_H_
