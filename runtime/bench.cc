#include "runtime/bench.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "backends/onednn/cpu.h"
#include "ir/status_macros.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace dsrt::runtime {
namespace {

absl::Status CheckOptions(const BenchOptions& o, const Session& session) {
  if (o.batch < 1 || o.input_len < 1 || o.output_len < 1 || o.warmup < 0) {
    return absl::InvalidArgumentError("bench: --batch, --input-len and --output-len must be at least 1");
  }
  if (o.input_len + o.output_len > session.max_seq_len()) {
    return absl::InvalidArgumentError(absl::StrCat("bench: --input-len + --output-len = ", o.input_len + o.output_len,
                                                   " exceeds the engine's max sequence length ",
                                                   session.max_seq_len()));
  }
  return absl::OkStatus();
}

// Every sequence's prompt in one step, logits for the last token of each.
backends::StepInput PrefillStep(const std::vector<std::vector<int32_t>>& prompts) {
  backends::StepInput step;
  for (size_t s = 0; s < prompts.size(); ++s) {
    for (size_t i = 0; i < prompts[s].size(); ++i) {
      step.token_ids.push_back(prompts[s][i]);
      step.positions.push_back(static_cast<int32_t>(i));
      step.sequence_slots.push_back(static_cast<int32_t>(s));
    }
    step.logit_rows.push_back(static_cast<int32_t>(step.token_ids.size() - 1));
  }
  return step;
}

std::vector<int32_t> ArgmaxRows(const backends::StepOutput& out) {
  std::vector<int32_t> next;
  for (int64_t r = 0; r < out.rows; ++r) next.push_back(Argmax(absl::MakeConstSpan(out.row(r), out.vocab)));
  return next;
}

struct Round {
  double prefill_s = 0, decode_s = 0;
  int64_t decode_steps = 0;
};

absl::StatusOr<Round> RunRound(Session& session, const std::vector<std::vector<int32_t>>& prompts, int64_t output_len) {
  Round round;
  backends::StepOutput out;
  absl::Time start = absl::Now();
  DSRT_RETURN_IF_ERROR(session.Step(PrefillStep(prompts), &out));
  std::vector<int32_t> next = ArgmaxRows(out);
  round.prefill_s = absl::ToDoubleSeconds(absl::Now() - start);
  const int32_t input_len = static_cast<int32_t>(prompts[0].size());
  start = absl::Now();
  for (int64_t n = 1; n < output_len; ++n) {
    backends::StepInput step;
    for (size_t s = 0; s < prompts.size(); ++s) {
      step.token_ids.push_back(next[s]);
      step.positions.push_back(input_len + static_cast<int32_t>(n) - 1);
      step.sequence_slots.push_back(static_cast<int32_t>(s));
    }
    DSRT_RETURN_IF_ERROR(session.Step(step, &out));
    next = ArgmaxRows(out);
    ++round.decode_steps;
  }
  round.decode_s = absl::ToDoubleSeconds(absl::Now() - start);
  return round;
}

// Bytes of each Constant's weight, from the engine's table.
absl::flat_hash_map<std::string, int64_t> WeightBytes(const Session& session) {
  absl::flat_hash_map<std::string, int64_t> bytes;
  for (const auto& section : session.engine().ranks()) {
    for (const auto& weight : section.weights()) bytes[weight.name()] = weight.bytes();
  }
  return bytes;
}

int64_t DecodeBytesPerStep(const Session& session, int64_t batch, int64_t context) {
  const absl::flat_hash_map<std::string, int64_t> bytes = WeightBytes(session);
  auto weight_bytes = [&](const ir::Value* v) -> int64_t {
    if (v->producer()->op() != "Constant") return 0;
    auto it = bytes.find(v->producer()->attrs().StringOr("weight", ""));
    return it == bytes.end() ? 0 : it->second;
  };
  double total = 0;
  absl::flat_hash_set<const ir::Value*> counted;
  for (const auto& node : session.graph().nodes()) {
    const bool moe = node->op() == "FusedMoE" || node->op() == "QFusedMoE";
    double expert_fraction = 1;
    if (moe) {
      // An expert-parallel rank holds some of the layer's experts; each is picked as often.
      const double experts = node->attrs().IntOr("routed_experts", node->attrs().IntOr("num_experts", 1));
      const double top_k = node->attrs().IntOr("top_k", 1);
      expert_fraction = 1 - std::pow(1 - top_k / experts, static_cast<double>(batch));
    }
    for (int i = 0; i < node->num_inputs(); ++i) {
      const ir::Value* v = node->input(i);
      if (!counted.insert(v).second) continue;
      if (node->op() == "Embedding" && i == 0) {
        total += static_cast<double>(weight_bytes(v)) / v->type().dims[0].size * batch;
      } else {
        total += weight_bytes(v) * (moe && i >= 3 ? expert_fraction : 1.0);
      }
    }
  }
  total += static_cast<double>(batch) * context * session.cache_layout().bytes_per_token();
  return static_cast<int64_t>(total);
}

struct CollectiveTraffic {
  int64_t calls = 0;
  int64_t bytes_per_token = 0;
};

CollectiveTraffic CollectivesOf(const ir::Graph& graph) {
  CollectiveTraffic traffic;
  const int64_t world = graph.attrs().IntOr("world_size", 1);
  for (const auto& node : graph.nodes()) {
    const std::string& op = node->op();
    if (op != "AllReduce" && op != "AllGather" && op != "ExpertCombine") continue;
    const ir::Value* sent = op == "AllGather" ? node->input(0) : node->output();
    int64_t elements = 1;
    for (const ir::Dim& d : sent->type().dims) elements *= d.is_symbolic() ? 1 : d.size;
    // ExpertCombine: an AllToAll of at most the token's row, then an AllGather of the
    // rows a rank owns (one in `world` tokens): counted at their most.
    traffic.calls += op == "ExpertCombine" ? 2 : 1;
    traffic.bytes_per_token += elements * static_cast<int64_t>(sizeof(float)) * (op == "ExpertCombine" ? world + 1 : world) / world;
  }
  return traffic;
}

}  // namespace

double MeasureReadBandwidth(int repeats) {
  const int64_t n = int64_t{1} << 28;  // 1 GiB of floats, cache-line aligned as weights are
  std::unique_ptr<float, decltype(&std::free)> buffer(static_cast<float*>(std::aligned_alloc(64, n * sizeof(float))),
                                                     &std::free);
  float* data_ptr = buffer.get();
  if (data_ptr == nullptr) return 0;
  std::fill(data_ptr, data_ptr + n, 1.0f);
  double best = 1e30, sink = 0;
  for (int r = 0; r < repeats; ++r) {
    const absl::Time start = absl::Now();
    double sum = 0;
#pragma omp parallel reduction(+ : sum)
    {
      const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
      const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
      sum += backends::onednn::SumF32(data_ptr + begin, end - begin);
    }
    best = std::min(best, absl::ToDoubleSeconds(absl::Now() - start));
    sink += sum;
  }
  return sink > 0 ? n * sizeof(float) / best / 1e9 : 0;
}

int64_t PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    int64_t kb = 0;
    fields >> kb;
    return kb * 1024;
  }
  return 0;
}

nlohmann::json BenchResult::ToJson() const {
  return {{"backend", backend},
          {"threads", threads},
          {"batch", batch},
          {"input_len", input_len},
          {"output_len", output_len},
          {"load_ms", load_ms},
          {"compile_ms", compile_ms},
          {"prefill_tokens_per_s", prefill_tokens_per_s},
          {"decode_tokens_per_s", decode_tokens_per_s},
          {"ttft_ms", ttft_ms},
          {"tpot_ms", tpot_ms},
          {"peak_rss_bytes", peak_rss_bytes},
          {"weight_bytes", weight_bytes},
          {"kv_cache_bytes_per_token", kv_cache_bytes_per_token},
          {"decode_bytes_per_step", decode_bytes_per_step},
          {"world_size", world_size},
          {"collectives_per_token", collectives_per_token},
          {"collective_bytes_per_token", collective_bytes_per_token},
          {"read_bandwidth_gb_s", read_bandwidth_gb_s},
          {"roofline_decode_tokens_per_s", roofline_decode_tokens_per_s},
          {"roofline_fraction", roofline_fraction}};
}

absl::StatusOr<BenchResult> RunBench(const BenchOptions& o) {
  SessionOptions session_options;
  session_options.backend = o.backend;
  session_options.threads = o.threads;
  session_options.communicator = o.communicator;
  session_options.max_sequences = static_cast<int>(o.batch);
  session_options.verify_weights = false;
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Open(o.engine_path, session_options));
  DSRT_RETURN_IF_ERROR(CheckOptions(o, *session));

  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(session->vocab_size() - 1));
  std::vector<std::vector<int32_t>> prompts(o.batch, std::vector<int32_t>(o.input_len));
  for (auto& prompt : prompts) {
    for (int32_t& id : prompt) id = token(rng);
  }
  const int64_t rounds = o.warmup + 1;
  Round measured;
  double bandwidth = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    if (o.progress) o.progress(r < o.warmup ? "warm-up" : "measure", r, rounds);
    if (r == o.warmup && o.roofline) bandwidth = MeasureReadBandwidth();
    // Warm-up rounds are short: they only need every primitive made once.
    DSRT_ASSIGN_OR_RETURN(measured, RunRound(*session, prompts, r < o.warmup ? std::min<int64_t>(o.output_len, 3)
                                                                             : o.output_len));
  }
  if (o.roofline) bandwidth = std::max(bandwidth, MeasureReadBandwidth());
  if (o.progress) o.progress("measure", rounds, rounds);

  BenchResult result;
  result.backend = o.backend;
  result.threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  result.batch = o.batch;
  result.input_len = o.input_len;
  result.output_len = o.output_len;
  result.load_ms = session->load_seconds() * 1e3;
  result.compile_ms = session->compile_seconds() * 1e3;
  result.ttft_ms = measured.prefill_s * 1e3;
  result.prefill_tokens_per_s = o.batch * o.input_len / measured.prefill_s;
  if (measured.decode_steps > 0) {
    result.tpot_ms = measured.decode_s * 1e3 / measured.decode_steps;
    result.decode_tokens_per_s = o.batch * measured.decode_steps / measured.decode_s;
  }
  result.peak_rss_bytes = PeakRssBytes();
  for (const auto& section : session->engine().ranks()) {
    for (const auto& weight : section.weights()) result.weight_bytes += weight.bytes();
  }
  result.kv_cache_bytes_per_token = session->cache_layout().bytes_per_token();
  result.decode_bytes_per_step = DecodeBytesPerStep(*session, o.batch, o.input_len + o.output_len / 2);
  const CollectiveTraffic traffic = CollectivesOf(session->graph());
  result.collectives_per_token = traffic.calls;
  result.collective_bytes_per_token = traffic.bytes_per_token;
  result.world_size = session->world_size();
  if (o.roofline) {
    result.read_bandwidth_gb_s = bandwidth;
    result.roofline_decode_tokens_per_s = bandwidth * 1e9 / result.decode_bytes_per_step * o.batch;
    result.roofline_fraction = result.decode_tokens_per_s / result.roofline_decode_tokens_per_s;
  }
  return result;
}

}  // namespace dsrt::runtime
