#include "serialization/graph_proto.h"

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "ir/builder.h"
#include "serialization/test_engines.h"

namespace dsrt::serialization {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

bool SameProto(const GraphProto& a, const GraphProto& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

TEST(GraphProtoTest, RoundTripKeepsEveryNodeValueAndAttribute) {
  auto graph = test_engines::MakeTestGraph(32);
  GraphProto proto = GraphToProto(*graph);
  auto back = GraphFromProto(proto);
  ASSERT_TRUE(back.ok()) << back.status();

  const ir::Graph& g = **back;
  EXPECT_EQ(g.name(), graph->name());
  ASSERT_EQ(g.num_nodes(), graph->num_nodes());
  for (int i = 0; i < g.num_nodes(); ++i) {
    const ir::Node& a = *graph->nodes()[i];
    const ir::Node& b = *g.nodes()[i];
    EXPECT_EQ(b.op(), a.op());
    EXPECT_EQ(b.scope(), a.scope());
    EXPECT_EQ(b.attrs(), a.attrs()) << a.op();
    ASSERT_EQ(b.num_inputs(), a.num_inputs());
    for (int k = 0; k < a.num_inputs(); ++k) EXPECT_EQ(b.input(k)->name(), a.input(k)->name());
    ASSERT_EQ(b.num_outputs(), a.num_outputs());
    for (int k = 0; k < a.num_outputs(); ++k) {
      EXPECT_EQ(b.output(k)->name(), a.output(k)->name());
      EXPECT_EQ(b.output(k)->type(), a.output(k)->type());
    }
  }
  ASSERT_EQ(g.outputs().size(), 1u);
  EXPECT_EQ(g.outputs()[0]->name(), graph->outputs()[0]->name());
  EXPECT_TRUE(SameProto(GraphToProto(g), proto));
}

TEST(GraphProtoTest, GraphAttributesRoundTrip) {
  auto graph = test_engines::MakeTestGraph(32);
  graph->mutable_attrs().Set("arena_bytes_per_token", int64_t{4096});
  graph->mutable_attrs().Set("note", std::string("planned"));
  auto back = GraphFromProto(GraphToProto(*graph));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->attrs(), graph->attrs());

  GraphProto proto = GraphToProto(*graph);
  (*proto.mutable_attrs())["broken"] = AttrProto();
  EXPECT_THAT(std::string(GraphFromProto(proto).status().message()),
              AllOf(HasSubstr("graph '"), HasSubstr("attribute 'broken'"), HasSubstr("without a value")));
}

TEST(GraphProtoTest, EveryAttributeKindRoundTrips) {
  ir::Graph graph("attrs");
  ir::AttrMap attrs = {{"name", std::string("x")},
                       {"i", int64_t{-7}},
                       {"f", -0.25},
                       {"ints", std::vector<int64_t>{3, -1, 0}},
                       {"no_ints", std::vector<int64_t>{}},
                       {"doubles", std::vector<double>{1e-30, 2.5}},
                       {"no_doubles", std::vector<double>{}}};
  ir::Node* node = graph.AddNode("Parameter", {}, attrs, {ir::StaticType(ir::DType::kI4, {0, 3})}, {"x"});
  graph.AddOutput(node->output());

  auto back = GraphFromProto(GraphToProto(graph));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->nodes()[0]->attrs(), attrs);
  EXPECT_EQ((*back)->nodes()[0]->output()->type(), node->output()->type());
}

class GraphProtoErrorTest : public ::testing::Test {
 protected:
  void SetUp() override { proto_ = GraphToProto(*test_engines::MakeTestGraph(32)); }

  NodeProto& NodeNamed(const std::string& output) {
    for (NodeProto& node : *proto_.mutable_nodes()) {
      if (node.outputs_size() > 0 && node.outputs(0).name() == output) return node;
    }
    ADD_FAILURE() << "no node " << output;
    return *proto_.mutable_nodes(0);
  }

  std::string Error() {
    auto graph = GraphFromProto(proto_);
    EXPECT_FALSE(graph.ok());
    return graph.ok() ? "" : std::string(graph.status().message());
  }

  GraphProto proto_;
};

TEST_F(GraphProtoErrorTest, UnknownInputNamesTheNode) {
  NodeNamed("layers.0.y").set_inputs(0, "nowhere");
  EXPECT_THAT(Error(),
              AllOf(HasSubstr("graph 'main'"), HasSubstr("%layers.0.y = Add (layers.0)"), HasSubstr("%nowhere")));
}

TEST_F(GraphProtoErrorTest, InputDefinedLaterIsUnknown) {
  NodeNamed("x").set_inputs(1, "layers.0.y");
  EXPECT_THAT(Error(), AllOf(HasSubstr("%x = Embedding"), HasSubstr("reads %layers.0.y")));
}

TEST_F(GraphProtoErrorTest, DuplicateValueNameNamesTheNode) {
  NodeNamed("layers.0.y").mutable_outputs(0)->set_name("x");
  EXPECT_THAT(Error(), AllOf(HasSubstr("%x = Add"), HasSubstr("redefines %x")));
}

TEST_F(GraphProtoErrorTest, BadDtypeNamesTheNodeAndValue) {
  NodeNamed("layers.0.h").mutable_outputs(0)->set_dtype("f33");
  EXPECT_THAT(Error(), AllOf(HasSubstr("%layers.0.h = RMSNorm"), HasSubstr("output %layers.0.h"), HasSubstr("f33")));
}

TEST_F(GraphProtoErrorTest, DimWithoutSizeOrSymbol) {
  NodeNamed("layers.0.h").mutable_outputs(0)->mutable_dims(1)->clear_kind();
  EXPECT_THAT(Error(), AllOf(HasSubstr("%layers.0.h = RMSNorm"), HasSubstr("neither a size nor a symbol")));
}

TEST_F(GraphProtoErrorTest, NegativeDim) {
  NodeNamed("layers.0.h").mutable_outputs(0)->mutable_dims(1)->set_size(-8);
  EXPECT_THAT(Error(), AllOf(HasSubstr("%layers.0.h = RMSNorm"), HasSubstr("negative dim -8")));
}

TEST_F(GraphProtoErrorTest, AttributeWithoutValue) {
  (*NodeNamed("layers.0.h").mutable_attrs())["eps"].clear_value();
  EXPECT_THAT(Error(), AllOf(HasSubstr("%layers.0.h = RMSNorm"), HasSubstr("attribute 'eps'")));
}

TEST_F(GraphProtoErrorTest, OutputWithoutName) {
  NodeNamed("layers.0.h").mutable_outputs(0)->clear_name();
  EXPECT_THAT(Error(), HasSubstr("without a name"));
}

TEST_F(GraphProtoErrorTest, UnknownGraphOutput) {
  proto_.set_outputs(0, "ghost");
  EXPECT_THAT(Error(), AllOf(HasSubstr("graph 'main'"), HasSubstr("%ghost")));
}

TEST_F(GraphProtoErrorTest, VerifierRunsOnTheResult) {
  NodeNamed("layers.0.h").set_op("NoSuchOp");
  EXPECT_THAT(Error(), AllOf(HasSubstr("%layers.0.h = NoSuchOp"), HasSubstr("unknown op")));
}

TEST_F(GraphProtoErrorTest, WrongOutputTypeIsCaughtByTheVerifier) {
  NodeNamed("layers.0.h").mutable_outputs(0)->set_dtype("bf16");
  EXPECT_THAT(Error(), AllOf(HasSubstr("%layers.0.h = RMSNorm"), HasSubstr("infers")));
}

}  // namespace
}  // namespace dsrt::serialization
