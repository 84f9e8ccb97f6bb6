#ifndef DSRT_PASSES_FOLD_CONSTANTS_H_
#define DSRT_PASSES_FOLD_CONSTANTS_H_

#include "passes/pass.h"

namespace dsrt::passes {

// Folds the shape and type ops whose effect is known from types alone. A pass never
// reads weight bytes, and in dsrt's graphs every Constant is a weight and every other
// value depends on the step's token ids, so there is no constant data to evaluate; what
// can be folded is:
//
//   identities (uses of the output become uses of the input, the node goes):
//     Reshape, Expand or Cast whose output type equals its input's type,
//     Slice whose range covers its whole axis, Concat of one input;
//   chains (the outer node reads the inner one's input instead):
//     Reshape(Reshape(x)) -> Reshape(x), with the outer's shape spelled for x;
//     Slice(Slice(x)) along the same axis -> Slice(x) over the composed range.
//
// A composed chain that turns out to be an identity is removed too. The DeepSeek graphs
// the model builder writes hold none of these (it writes no identity and no chain), so on
// them the pass changes nothing; it is there for graphs other passes and tools produce.
class FoldConstants : public Pass {
 public:
  std::string name() const override { return "fold-constants"; }
  absl::StatusOr<bool> Run(ir::Graph& graph) override;
};

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_FOLD_CONSTANTS_H_
