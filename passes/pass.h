#ifndef DSRT_PASSES_PASS_H_
#define DSRT_PASSES_PASS_H_

#include <string>

#include "absl/status/statusor.h"
#include "ir/graph.h"

namespace dsrt::passes {

// A graph-to-graph rewrite, as XLA's HloPassInterface: a name (its spelling in
// pipelines, dumps and --disable-pass) and one entry point that says whether it
// changed anything.
class Pass {
 public:
  virtual ~Pass() = default;
  virtual std::string name() const = 0;
  virtual absl::StatusOr<bool> Run(ir::Graph& graph) = 0;
};

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_PASS_H_
