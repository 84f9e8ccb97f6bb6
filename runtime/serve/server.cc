#include "runtime/serve/server.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include <httplib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ir/status_macros.h"
#include "runtime/conversation.h"
#include "runtime/serve/openai_api.h"
#include "runtime/serve/scheduler.h"
#include "runtime/session.h"

namespace dsrt::runtime::serve {
namespace {

constexpr char kJson[] = "application/json";

// Everything the HTTP handlers share. Handlers run on httplib's worker threads;
// they only parse, submit to the scheduler and wait on their request's channel.
class Frontend {
 public:
  Frontend(const ServeOptions& options, ApiModel model, Scheduler& scheduler, ServeMetrics& metrics)
      : options_(options), model_(std::move(model)), scheduler_(scheduler), metrics_(metrics),
        created_(absl::ToUnixSeconds(absl::Now())), seeds_(std::random_device{}()) {}

  void Install(httplib::Server& server);

 private:
  void Generate(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  void Respond(const ApiAnswer& answer, const ApiRequest& api, std::shared_ptr<RequestChannel> channel,
               httplib::Response& res);
  void Stream(const ApiAnswer& answer, const ApiRequest& api, std::shared_ptr<RequestChannel> channel,
              httplib::Response& res);
  bool Authorized(const httplib::Request& req, httplib::Response& res);
  void Fail(const absl::Status& status, httplib::Response& res);
  ApiAnswer NewAnswer(Endpoint endpoint);

  const ServeOptions& options_;
  const ApiModel model_;
  Scheduler& scheduler_;
  ServeMetrics& metrics_;
  const int64_t created_;
  std::mutex seeds_mu_;
  std::mt19937_64 seeds_;
};

void Frontend::Fail(const absl::Status& status, httplib::Response& res) {
  const ApiError error = ToApiError(status);
  if (error.http_status < 500) metrics_.RecordRejected();
  res.status = error.http_status;
  res.set_content(DumpJson(error.ToJson()), kJson);
}

bool Frontend::Authorized(const httplib::Request& req, httplib::Response& res) {
  if (options_.api_key.empty()) return true;
  const std::string expected = "Bearer " + options_.api_key;
  const std::string given = req.get_header_value("Authorization");
  if (given == expected) return true;
  Fail(absl::UnauthenticatedError(given.empty() ? "no API key given: send 'Authorization: Bearer KEY'"
                                                : "incorrect API key provided"),
       res);
  return false;
}

ApiAnswer Frontend::NewAnswer(Endpoint endpoint) {
  std::lock_guard<std::mutex> lock(seeds_mu_);
  ApiAnswer answer;
  answer.id = absl::StrFormat("%s-%016x%08x", endpoint == Endpoint::kChatCompletions ? "chatcmpl" : "cmpl",
                              seeds_(), static_cast<uint32_t>(seeds_()));
  answer.created = absl::ToUnixSeconds(absl::Now());
  answer.model = model_.name;
  return answer;
}

void Frontend::Generate(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
  if (!Authorized(req, res)) return;
  uint64_t seed;
  {
    std::lock_guard<std::mutex> lock(seeds_mu_);
    seed = seeds_();
  }
  absl::StatusOr<ApiRequest> api = ParseApiRequest(endpoint, req.body, model_, seed);
  if (!api.ok()) return Fail(api.status(), res);
  absl::StatusOr<std::shared_ptr<RequestChannel>> channel = scheduler_.Submit(api->request);
  if (!channel.ok()) return Fail(channel.status(), res);
  const ApiAnswer answer = NewAnswer(endpoint);
  if (api->stream) return Stream(answer, *api, *channel, res);
  Respond(answer, *api, *channel, res);
}

void Frontend::Respond(const ApiAnswer& answer, const ApiRequest& api, std::shared_ptr<RequestChannel> channel,
                       httplib::Response& res) {
  std::string text;
  std::vector<int32_t> tokens;
  Progress progress;
  while (!progress.finished) {
    bool ready = false;
    progress = channel->Take(absl::Seconds(1), &ready);
    text += progress.text;
    tokens.insert(tokens.end(), progress.tokens.begin(), progress.tokens.end());
  }
  if (!progress.status.ok()) return Fail(progress.status, res);
  res.set_content(DumpJson(FullResponse(api.endpoint, answer, text, tokens, api.return_token_ids,
                                        progress.finish_reason, progress.prompt_tokens, progress.completion_tokens)),
                  kJson);
}

// One SSE event: "data: <json>\n\n".
std::string Event(const std::string& data) { return absl::StrCat("data: ", data, "\n\n"); }

void Frontend::Stream(const ApiAnswer& answer, const ApiRequest& api, std::shared_ptr<RequestChannel> channel,
                      httplib::Response& res) {
  struct State {
    bool first = true;
    bool done = false;
  };
  auto state = std::make_shared<State>();
  res.set_header("Cache-Control", "no-cache");
  auto provider = [answer, api, channel, state](size_t, httplib::DataSink& sink) -> bool {
    if (state->done) {
      sink.done();
      return true;
    }
    bool ready = false;
    const Progress progress = channel->Take(absl::Milliseconds(250), &ready);
    if (!ready) return true;  // httplib calls again; nothing to say yet
    std::string out;
    const bool chat = api.endpoint == Endpoint::kChatCompletions;
    if (!progress.status.ok()) {
      absl::StrAppend(&out, Event(DumpJson(ToApiError(progress.status).ToJson())), Event("[DONE]"));
      state->done = true;
      return sink.write(out.data(), out.size());
    }
    if (!progress.text.empty() || (state->first && chat) || (api.return_token_ids && !progress.tokens.empty())) {
      absl::StrAppend(&out, Event(DumpJson(StreamChunk(api.endpoint, answer, progress.text, state->first, "",
                                                       api.include_usage, progress.tokens, api.return_token_ids))));
      state->first = false;
    }
    if (progress.finished) {
      absl::StrAppend(&out, Event(DumpJson(StreamChunk(api.endpoint, answer, "", false, progress.finish_reason,
                                                       api.include_usage, {}, api.return_token_ids))));
      if (api.include_usage) {
        absl::StrAppend(&out, Event(DumpJson(UsageChunk(api.endpoint, answer, progress.prompt_tokens,
                                                        progress.completion_tokens))));
      }
      absl::StrAppend(&out, Event("[DONE]"));
      state->done = true;
    }
    if (out.empty()) return true;
    // A failed write means the client went away: returning false ends the response,
    // and the releaser below cancels the request.
    return sink.write(out.data(), out.size());
  };
  res.set_chunked_content_provider("text/event-stream", provider, [channel](bool) { channel->Cancel(); });
}

// The model's threads should have the cores when they want them: an HTTP thread only
// moves bytes, and on a machine with few cores a woken one would otherwise stall a
// parallel region of the model for its time slice.
void YieldCoresToTheModel() {
  thread_local const bool lowered = setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10) == 0;
  (void)lowered;
}

void Frontend::Install(httplib::Server& server) {
  server.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    YieldCoresToTheModel();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", kJson);
  });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.RenderPrometheus(), "text/plain; version=0.0.4");
  });
  server.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req, res)) return;
    res.set_content(DumpJson(ModelList(model_, created_)), kJson);
  });
  server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Generate(Endpoint::kChatCompletions, req, res);
  });
  server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Generate(Endpoint::kCompletions, req, res);
  });
  // httplib's own refusals (unknown path, body too large, ...) get OpenAI's error shape too.
  server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ApiError error;
    error.http_status = res.status;
    error.message = res.status == 404   ? absl::StrCat("no route for ", req.method, " ", req.path)
                    : res.status == 413 ? "the request body is too large"
                                        : absl::StrCat("HTTP ", res.status, " for ", req.method, " ", req.path);
    if (res.status == 404) error.code = "not_found";
    res.set_content(DumpJson(error.ToJson()), kJson);
    return httplib::Server::HandlerResponse::Handled;
  }));
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    ApiError error;
    error.http_status = 500;
    error.type = "server_error";
    error.message = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      error.message = absl::StrCat("internal error: ", e.what());
    } catch (...) {
    }
    res.status = 500;
    res.set_content(DumpJson(error.ToJson()), kJson);
  });
}

// Blocks SIGINT and SIGTERM (and SIGPIPE, which a vanished client would raise) in
// this thread and every thread it starts from now on; a watcher thread takes them.
class SignalWatcher {
 public:
  SignalWatcher() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    sigset_t blocked = signals_;
    sigaddset(&blocked, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &blocked, &previous_);
  }
  ~SignalWatcher() {
    Stop();
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  // Stops watching (waiting for a signal's action that is under way).
  void Stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void Start(std::function<void()> on_signal) {
    thread_ = std::thread([this, on_signal] {
      const timespec tick = {0, 100 * 1000 * 1000};
      while (!done_) {
        if (sigtimedwait(&signals_, nullptr, &tick) > 0) {
          on_signal();
          return;
        }
      }
    });
  }

 private:
  sigset_t signals_, previous_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

std::string DefaultModelName(const std::string& engine_path) {
  return std::filesystem::path(engine_path).stem().string();
}

}  // namespace

absl::StatusOr<int64_t> ParseByteSize(const std::string& text) {
  std::string number = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  double scale = 1;
  for (const auto& [suffix, factor] : std::vector<std::pair<std::string, double>>{
           {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10},
           {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}) {
    if (number.size() > suffix.size() && number.compare(number.size() - suffix.size(), suffix.size(), suffix) == 0) {
      number.resize(number.size() - suffix.size());
      scale = factor;
      break;
    }
  }
  double value = 0;
  if (!absl::SimpleAtod(number, &value) || !(value > 0) || value * scale > 9e18) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a byte size (say 2G, 512M or 1048576)"));
  }
  return static_cast<int64_t>(std::llround(value * scale));
}

absl::Status Serve(const ServeOptions& options, const std::function<void(const ServeInfo&)>& on_listening) {
  if (options.max_batch <= 0) return absl::InvalidArgumentError(absl::StrCat("--max-batch ", options.max_batch, " is not positive"));
  SignalWatcher signals;  // before any thread starts, so that none of them takes the signals
  SessionOptions session_options;
  session_options.backend = options.backend;
  session_options.threads = options.threads;
  session_options.max_sequences = options.max_batch;
  session_options.kv_cache_bytes = options.kv_cache_bytes;
  session_options.kv_page_tokens = options.kv_page_tokens;
  session_options.communicator = options.communicator;
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, Session::Open(options.engine_path, session_options));
  if (session->rank() != 0) return session->FollowSteps();  // signals stay blocked: rank 0 decides when to end
  session->LeadOtherRanks();

  ApiModel model;
  model.name = options.model_name.empty() ? DefaultModelName(options.engine_path) : options.model_name;
  model.max_seq_len = session->max_seq_len();
  model.vocab_size = session->vocab_size();
  if (absl::StatusOr<const text::Tokenizer*> tokenizer = session->tokenizer(); tokenizer.ok()) {
    model.tokenizer = *tokenizer;
  }
  std::unique_ptr<chat::ChatTemplate> chat_template;
  if (auto loaded = LoadChatTemplate(session->engine().tokenizer_config_json(), options.engine_path); loaded.ok()) {
    chat_template = std::move(*loaded);
    model.chat_template = chat_template.get();
  }

  ServeMetrics metrics;
  DSRT_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler,
                        Scheduler::Create(*session, {.max_step_tokens = options.max_step_tokens}, &metrics));
  Frontend frontend(options, model, *scheduler, metrics);
  httplib::Server server;
  const size_t workers = 4 * static_cast<size_t>(options.max_batch) + 8;  // streams hold a worker each
  server.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  server.set_payload_max_length(static_cast<size_t>(options.max_body_bytes));
  server.set_tcp_nodelay(true);  // a streamed token goes out at once, not after Nagle's wait for an ACK
  frontend.Install(server);

  const int port = options.port == 0 ? server.bind_to_any_port(options.host)
                                     : (server.bind_to_port(options.host, options.port) ? options.port : -1);
  if (port < 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", options.host, ":", options.port));
  scheduler->Start();
  signals.Start([&] {
    std::fprintf(stderr, "dsrt serve: shutting down\n");
    scheduler->Stop();  // ends every request, so no handler waits on the model any more
    server.stop();
  });
  backends::PagedKvCache& cache = *session->paged_cache();
  on_listening({.url = absl::StrCat("http://", options.host, ":", port),
                .model_name = model.name,
                .max_batch = options.max_batch,
                .kv_pages = cache.total_pages(),
                .kv_page_tokens = cache.page_tokens(),
                .kv_tokens = cache.total_pages() * cache.page_tokens()});
  const bool clean = server.listen_after_bind();
  signals.Stop();
  scheduler->Stop();
  DSRT_RETURN_IF_ERROR(session->ReleaseFollowers());
  if (!clean) return absl::UnavailableError(absl::StrCat("the server on ", options.host, ":", port, " failed"));
  return absl::OkStatus();
}

}  // namespace dsrt::runtime::serve
