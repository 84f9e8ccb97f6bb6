#include "runtime/tokenize.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"
#include "serialization/engine_reader.h"

namespace dsrt::runtime {

absl::StatusOr<std::unique_ptr<text::Tokenizer>> LoadTokenizer(const std::string& engine_or_dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(engine_or_dir, ec)) return text::Tokenizer::FromDirectory(engine_or_dir);
  DSRT_ASSIGN_OR_RETURN(auto engine, serialization::Engine::Open(engine_or_dir, -1));
  if (engine->proto().tokenizer_json().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(engine_or_dir, " carries no tokenizer"));
  }
  return text::Tokenizer::FromJson(engine->proto().tokenizer_json(), engine->proto().tokenizer_config_json());
}

absl::StatusOr<std::string> LoadTokenizerConfigJson(const std::string& engine_or_dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(engine_or_dir, ec)) {
    std::ifstream in(engine_or_dir + "/tokenizer_config.json", std::ios::binary);
    if (!in) return std::string();
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  DSRT_ASSIGN_OR_RETURN(auto engine, serialization::Engine::Open(engine_or_dir, -1));
  return engine->proto().tokenizer_config_json();
}

}  // namespace dsrt::runtime
