#ifndef DSRT_TOOLS_DSRT_PROGRESS_H_
#define DSRT_TOOLS_DSRT_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace dsrt::cli {

// A one-line progress bar on stderr, redrawn in place on a terminal; elsewhere
// (CI logs, pipes) it prints one line per stage when the stage completes.
class ProgressBar {
 public:
  ProgressBar();
  void Update(const std::string& stage, int64_t done, int64_t total);

 private:
  bool interactive_;
  std::string stage_;
  int last_permille_ = -1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace dsrt::cli

#endif  // DSRT_TOOLS_DSRT_PROGRESS_H_
