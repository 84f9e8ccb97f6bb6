#include "runtime/serve/bench_serve.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>

#include <httplib.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "ir/status_macros.h"

namespace dsrt::runtime::serve {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// The server as the client addresses it: "http://host:port" and a path prefix ("" or "/api").
struct Target {
  std::string url;  // as the user gave it, for messages
  std::string host_port;
  std::string prefix;
  httplib::Headers headers;
};

absl::StatusOr<Target> ParseTarget(const std::string& url, const std::string& api_key) {
  const bool http = absl::StartsWith(url, "http://"), https = absl::StartsWith(url, "https://");
  if (!http && !https) return absl::InvalidArgumentError(absl::StrCat("--url '", url, "' must start with http:// or https://"));
  const size_t host_start = http ? 7 : 8;
  const size_t slash = url.find('/', host_start);
  Target target;
  target.url = std::string(absl::StripSuffix(url, "/"));
  target.host_port = url.substr(0, slash);
  if (target.host_port.size() == host_start) return absl::InvalidArgumentError(absl::StrCat("--url '", url, "' names no host"));
  if (slash != std::string::npos) target.prefix = std::string(absl::StripSuffix(url.substr(slash), "/"));
  if (!api_key.empty()) target.headers.emplace("Authorization", "Bearer " + api_key);
  return target;
}

std::unique_ptr<httplib::Client> NewClient(const Target& target) {
  auto client = std::make_unique<httplib::Client>(target.host_port);
  client->set_connection_timeout(5);
  client->set_read_timeout(600);  // a request may wait long in the server's queue
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);  // else Nagle holds the request body back until the headers are ACKed
  return client;
}

// The message of an OpenAI-shaped error body, else the body itself (shortened).
std::string ErrorMessage(const std::string& body) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object() &&
      parsed["error"].contains("message") && parsed["error"]["message"].is_string()) {
    return parsed["error"]["message"].get<std::string>();
  }
  return body.substr(0, 300);
}

// What the benchmark needs to know about the served model.
struct ServedModel {
  std::string name;
  int64_t max_model_len = 0;  // 0: the server does not say
  int64_t vocab_size = 0;
};

absl::StatusOr<ServedModel> PickModel(const json& models, const BenchServeOptions& options, const std::string& where) {
  if (!models.is_object() || !models.contains("data") || !models["data"].is_array() || models["data"].empty()) {
    return absl::FailedPreconditionError(absl::StrCat(where, " lists no model"));
  }
  std::vector<std::string> names;
  for (const json& entry : models["data"]) {
    const std::string name = entry.value("id", "");
    names.push_back(name);
    if (!options.model.empty() && name != options.model) continue;
    ServedModel model{.name = name, .max_model_len = entry.value("max_model_len", int64_t{0}),
                      .vocab_size = options.vocab_size > 0 ? options.vocab_size : entry.value("vocab_size", int64_t{0})};
    if (model.vocab_size <= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, " gives no vocab_size for '", name, "': pass --vocab-size"));
    }
    return model;
  }
  return absl::NotFoundError(absl::StrCat(where, " lists no model '", options.model, "' (it lists: ",
                                          absl::StrJoin(names, ", "), ")"));
}

absl::StatusOr<ServedModel> FetchModel(const Target& target, const BenchServeOptions& options) {
  const std::string where = target.url + "/v1/models";
  auto client = NewClient(target);
  if (!client->is_valid()) return absl::InvalidArgumentError(absl::StrCat("--url '", options.url, "' is not a valid URL"));
  httplib::Result res = client->Get(target.prefix + "/v1/models", target.headers);
  if (!res) {
    return absl::UnavailableError(absl::StrCat("cannot reach the server at ", where, ": ", httplib::to_string(res.error())));
  }
  if (res->status != 200) {
    return absl::FailedPreconditionError(absl::StrCat(where, " answered HTTP ", res->status, ": ", ErrorMessage(res->body)));
  }
  const json models = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (models.is_discarded()) return absl::FailedPreconditionError(absl::StrCat(where, " answered no JSON"));
  try {
    return PickModel(models, options, where);
  } catch (const json::exception& e) {
    return absl::FailedPreconditionError(absl::StrCat(where, " answered an unexpected shape: ", e.what()));
  }
}

absl::Status CheckOptions(const BenchServeOptions& options) {
  if (options.concurrency.empty()) return absl::InvalidArgumentError("--concurrency lists no level");
  for (int level : options.concurrency) {
    if (level <= 0) return absl::InvalidArgumentError(absl::StrCat("--concurrency ", level, " is not positive"));
  }
  if (options.num_prompts <= 0) return absl::InvalidArgumentError(absl::StrCat("--num-prompts ", options.num_prompts, " is not positive"));
  if (options.input_len <= 0) return absl::InvalidArgumentError(absl::StrCat("--input-len ", options.input_len, " is not positive"));
  if (options.output_len <= 0) return absl::InvalidArgumentError(absl::StrCat("--output-len ", options.output_len, " is not positive"));
  return absl::OkStatus();
}

std::vector<std::vector<int32_t>> RandomPrompts(const BenchServeOptions& options, int64_t vocab_size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab_size - 1));
  std::vector<std::vector<int32_t>> prompts(options.num_prompts);
  for (auto& prompt : prompts) {
    prompt.resize(options.input_len);
    for (int32_t& token : prompt) token = id(rng);
  }
  return prompts;
}

// Greedy, exactly output_len tokens, streamed with the usage at the end. return_token_ids
// (vLLM's and dsrt's) makes every chunk that carries a token visible even when its text
// is empty or held back (a tokenizer-less engine, half a UTF-8 character).
std::string CompletionBody(const std::string& model, const std::vector<int32_t>& prompt, int64_t output_len) {
  const json body = {{"model", model},         {"prompt", prompt},
                     {"max_tokens", output_len}, {"temperature", 0},
                     {"ignore_eos", true},      {"stream", true},
                     {"stream_options", {{"include_usage", true}}}, {"return_token_ids", true}};
  return body.dump();
}

// Splits a server-sent event stream into the data of each event.
class SseReader {
 public:
  template <typename OnData>
  void Feed(const char* data, size_t size, OnData&& on_data) {
    buffer_.append(data, size);
    size_t end;
    while ((end = buffer_.find("\n\n")) != std::string::npos) {
      const std::string event = buffer_.substr(0, end);
      buffer_.erase(0, end + 2);
      absl::string_view line = absl::StripSuffix(event, "\r");
      if (absl::ConsumePrefix(&line, "data:")) on_data(absl::StripPrefix(line, " "));
    }
  }

 private:
  std::string buffer_;
};

// One request as the client saw it.
struct RequestRecord {
  std::string error;  // empty: it succeeded
  double ttft_s = 0;
  double latency_s = 0;
  std::vector<double> itl_s;
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
};

bool CarriesTokens(const json& chunk) {
  if (!chunk.contains("choices") || !chunk["choices"].is_array() || chunk["choices"].empty()) return false;
  const json& choice = chunk["choices"][0];
  const bool text = choice.contains("text") && choice["text"].is_string() && !choice["text"].get<std::string>().empty();
  const bool ids = choice.contains("token_ids") && choice["token_ids"].is_array() && !choice["token_ids"].empty();
  return text || ids;
}

// Reads the events of one streamed completion into `record`, timing the token chunks.
class StreamTimer {
 public:
  StreamTimer(RequestRecord& record, Clock::time_point start) : record_(record), start_(start), last_(start) {}

  void OnData(absl::string_view data) {
    if (!record_.error.empty()) return;
    if (data == "[DONE]") {
      done_ = true;
      return;
    }
    try {
      OnChunk(json::parse(data));
    } catch (const json::exception& e) {
      record_.error = absl::StrCat("a streamed event is malformed (", e.what(), "): ", data.substr(0, 200));
    }
  }

  // The record's error when the stream ended without everything the benchmark needs.
  void Finish() {
    if (!record_.error.empty()) return;
    if (!done_) record_.error = "the stream ended before [DONE]";
    else if (!usage_) record_.error = "the stream carried no usage (stream_options.include_usage)";
    else if (!first_) record_.error = "no streamed chunk carried a token";
  }

 private:
  void OnChunk(const json& chunk) {
    if (chunk.contains("error")) {
      record_.error = chunk["error"].value("message", chunk.dump());
      return;
    }
    if (chunk.contains("usage") && chunk["usage"].is_object()) {
      record_.prompt_tokens = chunk["usage"].at("prompt_tokens").get<int64_t>();
      record_.output_tokens = chunk["usage"].at("completion_tokens").get<int64_t>();
      usage_ = true;
    }
    if (!CarriesTokens(chunk)) return;
    const Clock::time_point now = Clock::now();
    if (!first_) record_.ttft_s = Seconds(now - start_);
    else record_.itl_s.push_back(Seconds(now - last_));
    first_ = true;
    last_ = now;
  }

  RequestRecord& record_;
  Clock::time_point start_, last_;
  bool first_ = false, usage_ = false, done_ = false;
};

RequestRecord SendCompletion(httplib::Client& client, const Target& target, const std::string& body) {
  RequestRecord record;
  int status = 0;
  std::string error_body;
  const Clock::time_point start = Clock::now();
  StreamTimer timer(record, start);
  SseReader reader;

  httplib::Request req;
  req.method = "POST";
  req.path = target.prefix + "/v1/completions";
  req.headers = target.headers;
  req.set_header("Content-Type", "application/json");
  req.body = body;
  req.response_handler = [&](const httplib::Response& res) {
    status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    if (status != 200) error_body.append(data, size);
    else reader.Feed(data, size, [&](absl::string_view event) { timer.OnData(event); });
    return true;
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  const bool sent = client.send(req, res, error);
  record.latency_s = Seconds(Clock::now() - start);
  if (!sent) {
    record.error = absl::StrCat("POST ", target.url, "/v1/completions: ", httplib::to_string(error));
  } else if (status != 200) {
    record.error = absl::StrCat("HTTP ", status, ": ", ErrorMessage(error_body.empty() ? res.body : error_body));
  } else {
    timer.Finish();
  }
  return record;
}

// numpy.percentile's default (linear interpolation between the closest ranks).
double Percentile(const std::vector<double>& sorted, double p) {
  const double rank = p / 100 * static_cast<double>(sorted.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(rank)), above = static_cast<size_t>(std::ceil(rank));
  return sorted[below] + (sorted[above] - sorted[below]) * (rank - static_cast<double>(below));
}

BenchServeResult Aggregate(const std::vector<RequestRecord>& records, int concurrency, double duration_s) {
  BenchServeResult result;
  result.concurrency = concurrency;
  result.duration_s = duration_s;
  std::vector<double> ttft, tpot, itl, e2el;
  for (const RequestRecord& r : records) {
    if (!r.error.empty()) {
      if (result.failed++ == 0) result.first_error = r.error;
      continue;
    }
    ++result.completed;
    result.total_input_tokens += r.prompt_tokens;
    result.total_output_tokens += r.output_tokens;
    ttft.push_back(1e3 * r.ttft_s);
    e2el.push_back(1e3 * r.latency_s);
    if (r.output_tokens > 1) tpot.push_back(1e3 * (r.latency_s - r.ttft_s) / static_cast<double>(r.output_tokens - 1));
    for (double gap : r.itl_s) itl.push_back(1e3 * gap);
  }
  result.request_throughput = static_cast<double>(result.completed) / duration_s;
  result.output_throughput = static_cast<double>(result.total_output_tokens) / duration_s;
  result.total_token_throughput = static_cast<double>(result.total_input_tokens + result.total_output_tokens) / duration_s;
  result.ttft = Summarize(std::move(ttft));
  result.tpot = Summarize(std::move(tpot));
  result.itl = Summarize(std::move(itl));
  result.e2el = Summarize(std::move(e2el));
  return result;
}

// num_prompts requests, `concurrency` in flight: each of `concurrency` workers sends
// the next unsent prompt as soon as its previous request ends.
BenchServeResult RunLevel(const Target& target, const ServedModel& model, const BenchServeOptions& options,
                          int concurrency, uint64_t seed) {
  const std::vector<std::vector<int32_t>> prompts = RandomPrompts(options, model.vocab_size, seed);
  std::vector<RequestRecord> records(prompts.size());
  std::atomic<size_t> next{0};
  std::mutex progress_mu;
  int64_t finished = 0;
  const std::string stage = absl::StrCat("concurrency ", concurrency);
  if (options.progress) options.progress(stage, 0, options.num_prompts);

  const Clock::time_point start = Clock::now();
  std::vector<std::thread> workers;
  for (int64_t w = 0; w < std::min<int64_t>(concurrency, options.num_prompts); ++w) {
    workers.emplace_back([&] {
      auto client = NewClient(target);
      for (size_t i = next++; i < prompts.size(); i = next++) {
        records[i] = SendCompletion(*client, target, CompletionBody(model.name, prompts[i], options.output_len));
        std::lock_guard<std::mutex> lock(progress_mu);
        ++finished;
        if (options.progress) options.progress(stage, finished, options.num_prompts);
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  return Aggregate(records, concurrency, Seconds(Clock::now() - start));
}

}  // namespace

LatencyStats Summarize(std::vector<double> values_ms) {
  if (values_ms.empty()) return {};
  std::sort(values_ms.begin(), values_ms.end());
  double sum = 0;
  for (double v : values_ms) sum += v;
  return {.mean_ms = sum / static_cast<double>(values_ms.size()),
          .median_ms = Percentile(values_ms, 50),
          .p99_ms = Percentile(values_ms, 99)};
}

nlohmann::json BenchServeResult::ToJson() const {
  json out = {{"concurrency", concurrency},
              {"completed", completed},
              {"failed", failed},
              {"total_input_tokens", total_input_tokens},
              {"total_output_tokens", total_output_tokens},
              {"duration_s", duration_s},
              {"request_throughput", request_throughput},
              {"output_throughput", output_throughput},
              {"total_token_throughput", total_token_throughput}};
  for (const auto& [name, stats] : {std::pair<const char*, const LatencyStats&>{"ttft", ttft},
                                    {"tpot", tpot}, {"itl", itl}, {"e2el", e2el}}) {
    out[absl::StrCat("mean_", name, "_ms")] = stats.mean_ms;
    out[absl::StrCat("median_", name, "_ms")] = stats.median_ms;
    out[absl::StrCat("p99_", name, "_ms")] = stats.p99_ms;
  }
  if (!first_error.empty()) out["first_error"] = first_error;
  return out;
}

absl::StatusOr<std::vector<BenchServeResult>> RunBenchServe(const BenchServeOptions& options) {
  DSRT_RETURN_IF_ERROR(CheckOptions(options));
  DSRT_ASSIGN_OR_RETURN(const Target target, ParseTarget(options.url, options.api_key));
  DSRT_ASSIGN_OR_RETURN(const ServedModel model, FetchModel(target, options));
  if (model.max_model_len > 0 && options.input_len + options.output_len > model.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat("--input-len ", options.input_len, " + --output-len ",
                                                   options.output_len, " exceeds the max_model_len ",
                                                   model.max_model_len, " of '", model.name, "' at ", target.url));
  }
  std::vector<BenchServeResult> results;
  for (size_t level = 0; level < options.concurrency.size(); ++level) {
    BenchServeResult result = RunLevel(target, model, options, options.concurrency[level], options.seed + level);
    if (result.completed == 0) {
      return absl::UnavailableError(absl::StrCat("every request to ", target.url, " failed at concurrency ",
                                                 result.concurrency, "; the first: ", result.first_error));
    }
    results.push_back(std::move(result));
  }
  return results;
}

}  // namespace dsrt::runtime::serve
