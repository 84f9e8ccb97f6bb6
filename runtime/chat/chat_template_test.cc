// ChatTemplate end to end: the real DeepSeek-V3 template against the golden
// prompts, the DeepSeek-R1 template's behaviours, and the API's handling of
// configs and bad input.
#include "runtime/chat/chat_template.h"

#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "runtime/chat/test_data.h"

namespace dsrt::chat {
namespace {

constexpr char kBos[] = "<｜begin▁of▁sentence｜>";
constexpr char kEos[] = "<｜end▁of▁sentence｜>";

std::unique_ptr<ChatTemplate> LoadDeepSeekV3() {
  absl::StatusOr<std::string> config = testing::ReadDeepSeekV3TokenizerConfig();
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<ChatTemplate>> chat = ChatTemplate::FromTokenizerConfig(*config);
  EXPECT_TRUE(chat.ok()) << chat.status();
  return chat.ok() ? *std::move(chat) : nullptr;
}

// ---- the shipped DeepSeek-V3 template against ../shared/golden/tokenizer/chat.jsonl ----

TEST(DeepSeekV3ChatTemplate, RendersEveryGoldenConversationExactly) {
  std::unique_ptr<ChatTemplate> chat = LoadDeepSeekV3();
  ASSERT_NE(chat, nullptr);
  absl::StatusOr<std::string> golden = testing::ReadTextFile(testing::GoldenChatPath(), "");
  ASSERT_TRUE(golden.ok()) << golden.status();
  std::istringstream lines(*golden);
  std::string line;
  int cases = 0, passed = 0;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(record.is_object()) << line;
    ++cases;
    const std::string name = record["name"].get<std::string>();
    absl::StatusOr<std::string> prompt =
        chat->Render(record["messages"], record["add_generation_prompt"].get<bool>());
    ASSERT_TRUE(prompt.ok()) << name << ": " << prompt.status();
    EXPECT_EQ(*prompt, record["prompt"].get<std::string>()) << name;
    if (*prompt == record["prompt"].get<std::string>()) ++passed;
  }
  EXPECT_EQ(cases, 17);
  EXPECT_EQ(passed, cases);
}

TEST(DeepSeekV3ChatTemplate, ReadsTheSpecialTokensFromTheConfig) {
  std::unique_ptr<ChatTemplate> chat = LoadDeepSeekV3();
  ASSERT_NE(chat, nullptr);
  EXPECT_EQ(chat->special_tokens().bos_token, kBos);
  EXPECT_EQ(chat->special_tokens().eos_token, kEos);
  EXPECT_EQ(chat->special_tokens().pad_token, kEos);
  EXPECT_FALSE(chat->special_tokens().unk_token.has_value());  // null in the config
}

TEST(DeepSeekV3ChatTemplate, AToolMessageWithoutContentIsAnErrorNotWrongText) {
  std::unique_ptr<ChatTemplate> chat = LoadDeepSeekV3();
  ASSERT_NE(chat, nullptr);
  const nlohmann::json messages = nlohmann::json::parse(R"([{"role": "user", "content": "hi"}, {"role": "tool"}])");
  const absl::StatusOr<std::string> prompt = chat->Render(messages, true);
  ASSERT_FALSE(prompt.ok());
  EXPECT_NE(prompt.status().message().find("has no attribute 'content'"), std::string::npos) << prompt.status();
}

TEST(DeepSeekV3ChatTemplate, RendersFromSeveralThreadsAtOnce) {
  std::unique_ptr<ChatTemplate> chat = LoadDeepSeekV3();
  ASSERT_NE(chat, nullptr);
  const nlohmann::json messages = nlohmann::json::parse(R"([
      {"role": "system", "content": "s"}, {"role": "user", "content": "q"},
      {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]},
      {"role": "tool", "content": "r"}, {"role": "assistant", "content": "a"}])");
  const std::string expected = *chat->Render(messages, true);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const absl::StatusOr<std::string> prompt = chat->Render(messages, true);
        if (!prompt.ok() || *prompt != expected) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// ---- DeepSeek-R1: strips reasoning from assistant history, opens <think> ----

// The chat template published in deepseek-ai/DeepSeek-R1's tokenizer_config.json
// (the revision that appends "<think>\n" to the generation prompt).
constexpr char kDeepSeekR1Template[] =
    R"jinja({% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %})jinja"
    R"jinja({% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %})jinja"
    R"jinja({%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %})jinja"
    R"jinja({% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %})jinja"
    R"jinja({%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %})jinja"
    R"jinja({%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}{%- for message in messages %})jinja"
    R"jinja({%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}})jinja"
    R"jinja({%- endif %}{%- if message['role'] == 'assistant' and 'tool_calls' in message %})jinja"
    R"jinja({%- set ns.is_tool = false -%}{%- for tool in message['tool_calls'] %}{%- if not ns.is_first %})jinja"
    R"jinja({%- if message['content'] is none %})jinja"
    R"jinja({{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}})jinja"
    R"jinja({%- else %})jinja"
    R"jinja({{'<｜Assistant｜>' + message['content'] + '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}})jinja"
    R"jinja({%- endif %}{%- set ns.is_first = true -%}{%- else %})jinja"
    R"jinja({{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}})jinja"
    R"jinja({%- endif %}{%- endfor %}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %})jinja"
    R"jinja({%- if message['role'] == 'assistant' and 'tool_calls' not in message %}{%- if ns.is_tool %})jinja"
    R"jinja({{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}})jinja"
    R"jinja({%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %})jinja"
    R"jinja({% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %})jinja"
    R"jinja({{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %})jinja"
    R"jinja({%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %})jinja"
    R"jinja({{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}})jinja"
    R"jinja({%- set ns.is_output_first = false %}{%- else %})jinja"
    R"jinja({{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %})jinja"
    R"jinja({%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %})jinja"
    R"jinja({% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\n'}}{% endif %})jinja";

std::unique_ptr<ChatTemplate> LoadDeepSeekR1() {
  absl::StatusOr<std::unique_ptr<ChatTemplate>> chat =
      ChatTemplate::Parse(kDeepSeekR1Template, SpecialTokens{.bos_token = kBos, .eos_token = kEos});
  EXPECT_TRUE(chat.ok()) << chat.status();
  return chat.ok() ? *std::move(chat) : nullptr;
}

TEST(DeepSeekR1ChatTemplate, DropsReasoningFromHistoryAndOpensThinking) {
  std::unique_ptr<ChatTemplate> chat = LoadDeepSeekR1();
  ASSERT_NE(chat, nullptr);
  const nlohmann::json messages = nlohmann::json::parse(R"([
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "What is 2+2?"},
      {"role": "assistant", "content": "<think>\nTwo plus two.\n</think>\n\n4"},
      {"role": "user", "content": "And 3+3?"}])");
  EXPECT_EQ(*chat->Render(messages, /*add_generation_prompt=*/true),
            "<｜begin▁of▁sentence｜>Be brief.<｜User｜>What is 2+2?<｜Assistant｜>\n\n4<｜end▁of▁sentence｜>"
            "<｜User｜>And 3+3?<｜Assistant｜><think>\n");
}

TEST(DeepSeekR1ChatTemplate, ToolCallsWithContentAndAnswerAfterToolOutput) {
  std::unique_ptr<ChatTemplate> chat = LoadDeepSeekR1();
  ASSERT_NE(chat, nullptr);
  const nlohmann::json messages = nlohmann::json::parse(R"([
      {"role": "user", "content": "Weather in Oslo?"},
      {"role": "assistant", "content": "Let me check.", "tool_calls": [
          {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
      {"role": "tool", "content": "4°C"},
      {"role": "assistant", "content": "<think>ok</think>It is 4°C."}])");
  // After tool output the answer is written as is: R1 strips </think> only
  // from plain assistant turns.
  EXPECT_EQ(*chat->Render(messages, false),
            "<｜begin▁of▁sentence｜><｜User｜>Weather in Oslo?<｜Assistant｜>Let me check.<｜tool▁calls▁begin｜>"
            "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Oslo\"}\n```"
            "<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜>"
            "<｜tool▁output▁begin｜>4°C<｜tool▁output▁end｜><｜tool▁outputs▁end｜><think>ok</think>It is 4°C."
            "<｜end▁of▁sentence｜>");
}

TEST(DeepSeekR1ChatTemplate, EndingOnToolOutputGetsNoGenerationPrompt) {
  std::unique_ptr<ChatTemplate> chat = LoadDeepSeekR1();
  ASSERT_NE(chat, nullptr);
  const nlohmann::json messages = nlohmann::json::parse(R"([
      {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": null, "tool_calls": [
          {"type": "function", "function": {"name": "a", "arguments": "{}"}},
          {"type": "function", "function": {"name": "b", "arguments": "{}"}}]},
      {"role": "tool", "content": "A"},
      {"role": "tool", "content": "B"}])");
  EXPECT_EQ(*chat->Render(messages, true),
            "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
            "<｜tool▁sep｜>a\n```json\n{}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>b\n"
            "```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜><｜tool▁outputs▁begin｜>"
            "<｜tool▁output▁begin｜>A<｜tool▁output▁end｜><｜tool▁output▁begin｜>B<｜tool▁output▁end｜>"
            "<｜tool▁outputs▁end｜>");
}

TEST(DeepSeekR1ChatTemplate, AnAnswerWithoutReasoningIsKeptWhole) {
  std::unique_ptr<ChatTemplate> chat = LoadDeepSeekR1();
  ASSERT_NE(chat, nullptr);
  const nlohmann::json messages =
      nlohmann::json::parse(R"([{"role": "user", "content": "x"}, {"role": "assistant", "content": "plain"}])");
  EXPECT_EQ(*chat->Render(messages, false),
            "<｜begin▁of▁sentence｜><｜User｜>x<｜Assistant｜>plain<｜end▁of▁sentence｜>");
}

// ---- tokenizer_config.json variants ----

TEST(ChatTemplateConfig, TokensAsPlainStringsAndNamedTemplates) {
  const char* config = R"({
      "bos_token": "<s>", "eos_token": {"content": "</s>", "lstrip": false},
      "chat_template": [
          {"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}"},
          {"name": "tool_use", "template": "tools: {{ tools|length }}"}]})";
  const nlohmann::json messages = nlohmann::json::parse(R"([{"role": "user", "content": "hi"}])");
  absl::StatusOr<std::unique_ptr<ChatTemplate>> chat = ChatTemplate::FromTokenizerConfig(config);
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(*(*chat)->Render(messages, false), "<s>hi</s>");
  absl::StatusOr<std::unique_ptr<ChatTemplate>> tool_use = ChatTemplate::FromTokenizerConfig(config, "tool_use");
  ASSERT_TRUE(tool_use.ok()) << tool_use.status();
  EXPECT_EQ(*(*tool_use)->Render(messages, false, {{"tools", {1, 2}}}), "tools: 2");
  const absl::Status missing = ChatTemplate::FromTokenizerConfig(config, "rag").status();
  EXPECT_EQ(missing.message(), "tokenizer_config.json has no chat template named 'rag' (it has: default, tool_use)");
}

TEST(ChatTemplateConfig, BadConfigsAreErrors) {
  EXPECT_EQ(ChatTemplate::FromTokenizerConfig("{not json").status().message(), "tokenizer_config.json: not valid JSON");
  EXPECT_EQ(ChatTemplate::FromTokenizerConfig("{}").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ChatTemplate::FromTokenizerConfig(R"({"chat_template": "x", "bos_token": 5})").status().message(),
            "tokenizer_config.json: bos_token must be a string or an object with a string \"content\"");
  EXPECT_EQ(ChatTemplate::FromTokenizerConfig(R"({"chat_template": "{% if %}"})").status().message(),
            "chat template 1:7: expected an expression, got '%}'");
}

// ---- messages validation ----

TEST(ChatTemplateMessages, MalformedMessagesAreClearErrors) {
  absl::StatusOr<std::unique_ptr<ChatTemplate>> chat = ChatTemplate::Parse("{{ messages|length }}");
  ASSERT_TRUE(chat.ok());
  const auto render = [&](const char* messages_json) {
    return std::string((*chat)->Render(nlohmann::json::parse(messages_json), false).status().message());
  };
  EXPECT_EQ(render(R"({"role": "user"})"), "messages must be a JSON array, not object");
  EXPECT_EQ(render(R"([{"role": "user"}, "hello"])"), "messages[1] must be a JSON object, not string");
  EXPECT_EQ(render(R"([{"content": "no role"}])"), "messages[0] needs a string \"role\"");
  EXPECT_EQ(render(R"([{"role": 7}])"), "messages[0] needs a string \"role\"");
  EXPECT_EQ(render(R"([{"role": "user", "n": 18446744073709551615}])"),
            "messages: integer 18446744073709551615 is too large (more than 64-bit signed)");
  EXPECT_EQ((*chat)->Render(nlohmann::json::array(), false, {{"messages", 1}}).status().ToString(),
            "INVALID_ARGUMENT: extra_variables may not set 'messages'");
  EXPECT_EQ((*chat)->Render(nlohmann::json::array(), false, nlohmann::json::array()).status().ToString(),
            "INVALID_ARGUMENT: extra_variables must be a JSON object, not array");
  EXPECT_EQ(*(*chat)->Render(nlohmann::json::parse(R"([{"role": "user"}, {"role": "x"}])"), false), "2");
}

}  // namespace
}  // namespace dsrt::chat
