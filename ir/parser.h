#ifndef DSRT_IR_PARSER_H_
#define DSRT_IR_PARSER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ir/graph.h"

namespace dsrt::ir {

struct ParseOptions {
  // Runs VerifyGraph on the result; tests of the verifier turn it off to build
  // graphs that are wrong on purpose.
  bool verify = true;
};

// Reads the text form that PrintGraph writes (see printer.h). `//` starts a comment
// that runs to the end of the line, so test fixtures may carry RUN/CHECK lines.
// Values keep the names they are written with. Errors say where and what:
//   "line 4:17: expected ':' after attributes, got '{'"
// Any input, however malformed, yields a graph or an error, never a crash.
absl::StatusOr<std::unique_ptr<Graph>> ParseGraph(absl::string_view text, const ParseOptions& options = {});

}  // namespace dsrt::ir

#endif  // DSRT_IR_PARSER_H_
