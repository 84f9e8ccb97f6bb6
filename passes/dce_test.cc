#include "passes/dce.h"

#include "gtest/gtest.h"
#include "ir/parser.h"
#include "ir/printer.h"

namespace dsrt::passes {
namespace {

std::unique_ptr<ir::Graph> Parse(absl::string_view text) {
  auto graph = ir::ParseGraph(text);
  EXPECT_TRUE(graph.ok()) << graph.status();
  return std::move(graph).value();
}

TEST(Dce, RemovesNodesNothingReads) {
  auto graph = Parse(R"(graph main {
  %x = Parameter() {name="x"} : i32[tokens]
  %table = Constant() {weight="table"} : f32[8,4]
  %h = Embedding(%table, %x) {dtype="f32"} : f32[tokens,4]
  %unused = Silu(%h) : f32[tokens,4]
  %also_unused = Mul(%unused, %h) : f32[tokens,4]
  %out = Silu(%h) : f32[tokens,4]
  return %out
})");
  Dce dce;
  auto changed = dce.Run(*graph);
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(ir::PrintGraph(*graph), ir::PrintGraph(*Parse(R"(graph main {
  %x = Parameter() {name="x"} : i32[tokens]
  %table = Constant() {weight="table"} : f32[8,4]
  %h = Embedding(%table, %x) {dtype="f32"} : f32[tokens,4]
  %out = Silu(%h) : f32[tokens,4]
  return %out
})")));
}

TEST(Dce, KeepsParametersAndReportsNoChangeWhenEverythingIsLive) {
  auto graph = Parse(R"(graph main {
  %x = Parameter() {name="x"} : i32[tokens]
  %positions = Parameter() {name="positions"} : i32[tokens]
  %table = Constant() {weight="table"} : f32[8,4]
  %h = Embedding(%table, %x) {dtype="f32"} : f32[tokens,4]
  return %h
})");
  Dce dce;
  auto changed = dce.Run(*graph);
  ASSERT_TRUE(changed.ok());
  EXPECT_FALSE(*changed);
  EXPECT_NE(graph->FindParameter("positions"), nullptr);
}

}  // namespace
}  // namespace dsrt::passes
