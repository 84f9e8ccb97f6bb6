// Drawing graphs with GraphViz: the DOT text, and layouts rendered to files.

#include "ir/dot.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ir/builder.h"
#include "ir/testutil/scratch_dir.h"

namespace dsrt::ir {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Two decoder layers, each RMSNorm -> Linear -> Add, then an MoE router: enough
// to see clusters, weights, step inputs and each colour family.
std::unique_ptr<Graph> TwoLayers() {
  auto graph = std::make_unique<Graph>();
  GraphBuilder b(*graph);
  Value* ids = b.Parameter("token_ids", MakeType(DType::kI32, {Dim::Symbolic(kTokensDim)}));
  Value* table = b.Constant("model.embed_tokens.weight", StaticType(DType::kBF16, {512, 64}));
  Value* h = b.Op("Embedding", {table, ids}, {{"dtype", "f32"}}, "h");
  for (int layer = 0; layer < 2; ++layer) {
    const std::string prefix = absl::StrCat("model.layers.", layer, ".");
    b.SetScope(absl::StrCat("layers.", layer));
    Value* norm_w = b.Constant(prefix + "input_layernorm.weight", StaticType(DType::kBF16, {64}));
    Value* x = b.Op("RMSNorm", {h, norm_w}, {{"eps", 1e-6}}, "x");
    Value* w = b.Constant(prefix + "mlp.up_proj.weight", StaticType(DType::kBF16, {96, 64}));
    Value* up = b.Linear(x, w, "up");
    Value* down_w = b.Constant(prefix + "mlp.down_proj.weight", StaticType(DType::kBF16, {64, 96}));
    h = b.Add(h, b.Linear(b.Op("Silu", {up}, {}, "act"), down_w, "down"), "h");
  }
  b.SetScope("layers.1");
  Value* gate = b.Constant("model.layers.1.mlp.gate.weight", StaticType(DType::kF32, {8, 64}));
  std::vector<Value*> routed = b.MultiOp("Router", {h, gate},
                                         {{"scoring", "sigmoid"},
                                          {"method", "noaux_tc"},
                                          {"top_k", int64_t{2}},
                                          {"n_group", int64_t{2}},
                                          {"topk_group", int64_t{1}},
                                          {"normalize", int64_t{1}},
                                          {"scaling", 2.5}},
                                         {"topk_ids", "topk_w"});
  b.SetScope("");
  b.Output(h);
  if (!routed.empty()) b.Output(routed[1]);
  EXPECT_TRUE(b.status().ok()) << b.status();
  return graph;
}

// A file name under the test's temporary directory, unique to this process.
std::string TempPath(absl::string_view name) { return dsrt::testutil::ScratchPath(name); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary);
  out << contents;
}

TEST(DotTest, LayersBecomeClustersAndNodesShowOpAndType) {
  const std::string dot = GraphToDot(*TwoLayers());
  EXPECT_THAT(dot, HasSubstr("digraph main {"));
  EXPECT_THAT(dot, HasSubstr("subgraph \"cluster_layers.0\" {"));
  EXPECT_THAT(dot, HasSubstr("subgraph \"cluster_layers.1\" {"));
  EXPECT_THAT(dot, HasSubstr("label=\"layers.1\""));
  EXPECT_THAT(dot, HasSubstr("label=\"Linear\\nf32[tokens,96]\""));
  EXPECT_THAT(dot, HasSubstr("label=\"Router\\ni32[tokens,2]\\nf32[tokens,2]\""));
  // Weights are notes labelled with their name, step inputs point down.
  EXPECT_THAT(dot, HasSubstr("label=\"model.layers.0.mlp.up_proj.weight\\nbf16[96,64]\""));
  EXPECT_THAT(dot, HasSubstr("shape=note"));
  EXPECT_THAT(dot, HasSubstr("label=\"token_ids\\ni32[tokens]\""));
  EXPECT_THAT(dot, HasSubstr("shape=invhouse"));
  EXPECT_THAT(dot, HasSubstr("label=return"));
  EXPECT_THAT(dot, HasSubstr("->"));
}

TEST(DotTest, OpFamiliesHaveTheirOwnColours) {
  const std::string dot = GraphToDot(*TwoLayers());
  for (const char* colour : {"#c6dbef" /* linear */, "#fff3b0" /* norm */, "#dadaeb" /* MoE */,
                             "#e5f5e0" /* elementwise */, "#f0f0f0" /* weights */, "#c7e9c0" /* inputs */}) {
    EXPECT_THAT(dot, HasSubstr(colour));
  }
}

TEST(DotTest, HiddenConstantsAreListedByTheirConsumers) {
  const std::string dot = GraphToDot(*TwoLayers(), {.show_constants = false});
  EXPECT_THAT(dot, Not(HasSubstr("shape=note")));
  EXPECT_THAT(dot, HasSubstr("label=\"Linear\\nf32[tokens,96]\\nmodel.layers.0.mlp.up_proj.weight bf16[96,64]\""));
}

TEST(DotTest, MaxNodesDrawsAPrefixAndSaysWhatIsLeftOut) {
  const std::unique_ptr<Graph> graph = TwoLayers();
  const std::string dot = GraphToDot(*graph, {.max_nodes = 4});
  EXPECT_THAT(dot, HasSubstr(absl::StrCat("... ", graph->num_nodes() - 4, " more nodes not drawn")));
  EXPECT_THAT(dot, Not(HasSubstr("cluster_layers.1")));
}

TEST(DotTest, GraphvizCommandLineAcceptsTheText) {
  if (std::system("test -x /usr/bin/dot") != 0) GTEST_SKIP() << "/usr/bin/dot is not installed";
  const std::string dot_path = TempPath("dot_test_cli.dot");
  const std::string svg_path = TempPath("dot_test_cli.svg");
  WriteFile(dot_path, GraphToDot(*TwoLayers()));
  ASSERT_EQ(std::system(absl::StrCat("/usr/bin/dot -Tsvg ", dot_path, " -o ", svg_path).c_str()), 0);
  EXPECT_THAT(ReadFile(svg_path), HasSubstr("<svg"));
}

TEST(DotTest, RendersSvg) {
  const std::string path = TempPath("dot_test_render.svg");
  ASSERT_TRUE(RenderGraph(*TwoLayers(), path, "svg").ok());
  const std::string svg = ReadFile(path);
  EXPECT_THAT(svg, HasSubstr("<svg"));
  EXPECT_THAT(svg, HasSubstr("layers.0"));  // a cluster's label
  EXPECT_THAT(svg, HasSubstr("model.layers.1.mlp.gate.weight"));
}

TEST(DotTest, RendersTheLaidOutGraphAsDot) {
  const std::string path = TempPath("dot_test_render.dot");
  ASSERT_TRUE(RenderGraph(*TwoLayers(), path, "dot", {.show_constants = false}).ok());
  EXPECT_THAT(ReadFile(path), HasSubstr("pos=\""));  // positions from the layout
}

TEST(DotTest, RenderErrorsNameThePath) {
  const std::unique_ptr<Graph> graph = TwoLayers();
  absl::Status no_dir = RenderGraph(*graph, "/nonexistent/dir/graph.svg", "svg");
  EXPECT_FALSE(no_dir.ok());
  EXPECT_THAT(std::string(no_dir.message()), HasSubstr("cannot write /nonexistent/dir/graph.svg"));

  // Only the core renderers are linked in: svg, dot, json, ps, ... but no bitmaps.
  const std::string path = TempPath("dot_test_render.png");
  absl::Status png = RenderGraph(*graph, path, "png");
  EXPECT_EQ(png.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(png.message()), HasSubstr(absl::StrCat("cannot render ", path, " as 'png'")));
  EXPECT_THAT(std::string(png.message()), HasSubstr("(GraphViz: "));  // and what GraphViz said
  EXPECT_FALSE(std::ifstream(path).good());
}

}  // namespace
}  // namespace dsrt::ir
