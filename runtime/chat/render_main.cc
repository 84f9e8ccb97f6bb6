// chat_template_render: renders a chat template from the command line.
//
//   chat_template_render TEMPLATE MESSAGES.json [--add-generation-prompt] [--extra EXTRA.json]
//
// TEMPLATE is a tokenizer_config.json (when it ends in .json) or a raw Jinja
// template. Object keys keep their order (ordered_json), so `tojson` output
// can be compared byte for byte with Python's.
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "runtime/chat/chat_template.h"

namespace {

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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    return Fail("usage: chat_template_render TEMPLATE MESSAGES.json [--add-generation-prompt] [--extra EXTRA.json]");
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
  const auto messages = nlohmann::ordered_json::parse(messages_text, nullptr, false);
  const auto extra = nlohmann::ordered_json::parse(extra_text, nullptr, false);
  if (messages.is_discarded() || extra.is_discarded()) return Fail("messages or extra variables are not valid JSON");
  auto prompt = (*chat)->Render(messages, add_generation_prompt, extra);
  if (!prompt.ok()) return Fail(prompt.status().ToString());
  std::cout << *prompt;
  return 0;
}
