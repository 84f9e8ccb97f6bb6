// The IR core: Graph editing, GraphBuilder, the op registry's shape inference
// and the verifier. Invalid graphs are written as text and parsed unverified.

#include "ir/graph.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ir/builder.h"
#include "ir/op_registry.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"

namespace dsrt::ir {
namespace {

using ::testing::HasSubstr;

const Dim kTokens = Dim::Symbolic(kTokensDim);

TensorType Hidden(int64_t size) { return MakeType(DType::kF32, {kTokens, Dim::Static(size)}); }

std::string VerifyError(absl::string_view text) {
  absl::StatusOr<std::unique_ptr<Graph>> graph = ParseGraph(text, {.verify = false});
  EXPECT_TRUE(graph.ok()) << graph.status();
  if (!graph.ok()) return "";
  absl::Status status = VerifyGraph(**graph);
  return status.ok() ? "(valid)" : std::string(status.message());
}

TEST(GraphTest, ValueNamesAreUnique) {
  Graph graph;
  Node* a = graph.AddNode("Parameter", {}, {{"name", "x"}}, {Hidden(8)}, {"x"});
  Node* b = graph.AddNode("Parameter", {}, {{"name", "x"}}, {Hidden(8)}, {"x"});
  Node* c = graph.AddNode("Silu", {a->output()}, {}, {Hidden(8)});  // no name: one is made up
  EXPECT_EQ(a->output()->name(), "x");
  EXPECT_NE(b->output()->name(), "x");
  EXPECT_FALSE(c->output()->name().empty());
  EXPECT_EQ(graph.FindValue(b->output()->name()), b->output());
  EXPECT_EQ(graph.FindValue("nothing"), nullptr);
}

TEST(GraphTest, ReplaceAllUsesAndRemoveDeadNodes) {
  std::unique_ptr<Graph> graph = *ParseGraph(R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,8]
  %a = Silu(%x) : f32[tokens,8]
  %b = Silu(%x) : f32[tokens,8]
  %y = Add(%a, %b) : f32[tokens,8]
  return %y
})");
  Value* a = graph->FindValue("a");
  Value* b = graph->FindValue("b");
  EXPECT_EQ(graph->Users(graph->FindValue("x")).size(), 2u);

  graph->ReplaceAllUsesWith(b, a);  // what CSE does
  EXPECT_TRUE(graph->Users(b).empty());
  graph->RemoveNodes({b->producer()});
  EXPECT_EQ(graph->FindValue("b"), nullptr);
  EXPECT_TRUE(VerifyGraph(*graph).ok());
  EXPECT_EQ(PrintGraph(*graph), R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,8]
  %a = Silu(%x) : f32[tokens,8]
  %y = Add(%a, %a) : f32[tokens,8]
  return %y
}
)");
}

TEST(GraphTest, TopologicalSortPlacesNodesAfterTheirInputs) {
  Graph graph;
  Node* x = graph.AddNode("Parameter", {}, {{"name", "x"}}, {Hidden(8)}, {"x"});
  Node* late = graph.AddNode("Silu", {x->output()}, {}, {Hidden(8)}, {"late"});
  // A pass inserts a node before `late` by appending it and rewiring.
  Node* early = graph.AddNode("Silu", {x->output()}, {}, {Hidden(8)}, {"early"});
  late->set_input(0, early->output());
  graph.AddOutput(late->output());
  EXPECT_FALSE(VerifyGraph(graph).ok());

  ASSERT_TRUE(graph.TopologicalSort().ok());
  EXPECT_EQ(graph.nodes()[1].get(), early);
  EXPECT_TRUE(VerifyGraph(graph).ok());

  early->set_input(0, late->output());  // early reads late, late reads early
  EXPECT_THAT(std::string(graph.TopologicalSort().message()), HasSubstr("cycle"));
}

TEST(GraphBuilderTest, InfersTypesAndPrefixesNamesWithTheScope) {
  Graph graph;
  GraphBuilder b(graph);
  Value* x = b.Parameter("x", Hidden(64));
  b.SetScope("layers.2");
  Value* w = b.Constant("model.layers.2.mlp.up_proj.weight", StaticType(DType::kBF16, {96, 64}));
  Value* up = b.Linear(x, w, "up");
  Value* heads = b.Reshape(up, {0, 6, -1}, "heads");
  Value* first = b.Slice(heads, 1, 0, 2, "first");
  ASSERT_TRUE(b.status().ok()) << b.status();

  EXPECT_EQ(up->name(), "layers.2.up");
  EXPECT_EQ(up->producer()->scope(), "layers.2");
  EXPECT_EQ(w->name(), "model.layers.2.mlp.up_proj.weight");  // weights keep their table name
  EXPECT_EQ(up->type().ToString(), "f32[tokens,96]");
  EXPECT_EQ(heads->type().ToString(), "f32[tokens,6,16]");
  EXPECT_EQ(first->type().ToString(), "f32[tokens,2,16]");
}

TEST(GraphBuilderTest, ErrorsAreStickyAndNameTheScope) {
  Graph graph;
  GraphBuilder b(graph);
  Value* x = b.Parameter("x", Hidden(64));
  b.SetScope("layers.0");
  Value* w = b.Constant("w", StaticType(DType::kBF16, {96, 32}));  // wrong input size
  EXPECT_EQ(b.Linear(x, w), nullptr);
  EXPECT_EQ(b.Op("Silu", {x}), nullptr);  // every later call fails too
  b.Output(x);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b.status().message(), "layers.0: Linear: x f32[tokens,64] does not match weight bf16[96,32]");
  EXPECT_TRUE(graph.outputs().empty());
}

TEST(OpRegistryTest, EveryOpHasASchema) {
  const OpRegistry& registry = OpRegistry::Global();
  for (const char* op : {"Parameter", "Constant", "Embedding", "RMSNorm", "Linear", "Rope", "Attention", "Router",
                         "ExpertWeight", "Add", "Mul", "Silu", "Cast", "Reshape", "Slice", "Concat"}) {
    const OpSchema* schema = registry.Find(op);
    ASSERT_NE(schema, nullptr) << op;
    EXPECT_EQ(schema->name, op);
    EXPECT_FALSE(schema->summary.empty()) << op;
    EXPECT_TRUE(schema->declares_outputs || schema->infer) << op;
  }
  EXPECT_EQ(registry.Find("Nope"), nullptr);
}

TEST(OpRegistryTest, ShapeInference) {
  Graph graph;
  GraphBuilder b(graph);
  Value* x = b.Parameter("x", Hidden(8));
  Value* col = b.Parameter("col", MakeType(DType::kF32, {kTokens, Dim::Static(1)}));
  Value* half = b.Parameter("half", MakeType(DType::kBF16, {kTokens, Dim::Static(8)}));
  EXPECT_EQ(b.Mul(x, col)->type().ToString(), "f32[tokens,8]");   // broadcasting
  EXPECT_EQ(b.Add(half, x)->type().ToString(), "f32[tokens,8]");  // f32 wins
  EXPECT_EQ(b.Op("Cast", {x}, {{"dtype", "bf16"}})->type().ToString(), "bf16[tokens,8]");
  EXPECT_EQ(b.Op("Concat", {x, x, x}, {{"axis", int64_t{-1}}})->type().ToString(), "f32[tokens,24]");
  EXPECT_EQ(b.Reshape(x, {0, 2, 2, -1})->type().ToString(), "f32[tokens,2,2,2]");
  ASSERT_TRUE(b.status().ok()) << b.status();

  EXPECT_EQ(b.Reshape(x, {-1, 8}), nullptr);  // the symbolic dim must stay in place
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("symbolic dims"));
}

TEST(OpRegistryTest, AttentionOwnsItsCacheRows) {
  std::unique_ptr<Graph> graph = *ParseGraph(R"(graph main {
  %q = Parameter() {name="q"} : f32[tokens,4,24]
  %k = Parameter() {name="k"} : f32[tokens,4,24]
  %v = Parameter() {name="v"} : f32[tokens,4,16]
  %pos = Parameter() {name="positions"} : i32[tokens]
  %o = Attention(%q, %k, %v, %pos) {cache_slot=0, scale=0.2} : f32[tokens,4,16]
  return %o
})");
  EXPECT_EQ(CacheElementsPerToken(*graph).value(), 4 * (24 + 16));
}

TEST(VerifierTest, NamesTheNodeAndWhatIsWrong) {
  EXPECT_EQ(VerifyError(R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,8]
  return %x
})"),
            "(valid)");
  EXPECT_EQ(VerifyError(R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,8]
  %y = Frobnicate(%x) : f32[tokens,8]
  return %y
})"),
            "graph 'main', node %y = Frobnicate: unknown op 'Frobnicate'");
  EXPECT_EQ(VerifyError(R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,8]
  %y = Add(%x) @layers.3 : f32[tokens,8]
  return %y
})"),
            "graph 'main', node %y = Add (layers.3): takes 2..2 inputs, has 1");
  EXPECT_EQ(VerifyError(R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,8]
  %y = Cast(%x) : bf16[tokens,8]
  return %y
})"),
            "graph 'main', node %y = Cast: attribute 'dtype' is missing");
  EXPECT_EQ(VerifyError(R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,8]
  %w = Constant() {weight="w"} : bf16[16,4]
  %y = Linear(%x, %w) : f32[tokens,16]
  return %y
})"),
            "graph 'main', node %y = Linear: Linear: x f32[tokens,8] does not match weight bf16[16,4]");
  EXPECT_EQ(VerifyError(R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,8]
})"),
            "graph 'main' has no outputs");
}

}  // namespace
}  // namespace dsrt::ir
