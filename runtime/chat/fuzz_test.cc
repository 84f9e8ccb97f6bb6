// Bounded randomized fuzzing (about 2 s under ctest): mutated template text
// and random message JSON must give a result or an error, never a crash or a
// hang. Run under the sanitizer build (-DDSRT_SANITIZE=ON) for the full value;
// DSRT_CHAT_FUZZ_SECONDS and DSRT_CHAT_FUZZ_SEED make longer, other runs:
//   DSRT_CHAT_FUZZ_SECONDS=60 DSRT_CHAT_FUZZ_SEED=7 ./chat_template_test --gtest_filter='ChatTemplateFuzz.*'
#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "runtime/chat/chat_template.h"
#include "runtime/chat/test_data.h"

namespace dsrt::chat {
namespace {

using Clock = std::chrono::steady_clock;

// The time a fuzz test runs: `default_ms`, or DSRT_CHAT_FUZZ_SECONDS.
Clock::duration FuzzDuration(int default_ms) {
  const char* seconds = std::getenv("DSRT_CHAT_FUZZ_SECONDS");
  if (seconds == nullptr) return std::chrono::milliseconds(default_ms);
  return std::chrono::milliseconds(static_cast<int64_t>(std::atof(seconds) * 1000));
}

uint32_t FuzzSeed(uint32_t default_seed) {
  const char* seed = std::getenv("DSRT_CHAT_FUZZ_SEED");
  return seed == nullptr ? default_seed : static_cast<uint32_t>(std::strtoul(seed, nullptr, 10));
}

// Templates to mutate: the shipped DeepSeek-V3 one plus snippets that reach
// the rest of the language.
std::vector<std::string> SeedTemplates() {
  std::vector<std::string> seeds = {
      "{% for m in messages %}{{ loop.index }}{{ m.role|upper }}{% if not loop.last %}, {% endif %}{% endfor %}",
      "{% set ns = namespace(n=0) %}{% for m in messages if m.content is string %}{% set ns.n = ns.n + "
      "m.content|length %}{% endfor %}{{ ns.n }}",
      "{%- macro show(x, sep=':') -%}{{ x|tojson(indent=2) }}{{ sep }}{%- endmacro -%}{{ show(messages) }}"
      "{{ show(tools, sep='|') }}",
      "{% for m in messages %}{% set c = m.content or '' %}{% if '</think>' in c %}{{ c.split('</think>')[-1]"
      "|trim }}{% else %}{{ c[1:-1] ~ c[::2] }}{% endif %}{% endfor %}",
      "{{ messages|map(attribute='role')|unique|sort|join(',') }}{{ range(3)|list }}{{ {'a': [1, (2, 3)]} }}"
      "{% raw %}{{ raw }}{% endraw %}{# comment #}",
      "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}"
      "{% filter upper %}{{ bos_token }}{% endfilter %}{% with x = 2 ** 10 %}{{ x // 3 }}{{ x % 7 }}{% endwith %}",
  };
  absl::StatusOr<std::string> config = testing::ReadDeepSeekV3TokenizerConfig();
  if (config.ok()) {
    const nlohmann::json parsed = nlohmann::json::parse(*config, nullptr, false);
    if (parsed.is_object() && parsed.contains("chat_template") && parsed["chat_template"].is_string()) {
      seeds.push_back(parsed["chat_template"].get<std::string>());
    }
  }
  return seeds;
}

const std::vector<std::string>& Fragments() {
  static const auto* fragments = new std::vector<std::string>{
      "{{", "}}", "{%", "%}", "{#", "#}", "-", "+", "'", "\"", "(", ")", "[", "]", "{", "}", "|", ".", ",", ":",
      "~", " is ", " not ", " in ", " and ", " or ", "if ", "endif", "for ", "endfor", "else", "elif", "set ",
      "namespace(", "loop.", "ns.", "raise_exception(", ".split('</think>')[-1]", "|tojson", "|length", "0",
      "-1", "1e308", "9223372036854775807", "range(", "macro ", "endmacro", "\\", "\n", "é", "\xff", "\xe4\xb8",
      "break", "continue", "messages", "message['content']", "none", "true", "**", "//", "%", "*", "[::-1]",
      "[1:]", "recursive", "raw", "endraw", "|sort", "|map(attribute='role')", "|join", "|indent(4)",
      "|replace('a', 'b')", "|int", "|round(2)", "|select('odd')", "varargs", "kwargs", "caller", "tools",
  };
  return *fragments;
}

std::string Mutate(const std::string& seed, std::mt19937& rng) {
  std::string text = seed;
  const int mutations = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < mutations; ++i) {
    const size_t at = text.empty() ? 0 : rng() % (text.size() + 1);
    const size_t length = text.empty() ? 0 : rng() % std::min<size_t>(text.size() - std::min(at, text.size()) + 1, 16);
    switch (rng() % 5) {
      case 0: text.insert(at, Fragments()[rng() % Fragments().size()]); break;
      case 1: text.erase(at, length); break;
      case 2:
        if (at < text.size()) text[at] = static_cast<char>(rng() % 256);
        break;
      case 3: text.insert(at, text.substr(at, length)); break;
      default: {
        const size_t from = text.empty() ? 0 : rng() % text.size();
        text.insert(at, text.substr(from, 1 + rng() % 24));
      }
    }
  }
  return text;
}

nlohmann::json RandomScalar(std::mt19937& rng) {
  switch (rng() % 7) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<int64_t>(rng()) - (1LL << 31);
    case 3: return static_cast<double>(rng()) / 7.0;
    case 4: return std::string("<think>a</think>b");
    case 5: return std::string(rng() % 5, "x </é\n"[rng() % 6]);
    default: return std::string("{\"k\": 1}");
  }
}

nlohmann::json RandomValue(std::mt19937& rng, int depth) {
  if (depth > 3 || rng() % 3 != 0) return RandomScalar(rng);
  if (rng() % 2 == 0) {
    nlohmann::json list = nlohmann::json::array();
    for (int i = static_cast<int>(rng() % 4); i > 0; --i) list.push_back(RandomValue(rng, depth + 1));
    return list;
  }
  static const char* const kKeys[] = {"role", "content", "type", "function", "name", "arguments", "tool_calls", "x"};
  nlohmann::json object = nlohmann::json::object();
  for (int i = static_cast<int>(rng() % 4); i > 0; --i) object[kKeys[rng() % 8]] = RandomValue(rng, depth + 1);
  return object;
}

nlohmann::json RandomMessages(std::mt19937& rng) {
  static const char* const kRoles[] = {"user", "assistant", "system", "tool", "developer"};
  if (rng() % 20 == 0) return RandomValue(rng, 0);  // often not even an array
  nlohmann::json messages = nlohmann::json::array();
  for (int i = static_cast<int>(rng() % 7); i > 0; --i) {
    nlohmann::json message = {{"role", kRoles[rng() % 5]}};
    if (rng() % 6 != 0) message["content"] = rng() % 4 == 0 ? RandomValue(rng, 1) : RandomScalar(rng);
    if (rng() % 4 == 0) {
      nlohmann::json call = {{"type", "function"},
                             {"function", {{"name", "f"}, {"arguments", rng() % 3 == 0 ? RandomValue(rng, 2) : "{}"}}}};
      message["tool_calls"] = rng() % 5 == 0 ? RandomValue(rng, 1) : nlohmann::json::array({call, call});
    }
    if (rng() % 15 == 0) message = RandomValue(rng, 1);
    messages.push_back(std::move(message));
  }
  return messages;
}

TEST(ChatTemplateFuzz, MutatedTemplatesGiveAResultOrAnError) {
  const std::vector<std::string> seeds = SeedTemplates();
  std::mt19937 rng(FuzzSeed(20240607));
  const nlohmann::json messages = nlohmann::json::parse(
      R"([{"role": "system", "content": "s"}, {"role": "user", "content": "<think>x</think>hi"},
          {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
          {"role": "tool", "content": "out"}, {"role": "assistant", "content": "done"}])");
  const auto deadline = Clock::now() + FuzzDuration(1200);
  int parsed = 0, rendered = 0, total = 0;
  while (Clock::now() < deadline) {
    ++total;
    const std::string text = Mutate(seeds[rng() % seeds.size()], rng);
    absl::StatusOr<std::unique_ptr<ChatTemplate>> chat = ChatTemplate::Parse(text);
    if (!chat.ok()) {
      // Every parse error names a position.
      EXPECT_EQ(chat.status().message().rfind("chat template ", 0), 0u) << chat.status() << "\n" << text;
      continue;
    }
    ++parsed;
    absl::StatusOr<std::string> out = (*chat)->Render(messages, rng() % 2 == 0, {{"tools", {{{"name", "t"}}}}});
    if (out.ok()) ++rendered;
  }
  std::cout << "mutated templates: " << total << ", parsed " << parsed << ", rendered " << rendered << "\n";
  EXPECT_GT(total, 100);
}

TEST(ChatTemplateFuzz, RandomMessagesGiveAResultOrAnError) {
  const std::vector<std::string> seeds = SeedTemplates();
  std::vector<std::unique_ptr<ChatTemplate>> templates;
  for (const std::string& seed : seeds) {
    absl::StatusOr<std::unique_ptr<ChatTemplate>> chat =
        ChatTemplate::Parse(seed, SpecialTokens{.bos_token = "<s>", .eos_token = "</s>"});
    ASSERT_TRUE(chat.ok()) << chat.status();
    templates.push_back(*std::move(chat));
  }
  std::mt19937 rng(FuzzSeed(7));
  const auto deadline = Clock::now() + FuzzDuration(800);
  int total = 0, rendered = 0;
  while (Clock::now() < deadline) {
    ++total;
    const nlohmann::json messages = RandomMessages(rng);
    absl::StatusOr<std::string> out = templates[rng() % templates.size()]->Render(messages, rng() % 2 == 0);
    if (out.ok()) ++rendered;
  }
  std::cout << "random conversations: " << total << ", rendered " << rendered << "\n";
  EXPECT_GT(total, 100);
}

}  // namespace
}  // namespace dsrt::chat
