#ifndef DSRT_MODELS_TEST_FILES_H_
#define DSRT_MODELS_TEST_FILES_H_

// Files for the models/ tests: golden checkpoints, scratch directories, whole-file I/O.

#include <string>

namespace dsrt::models::testing_files {

// ../shared/golden/<name>, found from the repository root the build passes in.
std::string GoldenDir(const std::string& name);
// A fresh, empty directory under this process's scratch root (removed at exit).
std::string TestDir(const std::string& name);
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& bytes);

}  // namespace dsrt::models::testing_files

#endif  // DSRT_MODELS_TEST_FILES_H_
