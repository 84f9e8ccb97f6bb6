#include "passes/pass_manager.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ir/dot.h"
#include "ir/printer.h"
#include "ir/status_macros.h"
#include "ir/verifier.h"
#include "passes/cse.h"
#include "passes/dce.h"
#include "passes/fold_constants.h"
#include "passes/fuse_elementwise.h"
#include "passes/mla_absorb.h"
#include "passes/moe_fuse.h"
#include "passes/partition.h"
#include "passes/plan_memory.h"
#include "passes/quantize_weights.h"

namespace dsrt::passes {
namespace {

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

bool QuantizesWeights(const PipelineOptions& options) {
  return options.weights == "int8" || options.weights == "int4";
}

}  // namespace

std::vector<std::string> PassManager::PassNames() const {
  std::vector<std::string> names;
  for (const auto& pass : passes_) names.push_back(pass->name());
  return names;
}

absl::Status PassManager::Dump(const ir::Graph& graph, int index, const std::string& stage) const {
  if (options_.dump_dir.empty()) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(options_.dump_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create dump dir ", options_.dump_dir, ": ", ec.message()));
  const std::string base =
      absl::StrFormat("%s/%s%02d.%s", options_.dump_dir, graph.name() == "main" ? "" : graph.name() + ".", index, stage);
  DSRT_RETURN_IF_ERROR(WriteFile(base + ".txt", ir::PrintGraph(graph)));
  return WriteFile(base + ".dot", ir::GraphToDot(graph));
}

absl::StatusOr<std::vector<PassRecord>> PassManager::Run(ir::Graph& graph) {
  if (absl::Status s = ir::VerifyGraph(graph); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("pipeline '", name_, "': input graph is invalid: ", s.message()));
  }
  DSRT_RETURN_IF_ERROR(Dump(graph, 0, "input"));
  std::vector<PassRecord> records;
  int index = 0;
  for (const auto& pass : passes_) {
    if (options_.disabled.count(pass->name())) continue;
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<bool> changed = pass->Run(graph);
    if (!changed.ok()) {
      return absl::Status(changed.status().code(),
                          absl::StrCat("pass '", pass->name(), "': ", changed.status().message()));
    }
    if (absl::Status s = ir::VerifyGraph(graph); !s.ok()) {
      return absl::InternalError(absl::StrCat("pass '", pass->name(), "' left an invalid graph: ", s.message()));
    }
    const double millis =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    records.push_back({pass->name(), *changed, millis});
    DSRT_RETURN_IF_ERROR(Dump(graph, ++index, "after_" + pass->name()));
  }
  return records;
}

absl::StatusOr<std::unique_ptr<Pass>> CreatePass(const std::string& name, const PipelineOptions& options) {
  if (name == "mla-absorb") return std::unique_ptr<Pass>(new MlaAbsorb());
  if (name == "moe-fuse") return std::unique_ptr<Pass>(new MoeFuse());
  if (name == "partition") {
    DSRT_RETURN_IF_ERROR(CheckPartitionOptions(options.partition));
    return std::unique_ptr<Pass>(new Partition(options.partition));
  }
  if (name == "quantize-weights") {
    const std::string scheme = QuantizesWeights(options) ? options.weights : "int8";
    DSRT_RETURN_IF_ERROR(CheckQuantizeOptions(scheme, options.quant_group_size));
    return std::unique_ptr<Pass>(new QuantizeWeights(scheme, options.quant_group_size, options.lm_head_weights));
  }
  if (name == "fold-constants") return std::unique_ptr<Pass>(new FoldConstants());
  if (name == "cse") return std::unique_ptr<Pass>(new Cse());
  if (name == "fuse-elementwise") return std::unique_ptr<Pass>(new FuseElementwise());
  if (name == "dce") return std::unique_ptr<Pass>(new Dce());
  if (name == "plan-memory") return std::unique_ptr<Pass>(new PlanMemory());
  return absl::InvalidArgumentError(
      absl::StrCat("unknown pass '", name, "' (known: ", absl::StrJoin(KnownPassNames(), ", "), ")"));
}

std::vector<std::string> KnownPassNames() {
  return {"mla-absorb", "moe-fuse", "partition", "quantize-weights", "fold-constants",
          "cse", "fuse-elementwise", "dce", "plan-memory"};
}

std::vector<std::string> DefaultPipeline(const PipelineOptions& options) {
  std::vector<std::string> pipeline = {"mla-absorb", "moe-fuse"};
  if (options.partition.world_size() > 1) pipeline.push_back("partition");
  if (QuantizesWeights(options)) pipeline.push_back("quantize-weights");
  // plan-memory last: any later rewrite would invalidate its plan.
  for (const char* name : {"fold-constants", "cse", "fuse-elementwise", "dce", "plan-memory"}) {
    pipeline.push_back(name);
  }
  return pipeline;
}

}  // namespace dsrt::passes
