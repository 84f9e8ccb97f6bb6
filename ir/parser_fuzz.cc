// libFuzzer target for ParseGraph: any bytes must parse or fail cleanly, and any
// graph that parses must print to text that parses to the same print.
//
//   CC=clang CXX=clang++ cmake -G Ninja -DDSRT_SANITIZE=ON .. && ninja ir_parser_fuzz
//   ./ir/ir_parser_fuzz -max_total_time=60 CORPUS_DIR

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "ir/parser.h"
#include "ir/printer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool verify : {true, false}) {
    absl::StatusOr<std::unique_ptr<dsrt::ir::Graph>> graph = dsrt::ir::ParseGraph(text, {.verify = verify});
    if (!graph.ok()) continue;
    const std::string printed = dsrt::ir::PrintGraph(**graph);
    absl::StatusOr<std::unique_ptr<dsrt::ir::Graph>> again = dsrt::ir::ParseGraph(printed, {.verify = verify});
    if (!again.ok() || dsrt::ir::PrintGraph(**again) != printed) std::abort();
  }
  return 0;
}
