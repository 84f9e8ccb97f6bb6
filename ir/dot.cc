#include "ir/dot.h"

#include <gvc.h>
#include <gvplugin.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

// GraphViz 2.42's dot layout leaks the virtual nodes and edges it makes for
// clusters, whatever the caller frees (upstream: "Memory leak in virtual_node when
// dot lays out clusters", ellson/MOTHBALLED-graphviz#65 and #649). Under
// AddressSanitizer those leaks would fail every program that renders a graph, so
// this library tells LeakSanitizer about them. With the default fast unwinder the
// leaks' stacks end in libgvc's gmalloc, hence both modules. Weak: a program
// with suppressions of its own defines this function and should include these.
extern "C" __attribute__((weak)) const char* __lsan_default_suppressions() {
  return "leak:libgvplugin_dot_layout.so\n"
         "leak:libgvc.so\n";
}

namespace dsrt::ir {
namespace {

// cgraph (2.42) takes `char*` for names and values it only reads and copies.
char* C(const std::string& s) { return const_cast<char*>(s.c_str()); }
char* C(const char* s) { return const_cast<char*>(s); }

struct GraphCloser {
  void operator()(Agraph_t* g) const { agclose(g); }
};
using AgraphPtr = std::unique_ptr<Agraph_t, GraphCloser>;

// The GraphViz plugins dsrt renders with, linked in instead of found through
// GraphViz's config file: the dot layout and the core renderers (svg, dot, json,
// ps, fig, ...). Leaving out the pango/cairo text layout keeps fontconfig's caches
// (which leak) out of the process, and with them a 2.42 bug where pango reads a
// freed font name once a second context has been made.
extern "C" gvplugin_library_t gvplugin_core_LTX_library;
extern "C" gvplugin_library_t gvplugin_dot_layout_LTX_library;

const lt_symlist_t kPlugins[] = {
    {"gvplugin_core_LTX_library", &gvplugin_core_LTX_library},
    {"gvplugin_dot_layout_LTX_library", &gvplugin_dot_layout_LTX_library},
    {nullptr, nullptr},
};

struct ContextFreer {
  void operator()(GVC_t* gvc) const { gvFreeContext(gvc); }
};
using ContextPtr = std::unique_ptr<GVC_t, ContextFreer>;

// GraphViz keeps global state (its error handler among it) and is not thread-safe.
std::mutex& GraphvizMutex() {
  static auto* mutex = new std::mutex;
  return *mutex;
}

// GraphViz's messages, collected while a render runs instead of going to stderr.
std::string* captured_messages = nullptr;  // guarded by GraphvizMutex()

int CaptureMessage(char* message) {
  if (captured_messages != nullptr) absl::StrAppend(captured_messages, message);
  return 0;
}

class MessageCapture {
 public:
  MessageCapture() : previous_(agseterrf(CaptureMessage)) { captured_messages = &messages_; }
  ~MessageCapture() {
    agseterrf(previous_);
    captured_messages = nullptr;
  }
  // " (GraphViz: ...)", or nothing when GraphViz said nothing.
  std::string Explanation() const {
    std::string text(absl::StripAsciiWhitespace(messages_));
    return text.empty() ? "" : absl::StrCat(" (GraphViz: ", text, ")");
  }

 private:
  agusererrf previous_;
  std::string messages_;
};

// Fill colour of an op by family; new ops fall into one by their name.
const char* FillColor(absl::string_view op) {
  struct Family {
    std::vector<absl::string_view> markers;
    const char* color;
  };
  static const auto* families = new std::vector<Family>{
      {{"Parameter"}, "#c7e9c0"},                                        // step inputs: green
      {{"Constant"}, "#f0f0f0"},                                         // weights: light grey
      {{"Attention", "Rope", "Mla", "Kv"}, "#fdd0a2"},                   // attention: orange
      {{"Router", "Expert", "MoE", "Moe"}, "#dadaeb"},                   // MoE: lavender
      {{"Norm"}, "#fff3b0"},                                             // norms: yellow
      {{"Linear", "Embedding", "MatMul", "Gemm"}, "#c6dbef"},            // linear: blue
      {{"All", "Reduce", "Gather", "Scatter"}, "#fcbba1"},               // communication: red
      {{"Reshape", "Slice", "Concat", "Transpose"}, "#e5e5e5"},          // shape: grey
      {{"Add", "Mul", "Silu", "Cast", "Sub", "Div", "Exp"}, "#e5f5e0"},  // elementwise: pale green
  };
  for (const Family& family : *families) {
    for (absl::string_view marker : family.markers) {
      if (absl::StrContains(op, marker)) return family.color;
    }
  }
  return "white";
}

// DOT label strings treat '\' as an escape ("\n", "\l", "\N"); user text keeps its own.
std::string LabelText(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string TypesOf(const Node& node) {
  std::vector<std::string> types;
  for (int i = 0; i < node.num_outputs(); ++i) types.push_back(node.output(i)->type().ToString());
  return absl::StrJoin(types, "\\n");
}

std::string NodeLabel(const Node& node, const DotOptions& options) {
  if (node.op() == "Constant") {
    return absl::StrCat(LabelText(node.attrs().StringOr("weight", "?")), "\\n", TypesOf(node));
  }
  if (node.op() == "Parameter") {
    return absl::StrCat(LabelText(node.attrs().StringOr("name", "?")), "\\n", TypesOf(node));
  }
  std::string label = absl::StrCat(LabelText(node.op()), "\\n", TypesOf(node));
  if (options.show_constants) return label;
  for (const Value* input : node.inputs()) {
    if (input == nullptr || input->producer() == nullptr || input->producer()->op() != "Constant") continue;
    absl::StrAppend(&label, "\\n", LabelText(input->producer()->attrs().StringOr("weight", input->name())), " ",
                    input->type().ToString());
  }
  return label;
}

void Set(void* object, const char* name, const std::string& value) { agsafeset(object, C(name), C(value), C("")); }

// Builds the cgraph graph that GraphToDot writes and RenderGraph lays out.
AgraphPtr BuildAgraph(const Graph& graph, const DotOptions& options) {
  AgraphPtr g(agopen(C(graph.name()), Agdirected, nullptr));
  agattr(g.get(), AGRAPH, C("fontname"), C("Helvetica"));
  agattr(g.get(), AGRAPH, C("label"), C(""));
  agattr(g.get(), AGNODE, C("shape"), C("box"));
  agattr(g.get(), AGNODE, C("style"), C("rounded,filled"));
  agattr(g.get(), AGNODE, C("fillcolor"), C("white"));
  agattr(g.get(), AGNODE, C("fontname"), C("Helvetica"));
  agattr(g.get(), AGNODE, C("fontsize"), C("11"));
  agattr(g.get(), AGNODE, C("label"), C("\\N"));
  agattr(g.get(), AGEDGE, C("color"), C("#555555"));
  agattr(g.get(), AGEDGE, C("fontsize"), C("9"));

  absl::flat_hash_map<std::string, Agraph_t*> clusters;
  absl::flat_hash_map<const Node*, Agnode_t*> drawn;
  int index = 0;
  int left_out = 0;
  for (const auto& node_ptr : graph.nodes()) {
    const Node& node = *node_ptr;
    const std::string& op = node.op();
    if (op == "Constant" && !options.show_constants) continue;
    if (options.max_nodes > 0 && index >= options.max_nodes) {
      ++left_out;
      continue;
    }
    Agraph_t* parent = g.get();
    if (!node.scope().empty()) {
      Agraph_t*& cluster = clusters[node.scope()];
      if (cluster == nullptr) {
        cluster = agsubg(g.get(), C(absl::StrCat("cluster_", node.scope())), 1);
        Set(cluster, "label", LabelText(node.scope()));
        Set(cluster, "style", "rounded");
        Set(cluster, "color", "#888888");
      }
      parent = cluster;
    }
    Agnode_t* n = agnode(parent, C(absl::StrCat("n", index++)), 1);
    Set(n, "label", NodeLabel(node, options));
    Set(n, "fillcolor", FillColor(op));
    if (op == "Constant") {
      Set(n, "shape", "note");
      Set(n, "fontsize", "9");
    } else if (op == "Parameter") {
      Set(n, "shape", "invhouse");
    }
    drawn[&node] = n;
    for (const Value* input : node.inputs()) {
      if (input == nullptr) continue;
      auto tail = drawn.find(input->producer());
      if (tail == drawn.end()) continue;  // a hidden weight
      Agedge_t* e = agedge(g.get(), tail->second, n, nullptr, 1);
      if (input->producer()->num_outputs() > 1) Set(e, "taillabel", absl::StrCat(input->index()));
    }
  }

  if (left_out > 0) {
    Agnode_t* note = agnode(g.get(), C("more"), 1);
    Set(note, "label", absl::StrCat("... ", left_out, " more nodes not drawn"));
    Set(note, "shape", "plaintext");
    Set(note, "style", "");
  }
  if (!graph.outputs().empty()) {
    Agnode_t* ret = agnode(g.get(), C("return"), 1);
    Set(ret, "label", "return");
    Set(ret, "shape", "house");
    Set(ret, "fillcolor", "#c7e9c0");
    for (const Value* output : graph.outputs()) {
      auto tail = output == nullptr ? drawn.end() : drawn.find(output->producer());
      if (tail != drawn.end()) agedge(g.get(), tail->second, ret, nullptr, 1);
    }
  }
  return g;
}

}  // namespace

std::string GraphToDot(const Graph& graph, const DotOptions& options) {
  std::lock_guard<std::mutex> lock(GraphvizMutex());
  AgraphPtr g = BuildAgraph(graph, options);
  char* buffer = nullptr;
  size_t size = 0;
  FILE* stream = open_memstream(&buffer, &size);
  if (stream == nullptr) return "";
  agwrite(g.get(), stream);
  std::fclose(stream);
  std::string dot(buffer, size);
  free(buffer);
  return dot;
}

absl::Status RenderGraph(const Graph& graph, const std::string& path, absl::string_view format,
                         const DotOptions& options) {
  // GraphViz 2.42 only prints that it cannot open the file and still reports success.
  FILE* probe = std::fopen(path.c_str(), "w");
  if (probe == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  std::fclose(probe);

  std::lock_guard<std::mutex> lock(GraphvizMutex());
  MessageCapture messages;
  ContextPtr gvc(gvContextPlugins(kPlugins, /*demand_loading=*/0));
  AgraphPtr g = BuildAgraph(graph, options);
  absl::Status status;
  if (gvc == nullptr) {
    status = absl::InternalError(absl::StrCat("cannot render ", path, ": no GraphViz context"));
  } else if (gvLayout(gvc.get(), g.get(), "dot") != 0) {
    status =
        absl::InternalError(absl::StrCat("cannot render ", path, ": the dot layout failed", messages.Explanation()));
  } else if (gvRenderFilename(gvc.get(), g.get(), std::string(format).c_str(), path.c_str()) != 0) {
    status =
        absl::InvalidArgumentError(absl::StrCat("cannot render ", path, " as '", format, "'", messages.Explanation()));
  }
  if (gvc != nullptr) gvFreeLayout(gvc.get(), g.get());
  if (!status.ok()) std::remove(path.c_str());
  return status;
}

}  // namespace dsrt::ir
