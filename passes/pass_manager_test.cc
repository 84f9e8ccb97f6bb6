#include "passes/pass_manager.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "ir/parser.h"
#include "passes/dce.h"
#include "ir/testutil/scratch_dir.h"

namespace dsrt::passes {
namespace {

constexpr char kGraph[] = R"(graph main {
  %x = Parameter() {name="x"} : i32[tokens]
  %table = Constant() {weight="table"} : f32[8,4]
  %h = Embedding(%table, %x) {dtype="f32"} : f32[tokens,4]
  %dead = Silu(%h) : f32[tokens,4]
  return %h
})";

// A pass that breaks the graph: it retypes a value behind the verifier's back.
class Corrupt : public Pass {
 public:
  std::string name() const override { return "corrupt"; }
  absl::StatusOr<bool> Run(ir::Graph& graph) override {
    graph.FindValue("h")->set_type(ir::StaticType(ir::DType::kF32, {3}));
    return true;
  }
};

TEST(PassManager, RunsPassesInOrderAndDumpsTheGraphAfterEach) {
  auto graph = ir::ParseGraph(kGraph);
  ASSERT_TRUE(graph.ok());
  const std::string dump = dsrt::testutil::ScratchPath("pass_manager_dump");
  std::filesystem::remove_all(dump);
  PassManager manager("test", {.dump_dir = dump});
  manager.AddPass(std::make_unique<Dce>());
  auto records = manager.Run(**graph);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].name, "dce");
  EXPECT_TRUE((*records)[0].changed);
  for (const char* file : {"00.input.txt", "00.input.dot", "01.after_dce.txt", "01.after_dce.dot"}) {
    EXPECT_TRUE(std::filesystem::exists(dump + "/" + file)) << file;
  }
}

TEST(PassManager, SkipsDisabledPasses) {
  auto graph = ir::ParseGraph(kGraph);
  ASSERT_TRUE(graph.ok());
  PassManager manager("test", {.disabled = {"dce"}});
  manager.AddPass(std::make_unique<Dce>());
  auto records = manager.Run(**graph);
  ASSERT_TRUE(records.ok());
  EXPECT_TRUE(records->empty());
  EXPECT_NE((*graph)->FindValue("dead"), nullptr);
}

TEST(PassManager, NamesThePassThatLeftAnInvalidGraph) {
  auto graph = ir::ParseGraph(kGraph);
  ASSERT_TRUE(graph.ok());
  PassManager manager("test");
  manager.AddPass(std::make_unique<Corrupt>());
  auto records = manager.Run(**graph);
  ASSERT_FALSE(records.ok());
  EXPECT_NE(records.status().message().find("pass 'corrupt' left an invalid graph"), std::string::npos)
      << records.status();
}

TEST(PassRegistry, KnowsEveryPassOfTheDefaultPipeline) {
  for (const std::string& name : DefaultPipeline()) EXPECT_TRUE(CreatePass(name).ok()) << name;
  EXPECT_FALSE(CreatePass("no-such-pass").ok());
}

}  // namespace
}  // namespace dsrt::passes
