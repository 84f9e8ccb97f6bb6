#include "runtime/inspect.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ir/dot.h"
#include "ir/status_macros.h"
#include "passes/plan_memory.h"
#include "serialization/engine_reader.h"
#include "serialization/graph_proto.h"

namespace dsrt::runtime {

nlohmann::json EngineSummary::ToJson() const {
  return nlohmann::json{{"path", path},
                        {"model_type", model_type},
                        {"num_layers", num_layers},
                        {"vocab_size", vocab_size},
                        {"hidden_size", hidden_size},
                        {"parameters", parameters},
                        {"weight_bytes", weight_bytes},
                        {"kv_cache_bytes_per_token", kv_cache_bytes_per_token},
                        {"activation_arena_bytes", activation_arena_bytes},
                        {"max_seq_len", max_seq_len},
                        {"ranks", ranks},
                        {"dtype", dtype},
                        {"weights", weights},
                        {"passes", passes},
                        {"ops", ops},
                        {"has_tokenizer", has_tokenizer},
                        {"has_mtp", has_mtp}};
}

std::string EngineSummary::ToText() const {
  std::string text = absl::StrCat(
      path, "\n  model                ", model_type, ", ", num_layers, " layers, hidden ", hidden_size, ", vocab ",
      vocab_size, "\n  parameters           ", parameters, " (", weight_bytes, " bytes of weights, ", weights,
      ")\n  KV cache             ", kv_cache_bytes_per_token, " bytes per token (", dtype,
      ")\n  activation arena     ", activation_arena_bytes, " bytes\n  max sequence length  ",
      max_seq_len, "\n  ranks                ", ranks, "\n  passes               ",
      passes.empty() ? "(none)" : absl::StrJoin(passes, ", "), "\n  tokenizer            ",
      has_tokenizer ? "yes" : "no", "\n  MTP module           ", has_mtp ? "yes" : "no", "\n  ops\n");
  for (const auto& [op, count] : ops) absl::StrAppend(&text, "    ", op, std::string(16 - std::min<size_t>(op.size(), 15), ' '), count, "\n");
  return text;
}

absl::StatusOr<EngineSummary> SummarizeEngine(const std::string& engine_path) {
  DSRT_ASSIGN_OR_RETURN(auto engine, serialization::Engine::Open(engine_path, -1));
  const serialization::EngineProto& proto = engine->proto();
  EngineSummary s;
  s.path = engine_path;
  s.model_type = proto.model_type();
  s.num_layers = proto.info().num_layers();
  s.vocab_size = proto.info().vocab_size();
  s.hidden_size = proto.info().hidden_size();
  s.parameters = proto.info().parameters();
  s.kv_cache_bytes_per_token = proto.info().kv_cache_bytes_per_token();
  s.activation_arena_bytes = proto.info().activation_arena_bytes();
  // An engine built with plan-memory reports its planned arena for the largest batch.
  if (proto.ranks_size() > 0 && proto.ranks(0).graph().attrs().contains("arena_bytes_per_token")) {
    DSRT_ASSIGN_OR_RETURN(auto graph, serialization::GraphFromProto(proto.ranks(0).graph()));
    DSRT_ASSIGN_OR_RETURN(s.activation_arena_bytes, passes::ArenaBytes(*graph, proto.info().max_batch()));
  }
  s.max_seq_len = proto.info().max_seq_len();
  s.ranks = proto.world_size();
  s.dtype = proto.options().dtype();
  s.weights = proto.options().weights();
  s.has_tokenizer = !proto.tokenizer_json().empty();
  for (const auto& record : proto.pass_log()) {
    if (record.rank() == 0) s.passes.push_back(record.name());
  }
  for (const auto& section : proto.ranks()) {
    for (const auto& node : section.graph().nodes()) ++s.ops[node.op()];
    if (section.has_mtp_graph()) s.has_mtp = true;
    for (const auto& weight : section.weights()) s.weight_bytes += weight.bytes();
  }
  return s;
}

namespace {

absl::StatusOr<std::unique_ptr<ir::Graph>> GraphOfRank(const std::string& engine_path, int rank) {
  DSRT_ASSIGN_OR_RETURN(auto engine, serialization::Engine::Open(engine_path, -1));
  const serialization::EngineProto& proto = engine->proto();
  if (rank < 0 || rank >= proto.ranks_size()) {
    return absl::OutOfRangeError(absl::StrCat(engine_path, " has ", proto.ranks_size(), " rank(s); there is no rank ", rank));
  }
  return serialization::GraphFromProto(proto.ranks(rank).graph());
}

}  // namespace

absl::StatusOr<std::string> EngineGraphDot(const std::string& engine_path, int rank) {
  DSRT_ASSIGN_OR_RETURN(auto graph, GraphOfRank(engine_path, rank));
  return ir::GraphToDot(*graph);
}

absl::Status RenderEngineGraph(const std::string& engine_path, int rank, const std::string& out_path,
                               const std::string& format) {
  DSRT_ASSIGN_OR_RETURN(auto graph, GraphOfRank(engine_path, rank));
  return ir::RenderGraph(*graph, out_path, format);
}

}  // namespace dsrt::runtime
