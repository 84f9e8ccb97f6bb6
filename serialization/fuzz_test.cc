// A bounded randomized mutation fuzz of a small engine: whatever a corrupt
// file holds, opening it, loading its graphs and checking its weights ends in
// a status, never a crash. engine_fuzz.cc is the same under libFuzzer.

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>

#include "gtest/gtest.h"
#include "serialization/engine_reader.h"
#include "serialization/test_engines.h"
#include "ir/testutil/scratch_dir.h"

namespace dsrt::serialization {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// One to four of: a flipped bit, a random byte, a run of 0x00 or 0xff, a cut,
// a duplicated chunk. Half the mutants get their checksums fixed so that the
// mutation reaches the proto parser and the layout checks.
std::string Mutate(const std::string& original, std::mt19937_64& rng) {
  std::string bytes = original;
  const int mutations = 1 + static_cast<int>(rng() % 4);
  for (int m = 0; m < mutations && !bytes.empty(); ++m) {
    const size_t at = rng() % bytes.size();
    switch (rng() % 5) {
      case 0:
        bytes[at] ^= static_cast<char>(1 << (rng() % 8));
        break;
      case 1:
        bytes[at] = static_cast<char>(rng());
        break;
      case 2:
        for (size_t i = at; i < std::min(bytes.size(), at + 1 + rng() % 8); ++i) bytes[i] = (rng() & 1) ? 0 : '\xff';
        break;
      case 3:
        bytes.resize(at);
        break;
      case 4:
        bytes.insert(at, bytes.substr(rng() % bytes.size(), rng() % 64));
        break;
    }
  }
  if (rng() & 1) test_engines::FixChecksums(bytes);
  return bytes;
}

TEST(EngineFuzzTest, MutatedEnginesNeverCrash) {
  const std::string dir = dsrt::testutil::ScratchPath("engine_fuzz_test");
  std::filesystem::create_directories(dir);
  const std::string original_path = dir + "/small.engine";
  ASSERT_TRUE(test_engines::WriteTestEngine(original_path, 2, 40).ok());
  const std::string original = ReadFile(original_path);
  const std::string path = dir + "/mutant.engine";

  std::mt19937_64 rng(20240611);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  int runs = 0;
  int opened = 0;
  for (; runs < 20000 && std::chrono::steady_clock::now() < deadline; ++runs) {
    const std::string mutant = Mutate(original, rng);
    WriteFile(path, mutant);
    test_engines::ExerciseEngine(path);
    opened += Engine::Open(path, 0).ok() ? 1 : 0;
  }
  std::filesystem::remove_all(dir);
  EXPECT_GT(runs, 100);
  RecordProperty("runs", runs);
  RecordProperty("opened", opened);
  std::cout << runs << " mutants, " << opened << " of them opened as rank 0\n";
}

}  // namespace
}  // namespace dsrt::serialization
