#include "serialization/test_engines.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "ir/builder.h"
#include "serialization/engine_format.h"
#include "serialization/engine_reader.h"

namespace dsrt::serialization::test_engines {
namespace {

using ir::Dim;
using ir::DType;
using ir::MakeType;
using ir::StaticType;

const Dim kTokens = Dim::Symbolic(ir::kTokensDim);

std::unique_ptr<ir::Graph> Checked(std::unique_ptr<ir::Graph> graph, const ir::GraphBuilder& b) {
  if (b.status().ok()) return graph;
  std::cerr << "test graph does not build: " << b.status() << "\n";
  std::abort();
}

TestWeight Pattern(int rank, std::string name, DType dtype, std::vector<int64_t> shape) {
  TestWeight w{std::move(name), dtype, std::move(shape), {}};
  unsigned seed = 131u * static_cast<unsigned>(rank);
  for (char c : w.name) seed = seed * 17u + static_cast<unsigned char>(c);
  w.bytes.resize(static_cast<size_t>(ir::DTypeBytes(dtype, ir::NumElements(w.shape))));
  for (size_t i = 0; i < w.bytes.size(); ++i) w.bytes[i] = static_cast<uint8_t>(seed + 29u * i + 7u);
  return w;
}

uint64_t Load(const std::string& file, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(file[at + i])) << (8 * i);
  return v;
}

void Store32(std::string& file, size_t at, uint32_t v) {
  for (size_t i = 0; i < 4; ++i) file[at + i] = static_cast<char>(v >> (8 * i));
}

void Exercise(const Engine& engine) {
  engine.LoadGraph().status().IgnoreError();
  engine.LoadMtpGraph().status().IgnoreError();
  engine.VerifyWeights().IgnoreError();
  if (engine.rank() < 0) return;
  for (const WeightEntry& w : engine.proto().ranks(engine.rank()).weights()) {
    auto view = engine.weights().Get(w.name());
    if (view.ok()) Crc32(view->data, static_cast<size_t>(view->bytes));  // touches every byte
  }
}

}  // namespace

std::unique_ptr<ir::Graph> MakeTestGraph(int64_t vocab) {
  auto graph = std::make_unique<ir::Graph>("main");
  ir::GraphBuilder b(*graph);
  ir::Value* ids = b.Parameter("token_ids", MakeType(DType::kI32, {kTokens}));
  ir::Value* pos = b.Parameter("positions", MakeType(DType::kI32, {kTokens}));
  ir::Value* x = b.Op("Embedding", {b.Constant("embed", StaticType(DType::kBF16, {vocab, 8})), ids},
                      {{"dtype", std::string("f32")}}, "x");
  b.SetScope("layers.0");
  ir::Value* h = b.Op("RMSNorm", {x, b.Constant("norm", StaticType(DType::kF32, {8}))}, {{"eps", 1e-6}}, "h");
  auto heads = [&](const std::string& w) {
    return b.Reshape(b.Linear(h, b.Constant(w, StaticType(DType::kBF16, {8, 8}))), {0, 2, 4});
  };
  ir::Value* q = b.Op("Rope", {heads("wq"), pos}, {{"inv_freq", std::vector<double>{1.0, 0.5}}}, "q_rope");
  ir::Value* attn =
      b.Op("Attention", {q, heads("wk"), heads("wv"), pos}, {{"cache_slot", int64_t{0}}, {"scale", 0.5}}, "attn");
  ir::Value* y = b.Add(x, b.Reshape(attn, {0, 8}), "y");
  ir::Value* act = b.Mul(b.Op("Silu", {y}), y, "act");
  ir::Value* half = b.Slice(act, 1, 0, 4, "half");
  ir::Value* c = b.Op("Concat", {half, half}, {{"axis", int64_t{1}}}, "c");
  std::vector<ir::Value*> routed = b.MultiOp("Router", {c, b.Constant("gate", StaticType(DType::kF32, {4, 8}))},
                                             {{"scoring", std::string("softmax")},
                                              {"method", std::string("greedy")},
                                              {"top_k", int64_t{2}},
                                              {"n_group", int64_t{1}},
                                              {"topk_group", int64_t{1}},
                                              {"normalize", int64_t{1}},
                                              {"scaling", 1.0}},
                                             {"topk_ids", "topk_weights"});
  ir::Value* weight =
      routed.empty() ? nullptr : b.Op("ExpertWeight", {routed[0], routed[1]}, {{"expert", int64_t{1}}}, "w1");
  ir::Value* z = b.Mul(c, weight, "z");
  b.SetScope("");
  ir::Value* logits = b.Linear(z, b.Constant("lm_head", StaticType(DType::kBF16, {vocab, 8})), "logits");
  b.Output(b.Op("Cast", {logits}, {{"dtype", std::string("bf16")}}, "logits_bf16"));
  return Checked(std::move(graph), b);
}

std::unique_ptr<ir::Graph> MakeTestMtpGraph(int64_t vocab) {
  auto graph = std::make_unique<ir::Graph>("mtp");
  ir::GraphBuilder b(*graph);
  ir::Value* hidden = b.Parameter("hidden", MakeType(DType::kF32, {kTokens, Dim::Static(8)}));
  ir::Value* h = b.Op("RMSNorm", {hidden, b.Constant("norm", StaticType(DType::kF32, {8}))}, {{"eps", 1e-6}});
  b.Output(b.Linear(h, b.Constant("lm_head", StaticType(DType::kBF16, {vocab, 8})), "mtp_logits"));
  return Checked(std::move(graph), b);
}

std::vector<TestWeight> MakeTestWeights(int rank, int64_t vocab) {
  std::vector<TestWeight> weights = {
      Pattern(rank, "embed", DType::kBF16, {vocab, 8}),
      Pattern(rank, "norm", DType::kF32, {8}),
      Pattern(rank, "wq", DType::kBF16, {8, 8}),
      Pattern(rank, "wk", DType::kBF16, {8, 8}),
      Pattern(rank, "wv", DType::kBF16, {8, 8}),
      Pattern(rank, "gate", DType::kF32, {4, 8}),
      Pattern(rank, "lm_head", DType::kBF16, {vocab, 8}),
      Pattern(rank, "empty", DType::kF32, {0, 8}),  // a zero-byte weight
      Pattern(rank, "odd", DType::kI4, {3, 5}),     // 8 bytes: the next weight must realign
  };
  return weights;
}

std::vector<WeightToWrite> ToWrite(const std::vector<TestWeight>& weights) {
  std::vector<WeightToWrite> out;
  for (const TestWeight& w : weights) {
    const std::vector<uint8_t>* bytes = &w.bytes;
    out.push_back({w.name, w.dtype, w.shape, "", static_cast<int64_t>(w.bytes.size()), [bytes](void* dst) {
                     if (!bytes->empty()) std::memcpy(dst, bytes->data(), bytes->size());
                     return absl::OkStatus();
                   }});
  }
  return out;
}

EngineProto MakeTestMetadata() {
  EngineProto meta;
  meta.set_model_type("deepseek_v3");
  meta.set_config_json(R"({"model_type": "deepseek_v3", "hidden_size": 8})");
  meta.mutable_info()->set_vocab_size(300);
  meta.mutable_info()->set_hidden_size(8);
  meta.mutable_info()->set_num_layers(1);
  meta.mutable_info()->set_activation_dtype("f32");
  meta.mutable_info()->set_kv_cache_bytes_per_token(64);
  meta.mutable_options()->set_weights("bf16");
  meta.mutable_options()->set_tp(2);
  meta.mutable_options()->add_disabled_passes("cse");
  PassRecord* pass = meta.add_pass_log();
  pass->set_name("mla-absorb");
  pass->set_changed(true);
  pass->set_millis(1.5);
  meta.set_tokenizer_json(R"({"model": {"type": "BPE"}})");
  meta.set_tokenizer_config_json(R"({"bos_token": "<s>"})");
  return meta;
}

absl::Status WriteTestEngine(const std::string& path, int world_size, int64_t vocab) {
  auto graph = MakeTestGraph(vocab);
  auto mtp = MakeTestMtpGraph(vocab);
  std::vector<std::vector<TestWeight>> weights;
  for (int r = 0; r < world_size; ++r) weights.push_back(MakeTestWeights(r, vocab));
  std::vector<RankContents> ranks;
  for (int r = 0; r < world_size; ++r)
    ranks.push_back({graph.get(), r == 0 ? mtp.get() : nullptr, ToWrite(weights[r])});
  return WriteEngine(path, MakeTestMetadata(), std::move(ranks));
}

void FixChecksums(std::string& file) {
  if (file.size() < kHeaderBytes || std::memcmp(file.data(), kEngineMagic, sizeof kEngineMagic) != 0) return;
  const uint64_t offset = Load(file, kProtoOffsetAt, 8);
  const uint64_t bytes = Load(file, kProtoBytesAt, 8);
  if (offset <= file.size() && bytes <= file.size() - offset) {
    Store32(file, kProtoCrcAt, Crc32(file.data() + offset, bytes));
  }
  Store32(file, kHeaderCrcAt, Crc32(file.data(), kHeaderCrcAt));
}

void ExerciseEngine(const std::string& path) {
  auto metadata = Engine::Open(path, -1);
  const int world = metadata.ok() ? (*metadata)->world_size() : 1;
  for (int rank = -1; rank <= std::min(world, 8); ++rank) {
    auto engine = Engine::Open(path, rank);
    if (engine.ok()) Exercise(**engine);
  }
}

}  // namespace dsrt::serialization::test_engines
