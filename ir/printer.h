#ifndef DSRT_IR_PRINTER_H_
#define DSRT_IR_PRINTER_H_

#include <string>

#include "absl/strings/string_view.h"
#include "ir/graph.h"

namespace dsrt::ir {

// The graph's text form, one node a line, which ParseGraph (parser.h) reads back:
//
//   graph main {
//     %token_ids = Parameter() {name="token_ids"} : i32[tokens]
//     %w = Constant() {weight="model.embed_tokens.weight"} : bf16[512,64]
//     %h = Embedding(%w, %token_ids) {dtype="f32"} : f32[tokens,64]
//     %layers.1.ids, %layers.1.wts = Router(%x, %g) {...} @layers.1 : i32[tokens,3], f32[tokens,3]
//     return %logits
//   }
//
// Attributes print in AttrMap's (sorted) order with AttrValueToString; `@scope`
// only when the node has one. Printing is stable: Print(Parse(Print(g))) == Print(g).
std::string PrintGraph(const Graph& graph);

// One node's line without indentation or newline: "%y = Linear(%x, %w) : f32[tokens,96]".
std::string PrintNode(const Node& node);

// How a name prints after '%' or '@': bare when it is made only of letters, digits,
// '.', '_' and '-', otherwise as a quoted string ("%\"odd name\"").
std::string PrintName(absl::string_view name);

}  // namespace dsrt::ir

#endif  // DSRT_IR_PRINTER_H_
