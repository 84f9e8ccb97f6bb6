// The continuous-batching scheduler on a tiny synthesized engine. On the reference
// backend each token's arithmetic does not depend on what else is in the step, so
// every request must produce exactly the tokens it produces alone through Generate,
// however it was batched, chunked, queued or preempted.

#include "runtime/serve/scheduler.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "models/config.h"
#include "models/synth.h"
#include "runtime/engine_builder.h"
#include "ir/testutil/scratch_dir.h"

namespace dsrt::runtime::serve {
namespace {

constexpr int64_t kMaxSeqLen = 64;

// tiny-v3 with seed 11, f32; `eos_token_id` other than -1 replaces the preset's
// (the weights do not depend on it).
std::string BuildTinyEngine(const std::string& name, int64_t eos_token_id = -1) {
  const std::string dir = dsrt::testutil::ScratchPath("scheduler_test_" + name);
  std::filesystem::remove_all(dir);
  auto text = models::PresetConfigJson("tiny-v3");
  EXPECT_TRUE(text.ok()) << text.status();
  nlohmann::json config_json = nlohmann::json::parse(*text);
  if (eos_token_id >= 0) config_json["eos_token_id"] = eos_token_id;
  auto config = models::ParseDeepSeekConfig(config_json.dump(), "tiny-v3");
  EXPECT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(models::SynthesizeCheckpoint(*config, config_json.dump(), dir, /*seed=*/11, {}).ok());
  EngineBuildOptions options;
  options.checkpoint_dir = dir;
  options.output_path = dir + "/model.engine";
  options.dtype = ir::DType::kF32;
  options.max_seq_len = kMaxSeqLen;
  auto report = BuildEngine(options);
  EXPECT_TRUE(report.ok()) << report.status();
  return options.output_path;
}

const std::string& TinyEngine() {
  static const std::string* path = new std::string(BuildTinyEngine("tiny"));
  return *path;
}

std::vector<int32_t> Prompt(int length, int32_t seed) {
  std::vector<int32_t> ids;
  for (int i = 0; i < length; ++i) ids.push_back((seed * 31 + i * 17) % 200 + 1);
  return ids;
}

Request Greedy(std::vector<int32_t> prompt, int64_t max_tokens) {
  Request request;
  request.prompt = std::move(prompt);
  request.max_tokens = max_tokens;
  return request;
}

// What the request produces alone, through Generate on a contiguous cache.
GenerateResult Alone(const Request& request) {
  auto session = Session::Open(TinyEngine(), {.backend = "reference", .verify_weights = false});
  EXPECT_TRUE(session.ok()) << session.status();
  GenerateOptions options;
  options.max_new_tokens = request.max_tokens;
  options.sampling = request.sampling;
  auto result = Generate(**session, request.prompt, options);
  EXPECT_TRUE(result.ok()) << result.status();
  return *result;
}

// A scheduler over its own session: `pages` pages of `page_tokens` tokens, a batch of `batch`.
struct Server {
  Server(int batch, int64_t pages, int64_t page_tokens = 4, int64_t max_step_tokens = 256,
         const std::string& engine = TinyEngine()) {
    SessionOptions options{.backend = "reference", .max_sequences = batch, .verify_weights = false};
    auto opened = Session::Open(engine, options);
    EXPECT_TRUE(opened.ok()) << opened.status();
    const int64_t page_bytes = (*opened)->cache_layout().bytes_per_token() * page_tokens;
    options.kv_cache_bytes = pages * page_bytes;
    options.kv_page_tokens = page_tokens;
    opened = Session::Open(engine, options);
    EXPECT_TRUE(opened.ok()) << opened.status();
    session = std::move(*opened);
    auto created = Scheduler::Create(*session, {.max_step_tokens = max_step_tokens}, &metrics);
    EXPECT_TRUE(created.ok()) << created.status();
    scheduler = std::move(*created);
  }

  std::shared_ptr<RequestChannel> Submit(Request request) {
    auto channel = scheduler->Submit(std::move(request));
    EXPECT_TRUE(channel.ok()) << channel.status();
    return *channel;
  }

  ServeMetrics metrics;
  std::unique_ptr<Session> session;
  std::unique_ptr<Scheduler> scheduler;
};

// Everything a request produced, gathered as a client would.
struct Outcome {
  std::vector<int32_t> tokens;
  std::string finish_reason;
  bool finished = false;
};

void Drain(RequestChannel& channel, Outcome& outcome) {
  bool ready = true;
  while (!outcome.finished) {
    Progress progress = channel.Take(absl::ZeroDuration(), &ready);
    if (!ready) return;
    outcome.tokens.insert(outcome.tokens.end(), progress.tokens.begin(), progress.tokens.end());
    EXPECT_TRUE(progress.status.ok()) << progress.status;
    if (progress.finished) {
      outcome.finished = true;
      outcome.finish_reason = progress.finish_reason;
    }
  }
}

std::vector<Outcome> RunToEnd(Server& server, std::vector<std::shared_ptr<RequestChannel>>& channels,
                              int max_steps = 500) {
  std::vector<Outcome> outcomes(channels.size());
  for (int step = 0; step < max_steps; ++step) {
    auto ran = server.scheduler->Step();
    EXPECT_TRUE(ran.ok()) << ran.status();
    bool all = true;
    for (size_t i = 0; i < channels.size(); ++i) {
      Drain(*channels[i], outcomes[i]);
      all = all && outcomes[i].finished;
    }
    if (all) return outcomes;
  }
  ADD_FAILURE() << "requests still running after " << max_steps << " steps";
  return outcomes;
}

TEST(Scheduler, OneRequestGeneratesWhatGenerateDoes) {
  Server server(/*batch=*/2, /*pages=*/32);
  const Request request = Greedy(Prompt(9, 1), 12);
  std::vector<std::shared_ptr<RequestChannel>> channels = {server.Submit(request)};
  const Outcome outcome = RunToEnd(server, channels)[0];
  const GenerateResult alone = Alone(request);
  EXPECT_EQ(outcome.tokens, alone.generated);
  EXPECT_EQ(outcome.finish_reason, alone.finish_reason);
  EXPECT_EQ(server.scheduler->gauges().kv_pages_used, 0);
}

TEST(Scheduler, RequestsBatchedTogetherEachGetWhatTheyGetAlone) {
  Server server(/*batch=*/4, /*pages=*/64);
  std::vector<Request> requests;
  for (int i = 0; i < 6; ++i) requests.push_back(Greedy(Prompt(3 + 5 * i, i), 4 + i));
  requests[2].sampling = {.greedy = false, .temperature = 0.8, .top_p = 0.9, .seed = 7};
  std::vector<std::shared_ptr<RequestChannel>> channels;
  for (const Request& r : requests) channels.push_back(server.Submit(r));
  const std::vector<Outcome> outcomes = RunToEnd(server, channels);
  for (size_t i = 0; i < requests.size(); ++i) {
    const GenerateResult alone = Alone(requests[i]);
    EXPECT_EQ(outcomes[i].tokens, alone.generated) << "request " << i;
    EXPECT_EQ(outcomes[i].finish_reason, alone.finish_reason) << "request " << i;
  }
  EXPECT_EQ(server.scheduler->gauges().kv_pages_used, 0);
}

TEST(Scheduler, ALongPromptIsPrefilledInChunksWhileARunningStreamKeepsDecoding) {
  Server server(/*batch=*/2, /*pages=*/32, /*page_tokens=*/4, /*max_step_tokens=*/8);
  const Request running = Greedy(Prompt(4, 2), 20);
  const Request long_prompt = Greedy(Prompt(40, 3), 3);
  auto stream = server.Submit(running);
  Outcome streamed;
  ASSERT_TRUE(server.scheduler->Step().ok());  // prefills the short prompt, samples its first token
  Drain(*stream, streamed);
  ASSERT_EQ(streamed.tokens.size(), 1u);

  auto late = server.Submit(long_prompt);
  Outcome late_outcome;
  // 40 prompt tokens at 8 - 1 a step: five steps hold 35 of them, and the stream gets a token in each.
  for (int step = 0; step < 5; ++step) {
    ASSERT_TRUE(server.scheduler->Step().ok());
    Drain(*stream, streamed);
    Drain(*late, late_outcome);
    EXPECT_EQ(streamed.tokens.size(), static_cast<size_t>(step + 2)) << "step " << step;
  }
  EXPECT_TRUE(late_outcome.tokens.empty());
  std::vector<std::shared_ptr<RequestChannel>> channels = {stream, late};
  const std::vector<Outcome> rest = RunToEnd(server, channels);
  streamed.tokens.insert(streamed.tokens.end(), rest[0].tokens.begin(), rest[0].tokens.end());
  EXPECT_EQ(streamed.tokens, Alone(running).generated);
  EXPECT_EQ(rest[1].tokens, Alone(long_prompt).generated);
}

TEST(Scheduler, RequestsWaitWhileThePoolIsFullThenAllFinish) {
  // 10 pages of 4 tokens; each request needs 3 pages for its prompt and grows to 4.
  Server server(/*batch=*/4, /*pages=*/10);
  std::vector<Request> requests;
  for (int i = 0; i < 4; ++i) requests.push_back(Greedy(Prompt(10, 10 + i), 6));
  std::vector<std::shared_ptr<RequestChannel>> channels;
  for (const Request& r : requests) channels.push_back(server.Submit(r));
  ASSERT_TRUE(server.scheduler->Step().ok());
  EXPECT_EQ(server.scheduler->gauges().running, 2);
  EXPECT_EQ(server.scheduler->gauges().waiting, 2);
  const std::vector<Outcome> outcomes = RunToEnd(server, channels);
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(outcomes[i].tokens, Alone(requests[i]).generated) << i;
  EXPECT_EQ(server.scheduler->gauges().kv_pages_used, 0);
  EXPECT_EQ(server.scheduler->gauges().kv_pages_free, 10);
}

TEST(Scheduler, ARequestPreemptedForPagesResumesWithTheSameTokens) {
  // 6 pages of 4 tokens; two requests of 6 prompt tokens grow to 4 pages each.
  Server server(/*batch=*/2, /*pages=*/6);
  const Request first = Greedy(Prompt(6, 20), 10), second = Greedy(Prompt(6, 21), 10);
  std::vector<std::shared_ptr<RequestChannel>> channels = {server.Submit(first), server.Submit(second)};
  bool preempted = false;
  std::vector<Outcome> outcomes(2);
  for (int step = 0; step < 100 && !(outcomes[0].finished && outcomes[1].finished); ++step) {
    ASSERT_TRUE(server.scheduler->Step().ok());
    preempted = preempted || server.scheduler->gauges().waiting > 0;
    Drain(*channels[0], outcomes[0]);
    Drain(*channels[1], outcomes[1]);
  }
  EXPECT_TRUE(preempted);
  EXPECT_EQ(outcomes[0].tokens, Alone(first).generated);
  EXPECT_EQ(outcomes[1].tokens, Alone(second).generated);
  EXPECT_EQ(server.scheduler->gauges().kv_pages_used, 0);
}

TEST(Scheduler, ACancelledRequestFreesItsPagesWithinOneStep) {
  Server server(/*batch=*/2, /*pages=*/16);
  auto channel = server.Submit(Greedy(Prompt(12, 4), 40));
  ASSERT_TRUE(server.scheduler->Step().ok());
  ASSERT_TRUE(server.scheduler->Step().ok());
  EXPECT_GT(server.scheduler->gauges().kv_pages_used, 0);
  channel->Cancel();
  ASSERT_TRUE(server.scheduler->Step().ok());
  EXPECT_EQ(server.scheduler->gauges().kv_pages_used, 0);
  EXPECT_EQ(server.scheduler->gauges().running, 0);
  Outcome outcome;
  Drain(*channel, outcome);
  EXPECT_EQ(outcome.finish_reason, "cancelled");
}

TEST(Scheduler, ASequenceThatAloneFillsTheCacheEndsWithLength) {
  Server server(/*batch=*/1, /*pages=*/3);  // 12 tokens in all
  std::vector<std::shared_ptr<RequestChannel>> channels = {server.Submit(Greedy(Prompt(6, 5), 100))};
  const Outcome outcome = RunToEnd(server, channels)[0];
  EXPECT_EQ(outcome.finish_reason, "length");
  EXPECT_EQ(outcome.tokens.size(), 7u);  // rows for positions 0..11, and the token after the last
  EXPECT_EQ(server.scheduler->gauges().kv_pages_used, 0);
}

TEST(Scheduler, GenerationEndsAtTheEnginesMaxSequenceLength) {
  Server server(/*batch=*/1, /*pages=*/32);
  const Request request = Greedy(Prompt(60, 6), 100);
  std::vector<std::shared_ptr<RequestChannel>> channels = {server.Submit(request)};
  const Outcome outcome = RunToEnd(server, channels)[0];
  const GenerateResult alone = Alone(request);
  EXPECT_EQ(outcome.tokens, alone.generated);
  EXPECT_EQ(outcome.tokens.size(), 5u);
  EXPECT_EQ(outcome.finish_reason, "length");
}

TEST(Scheduler, WithoutStopAtEosGenerationGoesPastTheEndOfSequenceToken) {
  const Request request = Greedy(Prompt(5, 30), 6);
  const std::vector<int32_t> greedy = Alone(request).generated;
  ASSERT_EQ(greedy.size(), 6u);
  // The same weights, with the third greedy token declared the end of sequence.
  Server server(/*batch=*/2, /*pages=*/16, /*page_tokens=*/4, /*max_step_tokens=*/256,
                BuildTinyEngine("eos", greedy[2]));
  Request ignoring = request;
  ignoring.stop_at_eos = false;
  std::vector<std::shared_ptr<RequestChannel>> channels = {server.Submit(request), server.Submit(ignoring)};
  const std::vector<Outcome> outcomes = RunToEnd(server, channels);
  EXPECT_EQ(outcomes[0].tokens, std::vector<int32_t>(greedy.begin(), greedy.begin() + 3));
  EXPECT_EQ(outcomes[0].finish_reason, "stop");
  EXPECT_EQ(outcomes[1].tokens, greedy);
  EXPECT_EQ(outcomes[1].finish_reason, "length");
}

TEST(Scheduler, SubmitRefusesRequestsThatCouldNeverRunAndNamesWhy) {
  Server server(/*batch=*/1, /*pages=*/8);
  auto refused = [&](Request request, const std::string& words) {
    auto channel = server.scheduler->Submit(std::move(request));
    ASSERT_FALSE(channel.ok());
    EXPECT_EQ(channel.status().code(), absl::StatusCode::kInvalidArgument) << channel.status();
    EXPECT_NE(channel.status().message().find(words), std::string::npos) << channel.status();
  };
  refused(Greedy({}, 4), "the prompt is empty");
  refused(Greedy({1, 2, 1000000}, 4), "token id 1000000 at prompt position 2");
  refused(Greedy(Prompt(65, 1), 4), "more than the engine's max sequence length 64");
  refused(Greedy(Prompt(33, 1), 4), "more than the whole KV cache holds (32)");
  refused(Greedy(Prompt(3, 1), 0), "max_tokens 0");
  Request hot = Greedy(Prompt(3, 1), 4);
  hot.sampling = {.greedy = false, .temperature = -1};
  auto channel = server.scheduler->Submit(hot);
  EXPECT_FALSE(channel.ok());
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Runs one request to its end on the server; the tokens it generated.
std::vector<int32_t> RunOne(Server& server, const Request& request) {
  std::vector<std::shared_ptr<RequestChannel>> channels = {server.Submit(request)};
  return RunToEnd(server, channels)[0].tokens;
}

TEST(PrefixCache, ARequestSharingAFinishedOnesPrefixPrefillsOnlyTheRest) {
  Server server(/*batch=*/2, /*pages=*/32);  // pages of 4 tokens
  const std::vector<int32_t> prefix = Prompt(14, 40);
  const Request first = Greedy(Concat(prefix, {7, 8, 9}), 6);
  const Request second = Greedy(Concat(prefix, {11, 12, 13, 14}), 6);
  EXPECT_EQ(RunOne(server, first), Alone(first).generated);
  const TokenCounters before = server.scheduler->counters();
  EXPECT_EQ(before.prefilled, 17);
  EXPECT_EQ(before.prefix_cache_hits, 0);
  EXPECT_GT(server.scheduler->gauges().kv_pages_evictable, 0);

  EXPECT_EQ(RunOne(server, second), Alone(second).generated);
  const TokenCounters after = server.scheduler->counters();
  // The pages of tokens 0..11 are the first request's; 12..15 differ (prefix[12..13], 7, 8).
  EXPECT_EQ(after.prefix_cache_queries - before.prefix_cache_queries, 18);
  EXPECT_EQ(after.prefix_cache_hits - before.prefix_cache_hits, 12);
  EXPECT_EQ(after.prefilled - before.prefilled, 18 - 12);
  EXPECT_EQ(server.scheduler->gauges().kv_pages_used, 0);
}

TEST(PrefixCache, AnIdenticalPromptWhileTheFirstRunsSharesItsPagesAndPrefillsTheLastToken) {
  Server server(/*batch=*/2, /*pages=*/32);
  const Request request = Greedy(Prompt(16, 41), 8);  // exactly 4 full pages
  auto first = server.Submit(request);
  ASSERT_TRUE(server.scheduler->Step().ok());
  ASSERT_TRUE(server.scheduler->Step().ok());
  const int64_t used_by_first = server.scheduler->gauges().kv_pages_used;
  std::vector<std::shared_ptr<RequestChannel>> channels = {first, server.Submit(request)};
  ASSERT_TRUE(server.scheduler->Step().ok());
  // The second holds the first's three leading pages and one of its own for tokens 12..15.
  EXPECT_EQ(server.scheduler->gauges().kv_pages_used, used_by_first + 1);
  const std::vector<Outcome> outcomes = RunToEnd(server, channels);
  const std::vector<int32_t> alone = Alone(request).generated;
  EXPECT_EQ(outcomes[0].tokens, alone);
  EXPECT_EQ(outcomes[1].tokens, alone);
  const TokenCounters counters = server.scheduler->counters();
  EXPECT_EQ(counters.prefix_cache_hits, 12);  // never the last page: its last token must run
  EXPECT_EQ(counters.prefilled, 16 + 4);
  EXPECT_EQ(server.scheduler->gauges().kv_pages_used, 0);
}

TEST(PrefixCache, AConversationOneTurnLaterReusesThePromptAndTheAnswer) {
  Server server(/*batch=*/1, /*pages=*/32);
  const Request turn1 = Greedy(Prompt(10, 42), 7);
  const std::vector<int32_t> answer = RunOne(server, turn1);
  ASSERT_EQ(answer.size(), 7u);
  // The history as token ids: prompt, answer, then the next user turn.
  const Request turn2 = Greedy(Concat(Concat(turn1.prompt, answer), {21, 22, 23}), 5);
  const TokenCounters before = server.scheduler->counters();
  EXPECT_EQ(RunOne(server, turn2), Alone(turn2).generated);
  const TokenCounters after = server.scheduler->counters();
  // Rows exist for the prompt and all but the last answer token: 16 of them, 4 full pages.
  EXPECT_EQ(after.prefix_cache_hits - before.prefix_cache_hits, 16);
  EXPECT_EQ(after.prefilled - before.prefilled, 20 - 16);
}

TEST(PrefixCache, UnderMemoryPressureCachedPagesAreEvictedAndNoPageLeaks) {
  // 12 pages of 4 tokens, 3 at a time: requests sharing two prefixes, and strangers.
  Server server(/*batch=*/3, /*pages=*/12);
  const std::vector<int32_t> a = Prompt(9, 43), b = Prompt(5, 44);
  std::vector<Request> requests;
  for (int i = 0; i < 10; ++i) {
    const std::vector<int32_t> shared = i % 3 == 0 ? a : i % 3 == 1 ? b : Prompt(6, 50 + i);
    requests.push_back(Greedy(Concat(shared, Prompt(1 + i % 4, 60 + i)), 3 + i % 5));
  }
  std::vector<std::shared_ptr<RequestChannel>> channels;
  for (const Request& r : requests) channels.push_back(server.Submit(r));
  const std::vector<Outcome> outcomes = RunToEnd(server, channels);
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(outcomes[i].tokens, Alone(requests[i]).generated) << i;
  EXPECT_GT(server.scheduler->counters().prefix_cache_hits, 0);
  SchedulerGauges gauges = server.scheduler->gauges();
  EXPECT_EQ(gauges.kv_pages_used, 0);
  EXPECT_EQ(gauges.kv_pages_free, 12);
  ASSERT_GT(gauges.kv_pages_evictable, 0);

  // A request that needs more pages than are truly free runs at once, on evicted pages.
  const int64_t truly_free = gauges.kv_pages_free - gauges.kv_pages_evictable;
  ASSERT_GE(truly_free, 0);
  const Request big = Greedy(Prompt(static_cast<int>(4 * (truly_free + 1)), 70), 2);
  channels = {server.Submit(big)};
  ASSERT_TRUE(server.scheduler->Step().ok());
  EXPECT_EQ(server.scheduler->gauges().running, 1);
  EXPECT_EQ(RunToEnd(server, channels)[0].tokens, Alone(big).generated);
  gauges = server.scheduler->gauges();
  EXPECT_EQ(gauges.kv_pages_used, 0);
  EXPECT_EQ(gauges.kv_pages_free, 12);
}

TEST(PrefixCache, TurnedOffEveryPromptIsPrefilledInFull) {
  Server server(/*batch=*/1, /*pages=*/32);
  auto created = Scheduler::Create(*server.session, {.prefix_caching = false}, &server.metrics);
  ASSERT_TRUE(created.ok()) << created.status();
  server.scheduler = std::move(*created);
  const Request request = Greedy(Prompt(12, 45), 3);
  RunOne(server, request);
  RunOne(server, request);
  EXPECT_EQ(server.scheduler->counters().prefilled, 24);
  EXPECT_EQ(server.scheduler->counters().prefix_cache_hits, 0);
  EXPECT_EQ(server.scheduler->gauges().kv_pages_evictable, 0);
}

TEST(PagedSession, OnOneDnnPagedRowsGiveTheLogitsOfContiguousRows) {
  // Two sequences in one step, then a decode step each, on both kinds of cache. The
  // oneDNN kernel reads a contiguous cache in place and gathers a paged one.
  SessionOptions options{.backend = "onednn", .max_sequences = 2, .verify_weights = false};
  auto contiguous = Session::Open(TinyEngine(), options);
  ASSERT_TRUE(contiguous.ok()) << contiguous.status();
  options.kv_cache_bytes = 8 * 4 * (*contiguous)->cache_layout().bytes_per_token();
  options.kv_page_tokens = 4;
  auto paged = Session::Open(TinyEngine(), options);
  ASSERT_TRUE(paged.ok()) << paged.status();
  backends::PagedKvCache& cache = *(*paged)->paged_cache();
  ASSERT_TRUE(cache.Grow(0, 11).ok());
  ASSERT_TRUE(cache.Grow(1, 6).ok());

  backends::StepInput prefill = backends::StepInput::ForSequence(Prompt(10, 1), 0, 0);
  const backends::StepInput second = backends::StepInput::ForSequence(Prompt(5, 2), 0, 1);
  prefill.token_ids.insert(prefill.token_ids.end(), second.token_ids.begin(), second.token_ids.end());
  prefill.positions.insert(prefill.positions.end(), second.positions.begin(), second.positions.end());
  prefill.sequence_slots.insert(prefill.sequence_slots.end(), second.sequence_slots.begin(), second.sequence_slots.end());
  backends::StepInput decode;
  decode.token_ids = {7, 8};
  decode.positions = {10, 5};
  decode.sequence_slots = {0, 1};
  for (const backends::StepInput* step : {&prefill, &decode}) {
    backends::StepOutput want, got;
    ASSERT_TRUE((*contiguous)->Step(*step, &want).ok());
    ASSERT_TRUE((*paged)->Step(*step, &got).ok());
    ASSERT_EQ(want.logits.size(), got.logits.size());
    for (size_t i = 0; i < want.logits.size(); ++i) ASSERT_NEAR(want.logits[i], got.logits[i], 1e-5) << i;
  }
  backends::StepInput beyond = backends::StepInput::ForSequence({3}, 8, 1);  // its two pages end at 8
  backends::StepOutput out;
  EXPECT_EQ((*paged)->Step(beyond, &out).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Scheduler, TheLoopThreadServesRequestsFromOtherThreads) {
  Server server(/*batch=*/4, /*pages=*/64);
  server.scheduler->Start();
  const Request request = Greedy(Prompt(7, 8), 6);
  std::vector<std::thread> clients;
  std::vector<Outcome> outcomes(4);
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      auto channel = server.Submit(request);
      while (!outcomes[i].finished) {
        bool ready = false;
        Progress progress = channel->Take(absl::Seconds(10), &ready);
        if (!ready) break;
        outcomes[i].tokens.insert(outcomes[i].tokens.end(), progress.tokens.begin(), progress.tokens.end());
        outcomes[i].finished = progress.finished;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  server.scheduler->Stop();
  const GenerateResult alone = Alone(request);
  for (const Outcome& outcome : outcomes) EXPECT_EQ(outcome.tokens, alone.generated);
}

}  // namespace
}  // namespace dsrt::runtime::serve
