#ifndef DSRT_PASSES_PASS_MANAGER_H_
#define DSRT_PASSES_PASS_MANAGER_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "passes/partition.h"
#include "passes/pass.h"

namespace dsrt::passes {

struct PassRecord {
  std::string name;
  bool changed = false;
  double millis = 0;
};

struct PassManagerOptions {
  std::set<std::string> disabled;  // pass names to skip
  std::string dump_dir;            // when set: NN.after_<pass>.txt and .dot after each pass
};

// Runs a named pipeline of passes, verifying the graph after each one.
class PassManager {
 public:
  explicit PassManager(std::string name, PassManagerOptions options = {})
      : name_(std::move(name)), options_(std::move(options)) {}

  void AddPass(std::unique_ptr<Pass> pass) { passes_.push_back(std::move(pass)); }
  std::vector<std::string> PassNames() const;

  // The graph is verified before the first pass and after every pass; an error
  // names the pass that broke it.
  absl::StatusOr<std::vector<PassRecord>> Run(ir::Graph& graph);

 private:
  absl::Status Dump(const ir::Graph& graph, int index, const std::string& stage) const;

  std::string name_;
  PassManagerOptions options_;
  std::vector<std::unique_ptr<Pass>> passes_;
};

// What the build options say about the pipeline.
struct PipelineOptions {
  std::string weights;          // "int8" or "int4" adds quantize-weights; anything else does not
  int64_t quant_group_size = 128;
  std::string lm_head_weights;  // with weights int8/int4: "int8" or "int4" quantizes the (untied) LM head too
  PartitionOptions partition;      // a world above one adds the partition pass
};

// Every pass dsrt knows, by name (for pipelines and --disable-pass). quantize-weights
// takes its scheme and group size from `options` (int8 when `options.weights` names no
// integer scheme); an invalid group size is an error naming it.
absl::StatusOr<std::unique_ptr<Pass>> CreatePass(const std::string& name, const PipelineOptions& options = {});
std::vector<std::string> KnownPassNames();
// The default optimization pipeline, in order: mla-absorb, moe-fuse, partition when
// the world has more than one rank (before quantization, so that each rank's slices
// get their own groups), then quantize-weights when `options.weights` is int8 or int4, then fold-constants, cse,
// fuse-elementwise, dce and plan-memory.
std::vector<std::string> DefaultPipeline(const PipelineOptions& options = {});

}  // namespace dsrt::passes

#endif  // DSRT_PASSES_PASS_MANAGER_H_
