#include "models/test_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "ir/testutil/scratch_dir.h"

namespace dsrt::models::testing_files {

std::string GoldenDir(const std::string& name) { return std::string(DSRT_REPO_DIR) + "/../shared/golden/" + name; }

std::string TestDir(const std::string& name) {
  const std::string dir = dsrt::testutil::ScratchPath(name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << bytes;
}

}  // namespace dsrt::models::testing_files
