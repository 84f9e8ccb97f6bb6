#include "runtime/engine_builder.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "backends/kv_cache.h"
#include "ir/status_macros.h"
#include "models/checkpoint.h"
#include "models/deepseek_builder.h"
#include "passes/liveness.h"
#include "passes/partition.h"
#include "passes/pass_manager.h"
#include "passes/quantize_weights.h"
#include "passes/weight_recipes.h"
#include "serialization/engine_writer.h"

namespace dsrt::runtime {
namespace {

absl::Status CheckOptions(const EngineBuildOptions& o) {
  if (o.dtype != ir::DType::kF32 && o.dtype != ir::DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("--dtype must be f32 or bf16, not ", ir::DTypeName(o.dtype)));
  }
  if (o.quantize_lm_head && o.weights != "int8" && o.weights != "int4") {
    return absl::InvalidArgumentError("--quantize-lm-head needs --weights int8 or int4");
  }
  if (!o.lm_head_weights.empty()) {
    if (o.weights != "int8" && o.weights != "int4") {
      return absl::InvalidArgumentError("--lm-head-weights needs --weights int8 or int4");
    }
    if (o.lm_head_weights != "int8" && o.lm_head_weights != "int4") {
      return absl::InvalidArgumentError(absl::StrCat("--lm-head-weights ", o.lm_head_weights, ": must be int8 or int4"));
    }
  }
  if (o.weights == "int8" || o.weights == "int4") {
    DSRT_RETURN_IF_ERROR(passes::CheckQuantizeOptions(o.weights, o.quant_group_size));
  } else if (!o.weights.empty() && o.weights != ir::DTypeName(o.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("--weights ", o.weights, ": must be ", ir::DTypeName(o.dtype),
                                                   " (the --dtype), int8 or int4"));
  }
  DSRT_RETURN_IF_ERROR(passes::CheckPartitionOptions({.tp = o.tp, .ep = o.ep, .moe_combine = o.moe_combine}));
  const bool partitions = std::max(o.tp, o.ep) > 1;
  if (partitions && std::find(o.disabled_passes.begin(), o.disabled_passes.end(), "partition") !=
                        o.disabled_passes.end()) {
    return absl::InvalidArgumentError("--disable-pass partition: an engine with --tp/--ep above 1 needs it");
  }
  if (o.max_batch < 1) return absl::InvalidArgumentError("--max-batch must be at least 1");
  if (o.max_seq_len < 0) return absl::InvalidArgumentError("--max-seq-len must be positive");
  return absl::OkStatus();
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct ShapedName {
  std::string name;
  ir::DType dtype;
  std::vector<int64_t> shape;
  const ir::Node* constant;  // in the graph WeightsOf read
};

std::vector<ShapedName> WeightsOf(const ir::Graph& graph) {
  std::vector<ShapedName> weights;
  for (const auto& node : graph.nodes()) {
    if (node->op() != "Constant") continue;
    ShapedName w{node->attrs().StringOr("weight", ""), node->output()->type().dtype, {}, node.get()};
    for (const ir::Dim& d : node->output()->type().dims) w.shape.push_back(d.size);
    weights.push_back(std::move(w));
  }
  return weights;
}

// Every weight the graph names must be in the checkpoint with the graph's shape; for a
// derived weight, the weight it is computed from.
absl::Status CheckWeightsPresent(const models::Checkpoint& checkpoint, const std::vector<ShapedName>& weights) {
  for (const ShapedName& w : weights) {
    std::string name = w.name;
    std::vector<int64_t> shape = w.shape;
    if (passes::IsDerivedWeight(*w.constant)) {
      DSRT_ASSIGN_OR_RETURN(name, passes::DerivedWeightSource(*w.constant));
      DSRT_ASSIGN_OR_RETURN(shape, passes::DerivedWeightSourceShape(*w.constant));
    }
    DSRT_ASSIGN_OR_RETURN(ir::WeightView view, checkpoint.Raw(name));
    if (view.shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint ", checkpoint.dir(), ": tensor '", name,
                                                     "' has shape ", ir::StaticType(view.dtype, view.shape).ToString(),
                                                     ", the model needs ", ir::StaticType(view.dtype, shape).ToString()));
    }
  }
  return absl::OkStatus();
}

// A weight computed at build time (passes/weight_recipes.h) from checkpoint weights,
// which LoadF32 reads dequantized (FP8 with its block scales) and checked finite.
serialization::WeightToWrite DerivedWeightWriter(const models::Checkpoint& checkpoint, const ShapedName& w) {
  serialization::WeightToWrite out;
  out.name = w.name;
  out.dtype = w.dtype;
  out.shape = w.shape;
  out.quant_scheme = passes::DerivedWeightScheme(*w.constant);
  out.bytes = passes::DerivedWeightBytes(*w.constant);
  const ir::Node* constant = w.constant;
  out.fill = [&checkpoint, constant, bytes = out.bytes](void* dst) -> absl::Status {
    auto load = [&checkpoint](const std::string& name, const std::vector<int64_t>& shape) {
      return checkpoint.LoadF32(name, shape);
    };
    return passes::DeriveWeight(*constant, load, dst, bytes);
  };
  return out;
}

serialization::WeightToWrite WeightWriter(const models::Checkpoint& checkpoint, const ShapedName& w) {
  if (passes::IsDerivedWeight(*w.constant)) return DerivedWeightWriter(checkpoint, w);
  serialization::WeightToWrite out;
  out.name = w.name;
  out.dtype = w.dtype;
  out.shape = w.shape;
  out.bytes = ir::DTypeBytes(w.dtype, ir::NumElements(w.shape));
  out.fill = [&checkpoint, w](void* dst) -> absl::Status {
    if (w.dtype == ir::DType::kBF16) {
      DSRT_ASSIGN_OR_RETURN(std::vector<uint16_t> values, checkpoint.LoadBF16(w.name, w.shape));
      std::memcpy(dst, values.data(), values.size() * sizeof(uint16_t));
      return absl::OkStatus();
    }
    DSRT_ASSIGN_OR_RETURN(std::vector<float> values, checkpoint.LoadF32(w.name, w.shape));
    std::memcpy(dst, values.data(), values.size() * sizeof(float));
    return absl::OkStatus();
  };
  return out;
}

serialization::EngineProto Metadata(const EngineBuildOptions& o, const models::Checkpoint& checkpoint,
                                    int64_t max_seq_len, const std::vector<passes::PassRecord>& records) {
  const models::DeepSeekConfig& c = checkpoint.config();
  serialization::EngineProto proto;
  proto.set_model_type(c.model_type);
  proto.set_config_json(ReadFileOrEmpty(checkpoint.dir() + "/config.json"));
  auto* info = proto.mutable_info();
  info->set_vocab_size(c.vocab_size);
  info->set_hidden_size(c.hidden_size);
  info->set_num_layers(c.num_hidden_layers);
  info->set_bos_token_id(c.bos_token_id);
  info->set_eos_token_id(c.eos_token_id);
  info->set_max_seq_len(max_seq_len);
  info->set_max_batch(o.max_batch);
  info->set_activation_dtype(std::string(ir::DTypeName(o.dtype)));
  auto* options = proto.mutable_options();
  options->set_dtype(std::string(ir::DTypeName(o.dtype)));
  options->set_weights(o.weights.empty() ? std::string(ir::DTypeName(o.dtype)) : o.weights);
  options->set_tp(o.tp);
  options->set_ep(o.ep);
  options->set_moe_combine(o.moe_combine);
  options->set_max_batch(o.max_batch);
  options->set_max_seq_len(max_seq_len);
  if (o.weights == "int8" || o.weights == "int4") options->set_quant_group_size(static_cast<int32_t>(o.quant_group_size));
  for (const std::string& p : o.disabled_passes) options->add_disabled_passes(p);
  for (const passes::PassRecord& r : records) {
    auto* record = proto.add_pass_log();
    record->set_name(r.name);
    record->set_changed(r.changed);
    record->set_millis(r.millis);
  }
  proto.set_tokenizer_json(ReadFileOrEmpty(checkpoint.dir() + "/tokenizer.json"));
  proto.set_tokenizer_config_json(ReadFileOrEmpty(checkpoint.dir() + "/tokenizer_config.json"));
  return proto;
}

std::string LmHeadScheme(const EngineBuildOptions& o) {
  if (!o.lm_head_weights.empty()) return o.lm_head_weights;
  return o.quantize_lm_head ? o.weights : "";
}

int WorldSize(const EngineBuildOptions& o) { return std::max(o.tp, o.ep); }

absl::StatusOr<std::vector<passes::PassRecord>> Optimize(const EngineBuildOptions& o, int rank, ir::Graph& graph) {
  passes::PassManagerOptions pm_options;
  pm_options.dump_dir = o.dump_dir;
  if (!o.dump_dir.empty() && WorldSize(o) > 1) pm_options.dump_dir = absl::StrCat(o.dump_dir, "/rank", rank);
  const passes::PipelineOptions pipeline_options{.weights = o.weights,
                                                 .quant_group_size = o.quant_group_size,
                                                 .lm_head_weights = LmHeadScheme(o),
                                                 .partition = {.tp = o.tp, .ep = o.ep, .rank = rank, .moe_combine = o.moe_combine}};
  const std::vector<std::string> pipeline = passes::DefaultPipeline(pipeline_options);
  const std::vector<std::string> known = passes::KnownPassNames();
  for (const std::string& name : o.disabled_passes) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      DSRT_RETURN_IF_ERROR(passes::CreatePass(name).status());  // names the known passes
    }
    pm_options.disabled.insert(name);
  }
  passes::PassManager manager("default", pm_options);
  for (const std::string& name : pipeline) {
    DSRT_ASSIGN_OR_RETURN(std::unique_ptr<passes::Pass> pass, passes::CreatePass(name, pipeline_options));
    manager.AddPass(std::move(pass));
  }
  return manager.Run(graph);
}

// The MTP module's graph, optimized like the main one, when the checkpoint carries
// its layer (conversions often drop it); null otherwise.
absl::StatusOr<std::unique_ptr<ir::Graph>> OptimizedMtpGraph(const EngineBuildOptions& o, int rank,
                                                             const models::Checkpoint& checkpoint) {
  const models::DeepSeekConfig& config = checkpoint.config();
  if (config.num_nextn_predict_layers == 0) return nullptr;
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<ir::Graph> mtp,
                        models::BuildDeepSeekMtpGraph(config, models::GraphOptions{.activation = o.dtype}));
  const std::vector<ShapedName> weights = WeightsOf(*mtp);
  for (const ShapedName& w : weights) {
    if (!checkpoint.Has(w.name)) return nullptr;
  }
  DSRT_RETURN_IF_ERROR(CheckWeightsPresent(checkpoint, weights));
  DSRT_RETURN_IF_ERROR(Optimize(o, rank, *mtp).status());  // dumps land beside the main graph's as mtp.NN.*
  return mtp;
}

// One rank's graphs, optimized, and the weights they read.
struct RankBuild {
  std::unique_ptr<ir::Graph> graph;
  std::unique_ptr<ir::Graph> mtp;
  std::vector<passes::PassRecord> records;
  std::vector<ShapedName> weights;  // each name once
};

absl::StatusOr<RankBuild> BuildRank(const EngineBuildOptions& o, int rank, const models::Checkpoint& checkpoint) {
  RankBuild build;
  DSRT_ASSIGN_OR_RETURN(build.graph,
                        models::BuildDeepSeekGraph(checkpoint.config(), models::GraphOptions{.activation = o.dtype}));
  DSRT_RETURN_IF_ERROR(CheckWeightsPresent(checkpoint, WeightsOf(*build.graph)));
  DSRT_ASSIGN_OR_RETURN(build.records, Optimize(o, rank, *build.graph));
  DSRT_ASSIGN_OR_RETURN(build.mtp, OptimizedMtpGraph(o, rank, checkpoint));
  std::vector<ShapedName> all = WeightsOf(*build.graph);
  if (build.mtp != nullptr) {
    for (ShapedName& w : WeightsOf(*build.mtp)) all.push_back(std::move(w));
  }
  DSRT_RETURN_IF_ERROR(CheckWeightsPresent(checkpoint, all));  // the sources of derived weights
  absl::flat_hash_set<std::string> seen;
  for (ShapedName& w : all) {
    if (seen.insert(w.name).second) build.weights.push_back(std::move(w));
  }
  return build;
}

// The model's parameters: every checkpoint weight that some rank reads (all of it, for
// a weight read in slices), counted once; quantization scales are not parameters.
int64_t CountParameters(const std::vector<RankBuild>& ranks) {
  absl::flat_hash_set<std::string> counted;
  int64_t parameters = 0;
  for (const RankBuild& rank : ranks) {
    for (const ShapedName& w : rank.weights) {
      if (w.constant->attrs().StringOr("part", "") == "scales") continue;
      std::string name = w.name;
      std::vector<int64_t> shape = w.shape;
      if (passes::IsDerivedWeight(*w.constant)) {
        name = w.constant->attrs().StringOr("source", name);
        shape = passes::DerivedWeightSourceShape(*w.constant).value_or(shape);
      }
      if (counted.insert(name).second) parameters += ir::NumElements(shape);
    }
  }
  return parameters;
}

}  // namespace

absl::StatusOr<EngineBuildReport> BuildEngine(const EngineBuildOptions& o) {
  DSRT_RETURN_IF_ERROR(CheckOptions(o));
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<models::Checkpoint> checkpoint, models::Checkpoint::Open(o.checkpoint_dir));
  const models::DeepSeekConfig& config = checkpoint->config();
  const int64_t max_seq_len =
      o.max_seq_len > 0 ? o.max_seq_len : std::min<int64_t>(config.max_position_embeddings, 4096);

  std::vector<RankBuild> builds;
  for (int rank = 0; rank < WorldSize(o); ++rank) {
    DSRT_ASSIGN_OR_RETURN(RankBuild build, BuildRank(o, rank, *checkpoint));
    builds.push_back(std::move(build));
  }
  const ir::Graph& first = *builds[0].graph;

  EngineBuildReport report;
  report.parameters = CountParameters(builds);
  for (const passes::PassRecord& r : builds[0].records) report.passes_run.push_back(r.name);
  DSRT_ASSIGN_OR_RETURN(backends::CacheLayout cache, backends::CacheLayoutOf(first));
  report.kv_cache_bytes_per_token = cache.bytes_per_token();

  serialization::EngineProto metadata = Metadata(o, *checkpoint, max_seq_len, builds[0].records);
  for (int rank = 1; rank < WorldSize(o); ++rank) {
    for (const passes::PassRecord& r : builds[rank].records) {
      auto* record = metadata.add_pass_log();
      record->set_name(r.name);
      record->set_changed(r.changed);
      record->set_millis(r.millis);
      record->set_rank(rank);
    }
  }
  metadata.mutable_info()->set_parameters(report.parameters);
  metadata.mutable_info()->set_kv_cache_bytes_per_token(report.kv_cache_bytes_per_token);
  DSRT_ASSIGN_OR_RETURN(int64_t arena, passes::PeakActivationBytes(first, {{ir::kTokensDim, o.max_batch}}));
  metadata.mutable_info()->set_activation_arena_bytes(arena);

  std::vector<serialization::RankContents> ranks;
  for (const RankBuild& build : builds) {
    serialization::RankContents rank{build.graph.get(), build.mtp.get(), {}};
    for (const ShapedName& w : build.weights) {
      rank.weights.push_back(WeightWriter(*checkpoint, w));
      report.weight_bytes += rank.weights.back().bytes;
    }
    ranks.push_back(std::move(rank));
  }
  auto progress = [&](int64_t done, int64_t total) {
    if (o.progress) o.progress("writing weights", done, total);
  };
  DSRT_RETURN_IF_ERROR(serialization::WriteEngine(o.output_path, std::move(metadata), std::move(ranks), progress));
  return report;
}

}  // namespace dsrt::runtime
