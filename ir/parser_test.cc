// Reading the text form back: the fixtures here are how pass tests write their
// before/after graphs.

#include "ir/parser.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ir/printer.h"
#include "ir/verifier.h"

namespace dsrt::ir {
namespace {

using ::testing::HasSubstr;

// A two-layer toy decoder: attention in layers.0, a routed expert in layers.1,
// then the LM head. Written in canonical form, so printing it gives it back.
constexpr char kTinyModel[] = R"(graph main {
  %token_ids = Parameter() {name="token_ids"} : i32[tokens]
  %positions = Parameter() {name="positions"} : i32[tokens]
  %embed.w = Constant() {weight="model.embed_tokens.weight"} : bf16[512,64]
  %h = Embedding(%embed.w, %token_ids) {dtype="f32"} : f32[tokens,64]
  %ln0.w = Constant() {weight="model.layers.0.input_layernorm.weight"} @layers.0 : bf16[64]
  %layers.0.x = RMSNorm(%h, %ln0.w) {eps=0.0009765625} @layers.0 : f32[tokens,64]
  %q.w = Constant() {weight="model.layers.0.self_attn.q_proj.weight"} @layers.0 : bf16[64,64]
  %k.w = Constant() {weight="model.layers.0.self_attn.k_proj.weight"} @layers.0 : bf16[64,64]
  %v.w = Constant() {weight="model.layers.0.self_attn.v_proj.weight"} @layers.0 : bf16[64,64]
  %layers.0.q = Linear(%layers.0.x, %q.w) @layers.0 : f32[tokens,64]
  %layers.0.k = Linear(%layers.0.x, %k.w) @layers.0 : f32[tokens,64]
  %layers.0.v = Linear(%layers.0.x, %v.w) @layers.0 : f32[tokens,64]
  %layers.0.q3 = Reshape(%layers.0.q) {shape=[0,4,16]} @layers.0 : f32[tokens,4,16]
  %layers.0.k3 = Reshape(%layers.0.k) {shape=[0,4,-1]} @layers.0 : f32[tokens,4,16]
  %layers.0.v3 = Reshape(%layers.0.v) {shape=[0,4,16]} @layers.0 : f32[tokens,4,16]
  %layers.0.q_pe = Rope(%layers.0.q3, %positions) {inv_freq=[1.0,0.5,0.25,0.125,0.0625,0.03125,0.015625,0.0078125], scale=1.0} @layers.0 : f32[tokens,4,16]
  %layers.0.k_pe = Rope(%layers.0.k3, %positions) {inv_freq=[1.0,0.5,0.25,0.125,0.0625,0.03125,0.015625,0.0078125], scale=1.0} @layers.0 : f32[tokens,4,16]
  %layers.0.attn = Attention(%layers.0.q_pe, %layers.0.k_pe, %layers.0.v3, %positions) {cache_slot=0, scale=0.25} @layers.0 : f32[tokens,4,16]
  %layers.0.attn2 = Reshape(%layers.0.attn) {shape=[0,64]} @layers.0 : f32[tokens,64]
  %o.w = Constant() {weight="model.layers.0.self_attn.o_proj.weight"} @layers.0 : bf16[64,64]
  %layers.0.o = Linear(%layers.0.attn2, %o.w) @layers.0 : f32[tokens,64]
  %layers.0.h = Add(%h, %layers.0.o) @layers.0 : f32[tokens,64]
  %ln1.w = Constant() {weight="model.layers.1.post_attention_layernorm.weight"} @layers.1 : bf16[64]
  %layers.1.x = RMSNorm(%layers.0.h, %ln1.w) {eps=0.0009765625} @layers.1 : f32[tokens,64]
  %gate.w = Constant() {weight="model.layers.1.mlp.gate.weight"} @layers.1 : f32[4,64]
  %layers.1.topk_ids, %layers.1.topk_w = Router(%layers.1.x, %gate.w) {method="greedy", n_group=1, normalize=1, scaling=1.0, scoring="softmax", top_k=2, topk_group=1} @layers.1 : i32[tokens,2], f32[tokens,2]
  %e0.gate.w = Constant() {weight="model.layers.1.mlp.experts.0.gate_proj.weight"} @layers.1 : bf16[32,64]
  %e0.up.w = Constant() {weight="model.layers.1.mlp.experts.0.up_proj.weight"} @layers.1 : bf16[32,64]
  %e0.down.w = Constant() {weight="model.layers.1.mlp.experts.0.down_proj.weight"} @layers.1 : bf16[64,32]
  %layers.1.e0.g = Linear(%layers.1.x, %e0.gate.w) @layers.1 : f32[tokens,32]
  %layers.1.e0.u = Linear(%layers.1.x, %e0.up.w) @layers.1 : f32[tokens,32]
  %layers.1.e0.act = Silu(%layers.1.e0.g) @layers.1 : f32[tokens,32]
  %layers.1.e0.gu = Mul(%layers.1.e0.act, %layers.1.e0.u) @layers.1 : f32[tokens,32]
  %layers.1.e0.y = Linear(%layers.1.e0.gu, %e0.down.w) @layers.1 : f32[tokens,64]
  %layers.1.e0.w = ExpertWeight(%layers.1.topk_ids, %layers.1.topk_w) {expert=0} @layers.1 : f32[tokens,1]
  %layers.1.e0.out = Mul(%layers.1.e0.y, %layers.1.e0.w) @layers.1 : f32[tokens,64]
  %layers.1.h = Add(%layers.0.h, %layers.1.e0.out) @layers.1 : f32[tokens,64]
  %norm.w = Constant() {weight="model.norm.weight"} : bf16[64]
  %final = RMSNorm(%layers.1.h, %norm.w) {eps=0.0009765625} : f32[tokens,64]
  %lm_head.w = Constant() {weight="lm_head.weight"} : bf16[512,64]
  %logits = Linear(%final, %lm_head.w) : f32[tokens,512]
  %low = Slice(%logits) {axis=1, end=256, start=0} : f32[tokens,256]
  %high = Slice(%logits) {axis=1, end=512, start=256} : f32[tokens,256]
  %swapped = Concat(%high, %low) {axis=1} : f32[tokens,512]
  %swapped.bf16 = Cast(%swapped) {dtype="bf16"} : bf16[tokens,512]
  return %logits, %swapped.bf16
}
)";

std::unique_ptr<Graph> MustParse(absl::string_view text, const ParseOptions& options = {}) {
  absl::StatusOr<std::unique_ptr<Graph>> graph = ParseGraph(text, options);
  EXPECT_TRUE(graph.ok()) << graph.status();
  return graph.ok() ? *std::move(graph) : std::make_unique<Graph>();
}

// The message ParseGraph rejects `text` with.
std::string ParseError(absl::string_view text, const ParseOptions& options = {}) {
  absl::StatusOr<std::unique_ptr<Graph>> graph = ParseGraph(text, options);
  if (graph.ok()) return "(parsed)";
  EXPECT_EQ(graph.status().code(), absl::StatusCode::kInvalidArgument) << graph.status();
  return std::string(graph.status().message());
}

TEST(ParserTest, ReadsNodesWithTheirNamesAttrsScopesAndTypes) {
  std::unique_ptr<Graph> graph = MustParse(kTinyModel);
  EXPECT_EQ(graph->name(), "main");
  EXPECT_EQ(graph->num_nodes(), 45);
  ASSERT_EQ(graph->Parameters().size(), 2u);
  EXPECT_NE(graph->FindParameter("positions"), nullptr);

  const Value* ids = graph->FindValue("layers.1.topk_ids");
  ASSERT_NE(ids, nullptr);
  const Node* router = ids->producer();
  EXPECT_EQ(router->op(), "Router");
  EXPECT_EQ(router->scope(), "layers.1");
  EXPECT_EQ(router->num_outputs(), 2);
  EXPECT_EQ(router->output(1)->name(), "layers.1.topk_w");
  EXPECT_EQ(router->output(1)->type().ToString(), "f32[tokens,2]");
  EXPECT_EQ(router->input(1)->name(), "gate.w");
  EXPECT_EQ(router->attrs().StringOr("method", ""), "greedy");
  EXPECT_EQ(router->attrs().IntOr("top_k", 0), 2);
  EXPECT_EQ(router->attrs().DoubleOr("scaling", 0), 1.0);

  const Node* rope = graph->FindValue("layers.0.q_pe")->producer();
  EXPECT_EQ(rope->attrs().GetDoubles("inv_freq")->size(), 8u);
  EXPECT_EQ(graph->FindValue("layers.0.k3")->producer()->attrs().GetInts("shape").value(),
            (std::vector<int64_t>{0, 4, -1}));

  ASSERT_EQ(graph->outputs().size(), 2u);
  EXPECT_EQ(graph->outputs()[1]->name(), "swapped.bf16");
  EXPECT_EQ(graph->outputs()[1]->type(), MakeType(DType::kBF16, {Dim::Symbolic(kTokensDim), Dim::Static(512)}));
  EXPECT_TRUE(VerifyGraph(*graph).ok());
}

TEST(ParserTest, CanonicalTextPrintsBackUnchanged) { EXPECT_EQ(PrintGraph(*MustParse(kTinyModel)), kTinyModel); }

TEST(ParserTest, LayoutAndCommentsAreFree) {
  std::unique_ptr<Graph> graph = MustParse(R"(
    // RUN: dsrt-opt %s --passes=dce | FileCheck %s
    graph   main{%x=Parameter(){name="x"}:f32[tokens,8]   // a step input
      %y = Silu( %x ) @blk : f32[ tokens , 8 ]
      %z = Mul(%x,%y) {} : f32[tokens,8]
    return %z}  // CHECK: Mul
  )");
  EXPECT_EQ(PrintGraph(*graph), R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,8]
  %y = Silu(%x) @blk : f32[tokens,8]
  %z = Mul(%x, %y) : f32[tokens,8]
  return %z
}
)");
}

TEST(ParserTest, AttributeValuesKeepTheirKinds) {
  std::unique_ptr<Graph> graph = MustParse(R"(graph g {
  %c = Custom() {a=-3, b=1.5, c=2e-3, d="quote \" backslash \\", e=[1,2], f=[1,0.5], g=[], h=[.], i=-inf, j=nan} : f32[]
  return %c
})",
                                           {.verify = false});
  const AttrMap& attrs = graph->FindValue("c")->producer()->attrs();
  EXPECT_EQ(attrs.GetInt("a").value(), -3);
  EXPECT_EQ(attrs.GetDouble("b").value(), 1.5);
  EXPECT_EQ(attrs.GetDouble("c").value(), 2e-3);
  EXPECT_EQ(attrs.GetString("d").value(), "quote \" backslash \\");
  EXPECT_EQ(attrs.GetInts("e").value(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(attrs.GetDoubles("f").value(), (std::vector<double>{1.0, 0.5}));  // one double makes a double list
  EXPECT_EQ(attrs.GetInts("g").value(), std::vector<int64_t>{});
  EXPECT_EQ(attrs.GetDoubles("h").value(), std::vector<double>{});
  EXPECT_EQ(attrs.GetDouble("i").value(), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(attrs.GetDouble("j").value()));
}

TEST(ParserTest, EveryGraphRoundTrips) {
  // Odd names, odd strings, a node without results and a graph that does not verify.
  constexpr char kOdd[] = R"(graph "odd graph" {
  %"a b" = Parameter() {name="line one
line two"} @"scope with space" : i32[]
  %c = Thing(%"a b") {"key with space"=[.], x=1e+300, y=-0.0} : f32[n-1,n.2,3]
  Sink(%c, %c)
  return %c, %"a b"
})";
  ParseOptions unverified{.verify = false};
  std::unique_ptr<Graph> graph = MustParse(kOdd, unverified);
  EXPECT_EQ(graph->name(), "odd graph");
  EXPECT_EQ(graph->num_nodes(), 3);
  EXPECT_EQ(graph->nodes()[2]->num_outputs(), 0);
  const std::string printed = PrintGraph(*graph);
  EXPECT_EQ(PrintGraph(*MustParse(printed, unverified)), printed);
}

TEST(ParserTest, GraphAttributesComeBeforeTheBody) {
  constexpr char kPlanned[] = R"(graph main {arena_bytes_per_token=128, "odd key"=[1,2]} {
  %x = Parameter() {name="x"} : f32[tokens,8]
  return %x
})";
  std::unique_ptr<Graph> graph = MustParse(kPlanned);
  EXPECT_EQ(graph->attrs().IntOr("arena_bytes_per_token", 0), 128);
  EXPECT_EQ(graph->num_nodes(), 1);
  const std::string printed = PrintGraph(*graph);
  EXPECT_EQ(printed.substr(0, printed.find('\n')), R"(graph main {arena_bytes_per_token=128, "odd key"=[1,2]} {)");
  EXPECT_EQ(PrintGraph(*MustParse(printed)), printed);
  // Without attributes the header is as before, and an empty body is still a body.
  EXPECT_EQ(PrintGraph(*MustParse("graph g {\n}", {.verify = false})), "graph g {\n}\n");
}

TEST(ParserTest, VerifiesByDefault) {
  constexpr char kWrongType[] = R"(graph main {
  %x = Parameter() {name="x"} : f32[tokens,8]
  %y = Silu(%x) : f32[tokens,9]
  return %y
})";
  EXPECT_EQ(ParseError(kWrongType),
            "line 3: graph 'main', node %y = Silu: output 0 is typed f32[tokens,9] but its op infers f32[tokens,8]");
  // Tests of the verifier itself build such graphs on purpose.
  EXPECT_EQ(MustParse(kWrongType, {.verify = false})->num_nodes(), 2);
}

TEST(ParserTest, ErrorsSayWhereAndWhat) {
  const std::string header = "graph main {\n  %x = Parameter() {name=\"x\"} : f32[tokens,8]\n";
  auto with_line = [&](absl::string_view line) { return absl::StrCat(header, line, "\n  return %x\n}\n"); };

  EXPECT_EQ(ParseError(""), "line 1:1: expected 'graph', got end of input");
  EXPECT_EQ(ParseError("graph main {"), "line 1:13: expected a node, 'return' or '}', got end of input");
  EXPECT_EQ(ParseError(with_line("  %y = Silu(%x) {a=1} {b=2} : f32[tokens,8]")),
            "line 3:23: expected ':' after attributes, got '{'");
  EXPECT_EQ(ParseError(with_line("  %y = Silu(%x) @blk f32[tokens,8]")),
            "line 3:22: expected ':' after the scope, got 'f32'");
  EXPECT_EQ(ParseError(with_line("  %y = Silu(%nope) : f32[tokens,8]")), "line 3:13: undefined value %nope");
  EXPECT_EQ(ParseError(with_line("  %x = Silu(%x) : f32[tokens,8]")), "line 3:3: %x is already defined");
  EXPECT_EQ(ParseError(with_line("  %y = Silo(%x) : f32[tokens,8]")), "line 3:8: unknown op 'Silo'");
  EXPECT_EQ(ParseError(with_line("  %y = Silu(%x) : f33[tokens,8]")), "line 3:19: unknown dtype 'f33'");
  EXPECT_EQ(ParseError(with_line("  %y = Silu(%x) : f32[tokens,8")),
            "line 4:3: expected ']' after the dims, got 'return'");
  EXPECT_EQ(ParseError(with_line("  %y, %z = Silu(%x) : f32[tokens,8]")),
            "line 3:12: Silu has 2 result names but 1 types");
  EXPECT_EQ(ParseError(with_line("  %y = Cast(%x) {dtype=\"bf16} : bf16[tokens,8]")), "line 3:24: unterminated string");
  EXPECT_EQ(ParseError(with_line("  %y = Cast(%x) {dtype=\"\\n\"} : bf16[tokens,8]")),
            "line 3:25: unknown escape '\\n' in string");
  EXPECT_EQ(ParseError(with_line("  %y = Slice(%x) {axis=1, start=0, end=99999999999999999999} : f32[tokens,8]")),
            "line 3:40: number '99999999999999999999' is out of range");
  EXPECT_EQ(ParseError(with_line("  %y = Slice(%x) {axis=1, start=0, end=4x} : f32[tokens,8]")),
            "line 3:40: malformed number '4x'");
  EXPECT_EQ(ParseError(with_line("  %y = Slice(%x) {axis=one} : f32[tokens,8]")), "line 3:24: malformed number 'one'");
  EXPECT_EQ(ParseError(with_line("  %y = Silu(%x) $ : f32[tokens,8]")), "line 3:17: unexpected character '$'");
  EXPECT_EQ(ParseError(with_line("  % = Silu(%x) : f32[tokens,8]")), "line 3:3: expected a name after '%'");
  EXPECT_EQ(ParseError(absl::StrCat(with_line(""), "trailing")),
            "line 6:1: expected end of input after the graph, got 'trailing'");
}

// Random damage to a valid text: byte flips, syntax characters, deletions,
// duplications and truncations. Whatever comes out must parse or fail cleanly,
// and whatever parses must print back to a text that parses to the same print.
TEST(ParserFuzzTest, MutatedTextNeverCrashesAndParsedTextRoundTrips) {
  const std::string seed_text = kTinyModel;
  std::mt19937 rng(20240607);
  auto uniform = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  constexpr absl::string_view kSyntax = "%@\"{}[](),=:.-+e0123456789 \n\\/abcf[]";

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  int parsed = 0, iterations = 0;
  for (; iterations < 200000 && std::chrono::steady_clock::now() < deadline; ++iterations) {
    std::string text = seed_text;
    const int mutations = 1 + static_cast<int>(uniform(4));
    for (int m = 0; m < mutations && !text.empty(); ++m) {
      const size_t at = uniform(text.size());
      // clang-format off
      switch (uniform(6)) {
        case 0: text[at] = static_cast<char>(uniform(256)); break;
        case 1: text[at] = kSyntax[uniform(kSyntax.size())]; break;
        case 2: text.erase(at, 1 + uniform(16)); break;
        case 3: text.insert(at, 1, kSyntax[uniform(kSyntax.size())]); break;
        case 4: text.insert(at, text.substr(uniform(text.size()), 1 + uniform(40))); break;
        case 5: text.resize(at); break;
      }
      // clang-format on
    }
    for (bool verify : {true, false}) {
      absl::StatusOr<std::unique_ptr<Graph>> graph = ParseGraph(text, {.verify = verify});
      if (!graph.ok()) {
        ASSERT_THAT(std::string(graph.status().message()), HasSubstr("line ")) << text;
        continue;
      }
      ++parsed;
      const std::string printed = PrintGraph(**graph);
      absl::StatusOr<std::unique_ptr<Graph>> again = ParseGraph(printed, {.verify = verify});
      ASSERT_TRUE(again.ok()) << again.status() << "\n" << printed;
      ASSERT_EQ(PrintGraph(**again), printed);
    }
  }
  std::printf("%d mutated texts, %d parsed\n", iterations, parsed);
  EXPECT_GT(parsed, 0);
}

}  // namespace
}  // namespace dsrt::ir
