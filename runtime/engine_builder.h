#ifndef DSRT_RUNTIME_ENGINE_BUILDER_H_
#define DSRT_RUNTIME_ENGINE_BUILDER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ir/dtype.h"

namespace dsrt::runtime {

struct EngineBuildOptions {
  std::string checkpoint_dir;
  std::string output_path;
  ir::DType dtype = ir::DType::kBF16;  // activations, KV cache and stored weights
  std::string weights = "";            // "" (= dtype), "bf16", "int8", "int4"
  int64_t quant_group_size = 128;      // int8/int4: input columns that share one scale
  bool quantize_lm_head = false;       // int8/int4: the LM head too, in the same scheme
  std::string lm_head_weights = "";    // int8/int4: the LM head in "int8" or "int4" (it stays in --dtype otherwise)
  int tp = 1;
  int ep = 1;
  std::string moe_combine = "allreduce";  // with ep: "allreduce" or "alltoall" (passes/partition.h)
  int max_batch = 1;
  int64_t max_seq_len = 0;  // 0: min(max_position_embeddings, 4096)
  std::vector<std::string> disabled_passes;
  std::string dump_dir;
  // Called as work advances: a stage name ("weights"), units done and in all.
  std::function<void(const std::string& stage, int64_t done, int64_t total)> progress;
};

struct EngineBuildReport {
  int64_t parameters = 0;
  int64_t weight_bytes = 0;
  int64_t kv_cache_bytes_per_token = 0;
  std::vector<std::string> passes_run;
};

// Checkpoint → naive graph → pass pipeline → engine file. Every weight the graph
// names is checked (present, right shape, finite) and written one at a time, so
// memory stays bounded by the largest weight.
absl::StatusOr<EngineBuildReport> BuildEngine(const EngineBuildOptions& options);

}  // namespace dsrt::runtime

#endif  // DSRT_RUNTIME_ENGINE_BUILDER_H_
