#ifndef DSRT_IR_TESTUTIL_SCRATCH_DIR_H_
#define DSRT_IR_TESTUTIL_SCRATCH_DIR_H_

// Files that tests write (checkpoints, engines, dumps) go under one directory per test
// process, removed when the process exits: ctest runs each test case as its own process,
// and a CI disk fills up quickly with engines that nobody reads again.

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace dsrt::testutil {

class ProcessScratchDir {
 public:
  ProcessScratchDir() : owner_(getpid()), path_(absl::StrCat(::testing::TempDir(), "/dsrt_test_", owner_)) {
    std::filesystem::create_directories(path_);
  }
  ~ProcessScratchDir() {
    // A forked child (a death test) must not delete its parent's files.
    if (getpid() != owner_) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ProcessScratchDir(const ProcessScratchDir&) = delete;
  ProcessScratchDir& operator=(const ProcessScratchDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  pid_t owner_;
  std::string path_;
};

// The path `name` inside this process's scratch directory (not created).
inline std::string ScratchPath(absl::string_view name) {
  static ProcessScratchDir root;
  return absl::StrCat(root.path(), "/", name);
}

}  // namespace dsrt::testutil

#endif  // DSRT_IR_TESTUTIL_SCRATCH_DIR_H_
