#ifndef DSRT_TESTS_PASSES_REWRITE_TEST_UTIL_H_
#define DSRT_TESTS_PASSES_REWRITE_TEST_UTIL_H_

// What the tests of the clean-up passes (fold-constants, cse, fuse-elementwise,
// plan-memory) share on top of pass_test_util.h.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "ir/graph.h"
#include "models/config.h"
#include "passes/pass.h"

namespace dsrt::passes::fixtures {

// The graph of `text`, verified; a parse error fails the test and yields an empty graph.
std::unique_ptr<ir::Graph> ParseOrFail(absl::string_view text);

// A copy of `graph` (through its text form).
std::unique_ptr<ir::Graph> CloneGraph(const ir::Graph& graph);

// The naive graph of `config` after the default pipeline's passes that come before
// `pass` (all of them when `pass` is not in it), each verified.
std::unique_ptr<ir::Graph> GraphBeforePass(const models::DeepSeekConfig& config, const std::string& pass,
                                           ir::DType dtype = ir::DType::kF32);

// Runs `pass` (verifying after it) and returns whether it changed the graph.
absl::StatusOr<bool> RunAndVerify(Pass& pass, ir::Graph& graph);

// The largest |logit difference| between `a` and `b` over a prefill of 7 random tokens
// and 3 decode steps on the reference backend, with the same random weights (named by
// `a`'s Constants).
absl::StatusOr<double> LogitDifference(const ir::Graph& a, const ir::Graph& b, int64_t vocab, uint64_t seed = 3);

// `pass` run on `graph` (= `reference` with redundant work added) must change it back to
// `reference`'s op counts with bit-identical logits.
void ExpectPassUndoes(Pass& pass, const ir::Graph& reference, ir::Graph& graph, int64_t vocab,
                      const std::string& what);

// On the graphs the model builder writes (tiny-v2-lite, tiny-v2, tiny-v3, after the
// passes before it), the pass named `name` finds nothing to do.
void ExpectPassFindsNothingInBuilderGraphs(const std::string& name);

}  // namespace dsrt::passes::fixtures

#endif  // DSRT_TESTS_PASSES_REWRITE_TEST_UTIL_H_
