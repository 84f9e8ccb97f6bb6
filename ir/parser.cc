// A hand-written lexer and recursive-descent parser for the text form.
//
//   graph   := 'graph' name ('{' attr (',' attr)* '}')? '{' node* ('return' value (',' value)*)? '}'
//   node    := (value (',' value)* '=')? op '(' (value (',' value)*)? ')'
//              ('{' (attr (',' attr)*)? '}')? ('@' name)? (':' type (',' type)*)?
//   attr    := name '=' (number | string | '[' (number (',' number)* | '.')? ']')
//   type    := dtype '[' (dim (',' dim)*)? ']'
//
// A node has a ':' type list exactly when it has results.

#include "ir/parser.h"

#include <charconv>
#include <set>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ir/op_registry.h"
#include "ir/printer.h"
#include "ir/status_macros.h"
#include "ir/verifier.h"

namespace dsrt::ir {
namespace {

enum class TokenKind {
  kEnd,
  kWord,    // graph, Linear, f32, tokens, 64, -1.5e-06, .
  kValue,   // %x (text holds the name)
  kScope,   // @layers.0 (text holds the name)
  kString,  // "..." (text holds the unescaped contents)
  kPunct,   // one of ( ) { } [ ] , = :
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string text;
  absl::string_view spelling;  // as written, for error messages
  int line = 1;
  int column = 1;

  bool Is(char punct) const { return kind == TokenKind::kPunct && text.size() == 1 && text[0] == punct; }
  bool IsWord(absl::string_view word) const { return kind == TokenKind::kWord && text == word; }
};

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; }
bool IsWordChar(char c) { return IsNameChar(c) || c == '+'; }
bool IsPunct(char c) { return c != '\0' && absl::string_view("(){}[],=:").find(c) != absl::string_view::npos; }

std::string Location(int line, int column) { return absl::StrCat("line ", line, ":", column, ": "); }

class Lexer {
 public:
  explicit Lexer(absl::string_view text) : text_(text) {}

  absl::StatusOr<std::vector<Token>> Run() {
    std::vector<Token> tokens;
    while (true) {
      SkipSpaceAndComments();
      Token token;
      token.line = line_;
      token.column = column_;
      const size_t start = pos_;
      if (pos_ >= text_.size()) {
        tokens.push_back(std::move(token));
        return tokens;
      }
      const char c = text_[pos_];
      if (IsPunct(c)) {
        token.kind = TokenKind::kPunct;
        token.text = std::string(1, c);
        Advance();
      } else if (c == '%' || c == '@') {
        token.kind = c == '%' ? TokenKind::kValue : TokenKind::kScope;
        Advance();
        DSRT_ASSIGN_OR_RETURN(token.text, LexName(c, token));
      } else if (c == '"') {
        token.kind = TokenKind::kString;
        DSRT_ASSIGN_OR_RETURN(token.text, LexString());
      } else if (IsWordChar(c)) {
        token.kind = TokenKind::kWord;
        while (pos_ < text_.size() && IsWordChar(text_[pos_])) Advance();
        token.text = std::string(text_.substr(start, pos_ - start));
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(Location(line_, column_), "unexpected character '", absl::CHexEscape(std::string(1, c)), "'"));
      }
      token.spelling = text_.substr(start, pos_ - start);
      tokens.push_back(std::move(token));
    }
  }

 private:
  void Advance() {
    if (text_[pos_] == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
    ++pos_;
  }

  void SkipSpaceAndComments() {
    while (pos_ < text_.size()) {
      if (absl::ascii_isspace(text_[pos_])) {
        Advance();
      } else if (text_.substr(pos_, 2) == "//") {
        while (pos_ < text_.size() && text_[pos_] != '\n') Advance();
      } else {
        return;
      }
    }
  }

  // After '%' or '@': a bare name or a quoted one.
  absl::StatusOr<std::string> LexName(char sigil, const Token& at) {
    if (pos_ < text_.size() && text_[pos_] == '"') {
      DSRT_ASSIGN_OR_RETURN(std::string name, LexString());
      if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(Location(at.line, at.column), "empty name"));
      return name;
    }
    const size_t start = pos_;
    while (pos_ < text_.size() && IsNameChar(text_[pos_])) Advance();
    if (pos_ == start) {
      return absl::InvalidArgumentError(
          absl::StrCat(Location(at.line, at.column), "expected a name after '", std::string(1, sigil), "'"));
    }
    return std::string(text_.substr(start, pos_ - start));
  }

  // A double-quoted string in which only '\"' and '\\' are escapes.
  absl::StatusOr<std::string> LexString() {
    const int line = line_, column = column_;
    Advance();  // the opening quote
    std::string out;
    while (pos_ < text_.size()) {
      const char c = text_[pos_];
      if (c == '"') {
        Advance();
        return out;
      }
      if (c == '\\') {
        if (pos_ + 1 >= text_.size()) break;
        const char escaped = text_[pos_ + 1];
        if (escaped != '"' && escaped != '\\') {
          return absl::InvalidArgumentError(absl::StrCat(Location(line_, column_), "unknown escape '\\",
                                                         absl::CHexEscape(std::string(1, escaped)), "' in string"));
        }
        Advance();
        Advance();
        out += escaped;
        continue;
      }
      out += c;
      Advance();
    }
    return absl::InvalidArgumentError(absl::StrCat(Location(line, column), "unterminated string"));
  }

  absl::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
  int column_ = 1;
};

std::string Describe(const Token& token) {
  if (token.kind == TokenKind::kEnd) return "end of input";
  std::string spelling = absl::CHexEscape(token.spelling);
  if (spelling.size() > 40) spelling = absl::StrCat(spelling.substr(0, 37), "...");
  return absl::StrCat("'", spelling, "'");
}

// Why std::from_chars rejected `word`, or read only part of it.
absl::Status NumberError(const std::string& word, std::from_chars_result result) {
  if (result.ec == std::errc::result_out_of_range) {
    return absl::InvalidArgumentError(absl::StrCat("number '", word, "' is out of range"));
  }
  if (result.ec != std::errc() || result.ptr != word.data() + word.size()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed number '", word, "'"));
  }
  return absl::OkStatus();
}

// A number as AttrValueToString writes it: an int64, or a double when it has a
// '.', an exponent, or is inf/nan. (std::from_chars, unlike strtod, ignores the locale.)
absl::StatusOr<AttrValue> ParseNumber(const std::string& word) {
  absl::string_view magnitude = word;
  if (absl::StartsWith(magnitude, "-")) magnitude.remove_prefix(1);
  const bool is_double = word.find_first_of(".eE") != std::string::npos || magnitude == "inf" ||
                         magnitude == "infinity" || magnitude == "nan";
  if (is_double) {
    double value = 0;
    DSRT_RETURN_IF_ERROR(NumberError(word, std::from_chars(word.data(), word.data() + word.size(), value)));
    return value;
  }
  int64_t value = 0;
  DSRT_RETURN_IF_ERROR(NumberError(word, std::from_chars(word.data(), word.data() + word.size(), value)));
  return value;
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, const ParseOptions& options) : tokens_(std::move(tokens)), options_(options) {}

  absl::StatusOr<std::unique_ptr<Graph>> ParseGraph() {
    if (!Peek().IsWord("graph")) return Unexpected("expected 'graph'");
    Take();
    DSRT_ASSIGN_OR_RETURN(std::string name, ParseGraphName());
    graph_ = std::make_unique<Graph>(std::move(name));
    if (StartsGraphAttrs()) {
      DSRT_ASSIGN_OR_RETURN(graph_->mutable_attrs(), ParseAttrs());
    }
    DSRT_RETURN_IF_ERROR(Expect('{', "after the graph's name"));
    while (!Peek().Is('}') && !Peek().IsWord("return")) DSRT_RETURN_IF_ERROR(ParseNode());
    if (Peek().IsWord("return")) DSRT_RETURN_IF_ERROR(ParseReturn());
    DSRT_RETURN_IF_ERROR(Expect('}', "at the end of the graph"));
    if (Peek().kind != TokenKind::kEnd) return Unexpected("expected end of input after the graph");
    return std::move(graph_);
  }

  // Line of each node, to place the verifier's complaints.
  const absl::flat_hash_map<const Node*, int>& node_lines() const { return node_lines_; }

 private:
  const Token& Peek() const { return tokens_[pos_]; }
  const Token& Take() {
    const Token& token = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;  // the last token is kEnd and stays
    return token;
  }

  absl::Status ErrorAt(const Token& at, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(Location(at.line, at.column), what));
  }
  absl::Status Unexpected(absl::string_view expected) const {
    return ErrorAt(Peek(), absl::StrCat(expected, ", got ", Describe(Peek())));
  }
  absl::Status Expect(char punct, absl::string_view context) {
    if (!Peek().Is(punct)) return Unexpected(absl::StrCat("expected '", std::string(1, punct), "' ", context));
    Take();
    return absl::OkStatus();
  }

  // '{' name '=' opens the graph's attributes; a body opens with a node, 'return' or '}'.
  bool StartsGraphAttrs() const {
    if (!Peek().Is('{') || pos_ + 2 >= tokens_.size()) return false;
    const Token& key = tokens_[pos_ + 1];
    return (key.kind == TokenKind::kWord || key.kind == TokenKind::kString) && tokens_[pos_ + 2].Is('=');
  }

  absl::StatusOr<std::string> ParseGraphName() {
    if (Peek().kind != TokenKind::kWord && Peek().kind != TokenKind::kString) {
      return Unexpected("expected the graph's name");
    }
    return Take().text;
  }

  absl::StatusOr<Value*> ParseUse() {
    if (Peek().kind != TokenKind::kValue) return Unexpected("expected a value such as %x");
    const Token& token = Take();
    Value* value = graph_->FindValue(token.text);
    if (value == nullptr) return ErrorAt(token, absl::StrCat("undefined value %", PrintName(token.text)));
    return value;
  }

  absl::Status ParseNode() {
    const Token& first = Peek();
    if (first.kind != TokenKind::kValue && first.kind != TokenKind::kWord) {
      return Unexpected("expected a node, 'return' or '}'");
    }
    std::vector<std::string> results;
    std::set<std::string> seen;
    while (Peek().kind == TokenKind::kValue) {
      const Token& token = Take();
      if (graph_->FindValue(token.text) != nullptr || !seen.insert(token.text).second) {
        return ErrorAt(token, absl::StrCat("%", PrintName(token.text), " is already defined"));
      }
      results.push_back(token.text);
      if (!Peek().Is(',')) break;
      Take();
    }
    if (!results.empty()) DSRT_RETURN_IF_ERROR(Expect('=', "after the result names"));

    if (Peek().kind != TokenKind::kWord) return Unexpected("expected an op name");
    const Token& op_token = Take();
    std::string op = op_token.text;
    if (options_.verify && OpRegistry::Global().Find(op) == nullptr) {
      return ErrorAt(op_token, absl::StrCat("unknown op '", op, "'"));
    }

    DSRT_RETURN_IF_ERROR(Expect('(', "after the op name"));
    std::vector<Value*> inputs;
    while (!Peek().Is(')')) {
      DSRT_ASSIGN_OR_RETURN(Value * input, ParseUse());
      inputs.push_back(input);
      if (!Peek().Is(',')) break;
      Take();
    }
    DSRT_RETURN_IF_ERROR(Expect(')', "after the operands"));
    absl::string_view after = "after the operands";

    AttrMap attrs;
    if (Peek().Is('{')) {
      DSRT_ASSIGN_OR_RETURN(attrs, ParseAttrs());
      after = "after attributes";
    }
    std::string scope;
    if (Peek().kind == TokenKind::kScope) {
      scope = Take().text;
      after = "after the scope";
    }

    std::vector<TensorType> types;
    if (!results.empty()) {
      DSRT_RETURN_IF_ERROR(Expect(':', after));
      while (true) {
        DSRT_ASSIGN_OR_RETURN(TensorType type, ParseType());
        types.push_back(std::move(type));
        if (!Peek().Is(',')) break;
        Take();
      }
      if (types.size() != results.size()) {
        return ErrorAt(op_token,
                       absl::StrCat(op, " has ", results.size(), " result names but ", types.size(), " types"));
      }
    }
    Node* node = graph_->AddNode(std::move(op), std::move(inputs), std::move(attrs), std::move(types),
                                 std::move(results), std::move(scope));
    node_lines_[node] = op_token.line;
    return absl::OkStatus();
  }

  absl::StatusOr<AttrMap> ParseAttrs() {
    Take();  // '{'
    AttrMap attrs;
    while (!Peek().Is('}')) {
      if (Peek().kind != TokenKind::kWord && Peek().kind != TokenKind::kString) {
        return Unexpected("expected an attribute name");
      }
      const Token& key = Take();
      if (attrs.Has(key.text)) return ErrorAt(key, absl::StrCat("attribute '", key.text, "' is given twice"));
      DSRT_RETURN_IF_ERROR(Expect('=', absl::StrCat("after attribute '", key.text, "'")));
      DSRT_ASSIGN_OR_RETURN(AttrValue value, ParseAttrValue());
      attrs.Set(key.text, std::move(value));
      if (!Peek().Is(',')) break;
      Take();
    }
    DSRT_RETURN_IF_ERROR(Expect('}', "after the attributes"));
    return attrs;
  }

  absl::StatusOr<AttrValue> ParseAttrValue() {
    if (Peek().kind == TokenKind::kString) return AttrValue(Take().text);
    if (Peek().kind == TokenKind::kWord) return ParseNumberToken();
    if (!Peek().Is('[')) return Unexpected("expected an attribute value (a number, a \"string\" or a [list])");
    Take();
    // "[.]" is the empty list of doubles; "[]" the empty list of ints.
    if (Peek().IsWord(".")) {
      Take();
      DSRT_RETURN_IF_ERROR(Expect(']', "after '[.'"));
      return AttrValue(std::vector<double>{});
    }
    std::vector<AttrValue> elements;
    bool any_double = false;
    while (!Peek().Is(']')) {
      if (Peek().kind != TokenKind::kWord) return Unexpected("expected a number in the list");
      DSRT_ASSIGN_OR_RETURN(AttrValue element, ParseNumberToken());
      any_double = any_double || std::holds_alternative<double>(element);
      elements.push_back(std::move(element));
      if (!Peek().Is(',')) break;
      Take();
    }
    DSRT_RETURN_IF_ERROR(Expect(']', "after the list"));
    if (!any_double) {
      std::vector<int64_t> ints;
      for (const AttrValue& e : elements) ints.push_back(std::get<int64_t>(e));
      return AttrValue(std::move(ints));
    }
    std::vector<double> doubles;
    for (const AttrValue& e : elements) {
      doubles.push_back(std::holds_alternative<double>(e) ? std::get<double>(e)
                                                          : static_cast<double>(std::get<int64_t>(e)));
    }
    return AttrValue(std::move(doubles));
  }

  absl::StatusOr<AttrValue> ParseNumberToken() {
    const Token& token = Take();
    absl::StatusOr<AttrValue> value = ParseNumber(token.text);
    if (!value.ok()) return ErrorAt(token, value.status().message());
    return value;
  }

  // dtype '[' dims ']', handed to ParseTensorType once its extent is known.
  absl::StatusOr<TensorType> ParseType() {
    if (Peek().kind != TokenKind::kWord) return Unexpected("expected a type such as f32[tokens,64]");
    const Token& dtype = Take();
    DSRT_RETURN_IF_ERROR(Expect('[', "after the dtype"));
    std::vector<std::string> dims;
    while (!Peek().Is(']')) {
      if (Peek().kind != TokenKind::kWord) return Unexpected("expected a dim (a size or a symbol)");
      dims.push_back(Take().text);
      if (!Peek().Is(',')) break;
      Take();
    }
    DSRT_RETURN_IF_ERROR(Expect(']', "after the dims"));
    absl::StatusOr<TensorType> type = ParseTensorType(absl::StrCat(dtype.text, "[", absl::StrJoin(dims, ","), "]"));
    if (!type.ok()) return ErrorAt(dtype, type.status().message());
    return type;
  }

  absl::Status ParseReturn() {
    Take();  // 'return'
    while (true) {
      DSRT_ASSIGN_OR_RETURN(Value * value, ParseUse());
      graph_->AddOutput(value);
      if (!Peek().Is(',')) return absl::OkStatus();
      Take();
    }
  }

  std::vector<Token> tokens_;
  ParseOptions options_;
  size_t pos_ = 0;
  std::unique_ptr<Graph> graph_;
  absl::flat_hash_map<const Node*, int> node_lines_;
};

// The verifier names a node as DescribeNode does; prefix the line it was written on.
absl::Status PlaceVerifierError(const absl::Status& error, const Graph& graph,
                                const absl::flat_hash_map<const Node*, int>& node_lines) {
  for (const auto& node : graph.nodes()) {
    if (!absl::StrContains(error.message(), absl::StrCat("node ", DescribeNode(*node), ":"))) continue;
    auto it = node_lines.find(node.get());
    if (it == node_lines.end()) break;
    return absl::Status(error.code(), absl::StrCat("line ", it->second, ": ", error.message()));
  }
  return error;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Graph>> ParseGraph(absl::string_view text, const ParseOptions& options) {
  DSRT_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lexer(text).Run());
  Parser parser(std::move(tokens), options);
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<Graph> graph, parser.ParseGraph());
  if (options.verify) {
    if (absl::Status status = VerifyGraph(*graph); !status.ok()) {
      return PlaceVerifierError(status, *graph, parser.node_lines());
    }
  }
  return graph;
}

}  // namespace dsrt::ir
