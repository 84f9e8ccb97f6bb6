#ifndef DSRT_RUNTIME_INSPECT_H_
#define DSRT_RUNTIME_INSPECT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace dsrt::runtime {

// What `dsrt inspect` reports of an engine, summed over ranks where it says so.
struct EngineSummary {
  std::string path;
  std::string model_type;
  int64_t num_layers = 0;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t parameters = 0;
  int64_t weight_bytes = 0;
  int64_t kv_cache_bytes_per_token = 0;
  int64_t activation_arena_bytes = 0;
  int64_t max_seq_len = 0;
  int ranks = 1;
  std::string dtype;
  std::string weights;
  std::vector<std::string> passes;
  std::map<std::string, int64_t> ops;  // op kind → count, summed over ranks
  bool has_tokenizer = false;
  bool has_mtp = false;  // the engine carries DeepSeek-V3's multi-token-prediction module

  nlohmann::json ToJson() const;
  std::string ToText() const;
};

absl::StatusOr<EngineSummary> SummarizeEngine(const std::string& engine_path);

// The graph of one rank as DOT text, or rendered to a file (svg, png, ...).
absl::StatusOr<std::string> EngineGraphDot(const std::string& engine_path, int rank);
absl::Status RenderEngineGraph(const std::string& engine_path, int rank, const std::string& out_path,
                               const std::string& format);

}  // namespace dsrt::runtime

#endif  // DSRT_RUNTIME_INSPECT_H_
