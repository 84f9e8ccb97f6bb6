// libFuzzer target for the engine reader (Clang only; see CMakeLists.txt):
//   ./engine_fuzz -max_total_time=60 CORPUS_DIR
// Seed CORPUS_DIR with a small engine (the one serialization_test writes, or
// `dsrt build` of a synth preset). Each input has its checksums fixed before it
// is opened, so mutations reach the proto parser and the layout checks.

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "serialization/test_engines.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("engine_fuzz", MFD_CLOEXEC);
  static const std::string path = absl::StrCat("/proc/self/fd/", fd);
  if (fd < 0) return 0;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  dsrt::serialization::test_engines::FixChecksums(bytes);
  if (ftruncate(fd, 0) != 0 || pwrite(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) {
    return 0;
  }
  dsrt::serialization::test_engines::ExerciseEngine(path);
  return 0;
}
