#ifndef DSRT_PASSES_DCE_H_
#define DSRT_PASSES_DCE_H_

#include "passes/pass.h"

namespace dsrt::passes {

// Removes nodes whose outputs nothing reads (graph outputs and Parameters stay).
class Dce : public Pass {
 public:
  std::string name() const override { return "dce"; }
  absl::StatusOr<bool> Run(ir::Graph& graph) override;
};

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_DCE_H_
