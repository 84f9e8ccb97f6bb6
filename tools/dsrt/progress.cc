#include "tools/dsrt/progress.h"

#include <unistd.h>

#include <cstdio>

namespace dsrt::cli {

ProgressBar::ProgressBar() : interactive_(isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}

void ProgressBar::Update(const std::string& stage, int64_t done, int64_t total) {
  if (stage != stage_) {
    stage_ = stage;
    last_permille_ = -1;
    start_ = std::chrono::steady_clock::now();
  }
  const int permille = total > 0 ? static_cast<int>(1000 * done / total) : 1000;
  if (permille == last_permille_) return;
  last_permille_ = permille;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (!interactive_) {
    if (done == total) std::fprintf(stderr, "%s: %lld/%lld done in %.1f s\n", stage.c_str(),
                                    static_cast<long long>(done), static_cast<long long>(total), seconds);
    return;
  }
  constexpr int kWidth = 30;
  const int filled = permille * kWidth / 1000;
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  std::fprintf(stderr, "\r%-16s [%s] %5.1f%% %lld/%lld %.1fs", stage.c_str(), bar.c_str(), permille / 10.0,
               static_cast<long long>(done), static_cast<long long>(total), seconds);
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

}  // namespace dsrt::cli
