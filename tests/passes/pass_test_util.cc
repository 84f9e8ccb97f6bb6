#include "tests/passes/pass_test_util.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "backends/backend.h"
#include "backends/kv_cache.h"
#include "gtest/gtest.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/status_macros.h"
#include "ir/verifier.h"
#include "models/deepseek_builder.h"
#include "models/synth.h"
#include "passes/dce.h"
#include "passes/weight_recipes.h"

namespace dsrt::passes::fixtures {

models::DeepSeekConfig PresetConfig(const std::string& preset) {
  absl::StatusOr<std::string> json = models::PresetConfigJson(preset);
  if (!json.ok()) std::abort();
  absl::StatusOr<models::DeepSeekConfig> config = models::ParseDeepSeekConfig(*json, preset);
  if (!config.ok()) std::abort();
  return *config;
}

std::unique_ptr<ir::Graph> NaiveGraph(const models::DeepSeekConfig& config, ir::DType dtype) {
  absl::StatusOr<std::unique_ptr<ir::Graph>> graph = models::BuildDeepSeekGraph(config, {.activation = dtype});
  if (!graph.ok()) std::abort();
  return std::move(graph).value();
}

RandomWeights::RandomWeights(const ir::Graph& graph, uint64_t seed) {
  for (const auto& node : graph.nodes()) {
    if (node->op() != "Constant") continue;
    const std::string name = node->attrs().StringOr("weight", "");
    if (entries_.contains(name)) continue;
    Entry e{node->output()->type().dtype, {}, {}};
    for (const ir::Dim& d : node->output()->type().dims) e.shape.push_back(d.size);
    const int64_t n = ir::NumElements(e.shape);
    std::mt19937_64 rng(seed ^ std::hash<std::string>()(name));
    double lo = -1.0, hi = 1.0;  // embeddings
    if (e.shape.size() == 1) {
      lo = absl::EndsWith(name, "e_score_correction_bias") ? -0.1 : 0.8;
      hi = absl::EndsWith(name, "e_score_correction_bias") ? 0.1 : 1.2;
    } else if (!absl::StrContains(name, "embed_tokens")) {
      hi = std::sqrt(3.0 / static_cast<double>(e.shape[1]));
      lo = -hi;
    }
    std::uniform_real_distribution<float> uniform(static_cast<float>(lo), static_cast<float>(hi));
    e.bytes.resize(ir::DTypeBytes(e.dtype, n));
    for (int64_t i = 0; i < n; ++i) {
      const float value = uniform(rng);
      if (e.dtype == ir::DType::kBF16) {
        const uint16_t bits = ir::F32ToBF16(value);
        std::memcpy(e.bytes.data() + 2 * i, &bits, 2);
      } else {
        std::memcpy(e.bytes.data() + 4 * i, &value, 4);
      }
    }
    entries_[name] = std::move(e);
  }
}

absl::StatusOr<ir::WeightView> RandomWeights::Get(absl::string_view name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("no weight '", name, "'"));
  const Entry& e = it->second;
  return ir::WeightView{e.dtype, e.shape, e.bytes.data(), static_cast<int64_t>(e.bytes.size())};
}

absl::StatusOr<std::vector<float>> LoadF32(const ir::WeightStore& store, const std::string& name,
                                           const std::vector<int64_t>& shape) {
  DSRT_ASSIGN_OR_RETURN(ir::WeightView view, store.Get(name));
  if (view.shape != shape) return absl::InvalidArgumentError(absl::StrCat("weight '", name, "' has another shape"));
  const int64_t n = ir::NumElements(shape);
  std::vector<float> values(n);
  if (view.dtype == ir::DType::kF32) {
    std::memcpy(values.data(), view.data, n * sizeof(float));
  } else if (view.dtype == ir::DType::kBF16) {
    for (int64_t i = 0; i < n; ++i) values[i] = ir::BF16ToF32(static_cast<const uint16_t*>(view.data)[i]);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("weight '", name, "' is not f32 or bf16"));
  }
  return values;
}

WithDerivedWeights::WithDerivedWeights(const ir::Graph& graph, const ir::WeightStore& base) : base_(base) {
  auto load = [&base](const std::string& name, const std::vector<int64_t>& shape) {
    return LoadF32(base, name, shape);
  };
  for (const auto& node : graph.nodes()) {
    if (!IsDerivedWeight(*node)) continue;
    const std::string name = node->attrs().StringOr("weight", "");
    Entry e{node->output()->type().dtype, {}, {}};
    for (const ir::Dim& d : node->output()->type().dims) e.shape.push_back(d.size);
    const int64_t bytes = DerivedWeightBytes(*node);
    if (bytes < 0) {
      status_ = absl::InvalidArgumentError(absl::StrCat("derived weight '", name, "' is malformed"));
      return;
    }
    e.bytes.resize(bytes);
    status_ = DeriveWeight(*node, load, e.bytes.data(), bytes);
    if (!status_.ok()) return;
    derived_[name] = std::move(e);
  }
}

absl::StatusOr<ir::WeightView> WithDerivedWeights::Get(absl::string_view name) const {
  auto it = derived_.find(name);
  if (it == derived_.end()) return base_.Get(name);
  const Entry& e = it->second;
  return ir::WeightView{e.dtype, e.shape, e.bytes.data(), static_cast<int64_t>(e.bytes.size())};
}

absl::StatusOr<std::vector<std::vector<float>>> RunSteps(const ir::Graph& graph, const ir::WeightStore& weights,
                                                         const std::vector<int32_t>& prompt,
                                                         const std::vector<int32_t>& decode) {
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<backends::Backend> backend, backends::CreateBackend("reference"));
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<backends::Executable> executable, backend->Compile(graph, weights));
  DSRT_ASSIGN_OR_RETURN(backends::CacheLayout layout, backends::CacheLayoutOf(graph));
  const int64_t length = static_cast<int64_t>(prompt.size() + decode.size());
  backends::ContiguousKvCache cache(layout, /*max_sequences=*/1, length);
  std::vector<std::vector<float>> steps;
  backends::StepOutput out;
  DSRT_RETURN_IF_ERROR(executable->Run(backends::StepInput::ForSequence(prompt, 0), cache, &out));
  steps.push_back(out.logits);
  int32_t position = static_cast<int32_t>(prompt.size());
  for (int32_t id : decode) {
    DSRT_RETURN_IF_ERROR(executable->Run(backends::StepInput::ForSequence({id}, position++), cache, &out));
    steps.push_back(out.logits);
  }
  return steps;
}

std::vector<int32_t> RandomIds(int64_t vocab, int count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(count);
  for (int32_t& i : ids) i = id(rng);
  return ids;
}

double MaxAbsDiff(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t s = 0; s < a.size(); ++s) {
    if (a[s].size() != b[s].size()) return std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < a[s].size(); ++i) {
      const double d = std::abs(static_cast<double>(a[s][i]) - b[s][i]);
      if (!(d <= worst)) worst = d;  // NaN propagates
    }
  }
  return worst;
}

std::map<std::string, int> OpCounts(const ir::Graph& graph) {
  std::map<std::string, int> counts;
  for (const auto& node : graph.nodes()) ++counts[node->op()];
  return counts;
}

int64_t KvBytesPerToken(const ir::Graph& graph) {
  absl::StatusOr<backends::CacheLayout> layout = backends::CacheLayoutOf(graph);
  return layout.ok() ? layout->bytes_per_token() : -1;
}

absl::StatusOr<bool> RunPassThenDce(Pass& pass, ir::Graph& graph) {
  DSRT_ASSIGN_OR_RETURN(bool changed, pass.Run(graph));
  DSRT_RETURN_IF_ERROR(ir::VerifyGraph(graph));
  Dce dce;
  DSRT_RETURN_IF_ERROR(dce.Run(graph).status());
  DSRT_RETURN_IF_ERROR(ir::VerifyGraph(graph));
  return changed;
}

void ExpectEachEditIsLeftUntouched(const std::string& base,
                                   const std::vector<std::pair<std::string, std::string>>& edits, Pass& pass) {
  for (const auto& [from, to] : edits) {
    std::string text = base;
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    auto graph = ir::ParseGraph(text);
    ASSERT_TRUE(graph.ok()) << to << ": " << graph.status();
    const std::string before = ir::PrintGraph(**graph);
    auto changed = pass.Run(**graph);
    ASSERT_TRUE(changed.ok());
    EXPECT_FALSE(*changed) << to;
    EXPECT_EQ(ir::PrintGraph(**graph), before) << to;
  }
}

}  // namespace dsrt::passes::fixtures
