// The text form as PrintGraph writes it. These graphs are built with GraphBuilder;
// parser_test.cc reads the same text back.

#include "ir/printer.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "ir/builder.h"
#include "ir/verifier.h"

namespace dsrt::ir {
namespace {

constexpr int64_t kVocab = 512;
constexpr int64_t kHidden = 64;

TEST(PrinterTest, PrintsOneNodeALine) {
  Graph graph;
  GraphBuilder b(graph);
  Value* ids = b.Parameter("token_ids", MakeType(DType::kI32, {Dim::Symbolic(kTokensDim)}));
  Value* table = b.Constant("model.embed_tokens.weight", StaticType(DType::kBF16, {kVocab, kHidden}));
  Value* h = b.Op("Embedding", {table, ids}, {{"dtype", "f32"}}, "h");
  b.SetScope("layers.0");
  Value* norm_w = b.Constant("model.layers.0.input_layernorm.weight", StaticType(DType::kBF16, {kHidden}));
  Value* x = b.Op("RMSNorm", {h, norm_w}, {{"eps", 1e-6}}, "x");
  Value* q_w = b.Constant("model.layers.0.self_attn.q_proj.weight", StaticType(DType::kBF16, {96, kHidden}));
  Value* q = b.Linear(x, q_w, "q");
  b.SetScope("");
  b.Output(q);
  ASSERT_TRUE(b.status().ok()) << b.status();
  ASSERT_TRUE(VerifyGraph(graph).ok());

  EXPECT_EQ(PrintGraph(graph),
            R"(graph main {
  %token_ids = Parameter() {name="token_ids"} : i32[tokens]
  %model.embed_tokens.weight = Constant() {weight="model.embed_tokens.weight"} : bf16[512,64]
  %h = Embedding(%model.embed_tokens.weight, %token_ids) {dtype="f32"} : f32[tokens,64]
  %model.layers.0.input_layernorm.weight = Constant() {weight="model.layers.0.input_layernorm.weight"} @layers.0 : bf16[64]
  %layers.0.x = RMSNorm(%h, %model.layers.0.input_layernorm.weight) {eps=9.9999999999999995e-07} @layers.0 : f32[tokens,64]
  %model.layers.0.self_attn.q_proj.weight = Constant() {weight="model.layers.0.self_attn.q_proj.weight"} @layers.0 : bf16[96,64]
  %layers.0.q = Linear(%layers.0.x, %model.layers.0.self_attn.q_proj.weight) @layers.0 : f32[tokens,96]
  return %layers.0.q
}
)");
}

TEST(PrinterTest, MultiOutputNodesListTheirResultsAndTypes) {
  Graph graph;
  GraphBuilder b(graph);
  Value* x = b.Parameter("x", MakeType(DType::kF32, {Dim::Symbolic(kTokensDim), Dim::Static(kHidden)}));
  Value* gate = b.Constant("gate.weight", StaticType(DType::kF32, {8, kHidden}));
  b.SetScope("layers.1");
  std::vector<Value*> routed = b.MultiOp("Router", {x, gate},
                                         {{"scoring", "softmax"},
                                          {"method", "greedy"},
                                          {"top_k", int64_t{3}},
                                          {"n_group", int64_t{1}},
                                          {"topk_group", int64_t{1}},
                                          {"normalize", int64_t{0}},
                                          {"scaling", 1.0}},
                                         {"topk_ids", "topk_w"});
  ASSERT_TRUE(b.status().ok()) << b.status();
  b.Output(routed[0]);
  b.Output(routed[1]);

  EXPECT_EQ(PrintNode(*routed[0]->producer()),
            "%layers.1.topk_ids, %layers.1.topk_w = Router(%x, %gate.weight) {method=\"greedy\", n_group=1, "
            "normalize=0, scaling=1.0, scoring=\"softmax\", top_k=3, topk_group=1} @layers.1 : "
            "i32[tokens,3], f32[tokens,3]");
  EXPECT_NE(PrintGraph(graph).find("  return %layers.1.topk_ids, %layers.1.topk_w\n"), std::string::npos);
}

TEST(PrinterTest, AttributesPrintAsAttrValueToStringWritesThem) {
  Graph graph;
  AttrMap attrs{{"count", int64_t{-3}},
                {"eps", 1e-5},
                {"one", 1.0},
                {"huge", std::numeric_limits<double>::infinity()},
                {"label", std::string("say \"hi\" \\ bye")},
                {"shape", std::vector<int64_t>{0, -1, 4}},
                {"empty_ints", std::vector<int64_t>{}},
                {"freqs", std::vector<double>{1.0, 0.5}},
                {"empty_doubles", std::vector<double>{}}};
  Node* node = graph.AddNode("Custom", {}, attrs, {StaticType(DType::kF32, {2})}, {"c"});
  EXPECT_EQ(PrintNode(*node),
            "%c = Custom() {count=-3, empty_doubles=[.], empty_ints=[], eps=1.0000000000000001e-05, "
            "freqs=[1.0,0.5], huge=inf, label=\"say \\\"hi\\\" \\\\ bye\", one=1.0, shape=[0,-1,4]} : f32[2]");
}

TEST(PrinterTest, OddNamesAreQuoted) {
  Graph graph("my graph");
  Node* node = graph.AddNode("Parameter", {}, {{"name", "a b"}}, {MakeType(DType::kI32, {})}, {"a b"}, "scope/1");
  graph.AddOutput(node->output());
  EXPECT_EQ(PrintName("layers.0.q_proj-1"), "layers.0.q_proj-1");
  EXPECT_EQ(PrintName("a b"), "\"a b\"");
  EXPECT_EQ(PrintGraph(graph), R"(graph "my graph" {
  %"a b" = Parameter() {name="a b"} @"scope/1" : i32[]
  return %"a b"
}
)");
}

TEST(PrinterTest, GraphWithoutOutputsHasNoReturn) {
  Graph graph;
  graph.AddNode("Parameter", {}, {{"name", "x"}}, {StaticType(DType::kF32, {1})}, {"x"});
  EXPECT_EQ(PrintGraph(graph), "graph main {\n  %x = Parameter() {name=\"x\"} : f32[1]\n}\n");
}

}  // namespace
}  // namespace dsrt::ir
