// chat_template_render: renders chat templates from the command line.
//
//   chat_template_render TEMPLATE MESSAGES.json [--add-generation-prompt] [--extra EXTRA.json]
//   chat_template_render --batch < cases.jsonl > results.jsonl
//
// TEMPLATE is a tokenizer_config.json (when it ends in .json) or a raw Jinja
// template. --batch reads one {"template", "vars"} object a line ("vars" may
// hold "messages" and "add_generation_prompt") and writes one {"ok", "out"} or
// {"ok", "error"} a line; differential_check.py compares that with Jinja2.
// Object keys keep their order (ordered_json), so `tojson` output can be
// compared byte for byte with Python's.
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "runtime/chat/chat_template.h"

namespace {

using Json = nlohmann::ordered_json;

bool ReadFile(const std::string& path, std::string& out) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return false;
  std::ostringstream content;
  content << file.rdbuf();
  out = content.str();
  return true;
}

int Fail(const std::string& message) {
  std::cerr << "chat_template_render: " << message << "\n";
  return 1;
}

Json RenderCase(const Json& test_case) {
  Json result;
  result["ok"] = false;
  if (!test_case.is_object() || !test_case.contains("template") || !test_case["template"].is_string()) {
    result["error"] = "a case needs a string \"template\"";
    return result;
  }
  auto chat = dsrt::chat::ChatTemplate::Parse(test_case["template"].get<std::string>());
  if (!chat.ok()) {
    result["error"] = chat.status().ToString();
    return result;
  }
  Json variables = test_case.contains("vars") ? test_case["vars"] : Json::object();
  Json messages = Json::array();
  bool add_generation_prompt = false;
  if (variables.is_object() && variables.contains("messages")) {
    messages = variables["messages"];
    variables.erase("messages");
  }
  if (variables.is_object() && variables.contains("add_generation_prompt")) {
    add_generation_prompt = variables["add_generation_prompt"].is_boolean() && variables["add_generation_prompt"].get<bool>();
    variables.erase("add_generation_prompt");
  }
  auto prompt = (*chat)->Render(messages, add_generation_prompt, variables);
  if (!prompt.ok()) {
    result["error"] = prompt.status().ToString();
    return result;
  }
  result["ok"] = true;
  result["out"] = *prompt;
  return result;
}

int RunBatch() {
  std::string line;
  while (std::getline(std::cin, line)) {
    const Json test_case = Json::parse(line, nullptr, false);
    std::cout << RenderCase(test_case).dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--batch") return RunBatch();
  if (argc < 3) {
    return Fail(
        "usage: chat_template_render TEMPLATE MESSAGES.json [--add-generation-prompt] [--extra EXTRA.json]\n"
        "       chat_template_render --batch < cases.jsonl");
  }
  const std::string template_path = argv[1];
  bool add_generation_prompt = false;
  std::string extra_text = "{}";
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--add-generation-prompt") {
      add_generation_prompt = true;
    } else if (arg == "--extra" && i + 1 < argc) {
      if (!ReadFile(argv[++i], extra_text)) return Fail(std::string("cannot read ") + argv[i]);
    } else {
      return Fail("unknown argument " + arg);
    }
  }
  std::string template_text, messages_text;
  if (!ReadFile(template_path, template_text)) return Fail("cannot read " + template_path);
  if (!ReadFile(argv[2], messages_text)) return Fail(std::string("cannot read ") + argv[2]);
  const bool is_config = template_path.size() >= 5 && template_path.substr(template_path.size() - 5) == ".json";
  auto chat = is_config ? dsrt::chat::ChatTemplate::FromTokenizerConfig(template_text)
                        : dsrt::chat::ChatTemplate::Parse(template_text);
  if (!chat.ok()) return Fail(chat.status().ToString());
  const Json messages = Json::parse(messages_text, nullptr, false);
  const Json extra = Json::parse(extra_text, nullptr, false);
  if (messages.is_discarded() || extra.is_discarded()) return Fail("messages or extra variables are not valid JSON");
  auto prompt = (*chat)->Render(messages, add_generation_prompt, extra);
  if (!prompt.ok()) return Fail(prompt.status().ToString());
  std::cout << *prompt;
  return 0;
}
