#ifndef DSRT_SERIALIZATION_TEST_ENGINES_H_
#define DSRT_SERIALIZATION_TEST_ENGINES_H_

// Small engines for the tests and the fuzz target.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ir/graph.h"
#include "serialization/engine_writer.h"

namespace dsrt::serialization::test_engines {

struct TestWeight {
  std::string name;
  ir::DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // a pattern that differs per rank and weight
};

// A graph touching most ops: embedding, norm, linears, rope, attention,
// slice/concat, router; its Constants name the weights of MakeTestWeights.
std::unique_ptr<ir::Graph> MakeTestGraph(int64_t vocab);
// A small MTP-like graph over the same weight table.
std::unique_ptr<ir::Graph> MakeTestMtpGraph(int64_t vocab);
std::vector<TestWeight> MakeTestWeights(int rank, int64_t vocab);
std::vector<WeightToWrite> ToWrite(const std::vector<TestWeight>& weights);
EngineProto MakeTestMetadata();

// The engine the tests use: `world_size` ranks, rank 0 with an MTP graph;
// `vocab` sets the size of the LM head (300: each rank's section spans pages).
absl::Status WriteTestEngine(const std::string& path, int world_size = 2, int64_t vocab = 300);

// Recomputes the proto and header checksums of a (mutated) engine image, so
// that a mutation reaches the parser and the layout checks behind them.
void FixChecksums(std::string& file);

// What a fuzzer runs on a file: opens it as metadata, as every rank and as one
// past the last, loads the graphs, verifies and reads every weight. Must never
// crash, whatever the file holds.
void ExerciseEngine(const std::string& path);

}  // namespace dsrt::serialization::test_engines

#endif  // DSRT_SERIALIZATION_TEST_ENGINES_H_
