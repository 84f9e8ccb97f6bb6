// AllReduce, AllGather and ExpertCombine: a partitioned graph's exchanges with the other ranks,
// through the executable's Communicator.

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backends/expert_combine.h"
#include "backends/onednn/kernel.h"
#include "ir/status_macros.h"

namespace dsrt::backends::onednn {
namespace {

absl::StatusOr<Communicator*> RequireCommunicator(const ir::Node& node, CompileContext& c) {
  if (c.communicator() != nullptr) return c.communicator();
  return absl::FailedPreconditionError(absl::StrCat(node.op(), " needs a communicator: run the engine under mpirun"));
}

class AllReduceKernel : public Kernel {
 public:
  AllReduceKernel(Communicator* communicator, int x, int out) : communicator_(communicator), x_(x), out_(out) {}

  absl::Status Run(StepContext& ctx) override {
    const float* x = ctx.F(x_);
    float* out = ctx.F(out_);
    if (out != x) std::copy(x, x + ctx.Elements(x_), out);
    return communicator_->AllReduceSum(out, ctx.Elements(out_));
  }

 private:
  Communicator* communicator_;
  int x_, out_;
};

// Gathers [rows, sizes[rank]] pieces into [rows, sum(sizes)]. On the logits, rows are
// the logit rows the LM head computed when it computed only those.
class AllGatherKernel : public Kernel {
 public:
  AllGatherKernel(Communicator* communicator, std::vector<int64_t> sizes, bool gathers_logits, int x, int out)
      : communicator_(communicator), sizes_(std::move(sizes)), gathers_logits_(gathers_logits), x_(x), out_(out) {}

  absl::Status Run(StepContext& ctx) override {
    const int64_t rows = gathers_logits_ && ctx.logits_selected
                             ? static_cast<int64_t>(ctx.logit_rows().size())
                             : ctx.Elements(x_) / sizes_[communicator_->rank()];
    std::vector<int64_t> counts;
    int64_t total = 0;
    for (int64_t size : sizes_) {
      counts.push_back(rows * size);
      total += rows * size;
    }
    flat_.resize(total);
    DSRT_RETURN_IF_ERROR(communicator_->AllGather(ctx.F(x_), flat_.data(), counts));
    InterleaveColumns(flat_.data(), rows, sizes_, ctx.F(out_));
    return absl::OkStatus();
  }

 private:
  Communicator* communicator_;
  std::vector<int64_t> sizes_;
  bool gathers_logits_;
  int x_, out_;
  std::vector<float> flat_;
};

class ExpertCombineKernel : public Kernel {
 public:
  ExpertCombineKernel(Communicator* communicator, ExpertPlacement placement, int partial, int ids, int out)
      : communicator_(communicator), placement_(placement), partial_(partial), ids_(ids), out_(out) {}

  absl::Status Run(StepContext& ctx) override {
    const std::vector<int64_t> dims = ctx.Dims(partial_);
    return CombineExperts(ctx.F(partial_), ctx.I(ids_), dims[0], dims[1], ctx.Dims(ids_)[1], placement_,
                          *communicator_, ctx.F(out_), &scratch_);
  }

 private:
  Communicator* communicator_;
  ExpertPlacement placement_;
  int partial_, ids_, out_;
  ExpertCombineScratch scratch_;
};

absl::StatusOr<std::unique_ptr<Kernel>> MakeExpertCombine(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(Communicator * communicator, RequireCommunicator(node, c));
  DSRT_ASSIGN_OR_RETURN(ExpertPlacement placement, ExpertPlacementOf(node));
  return std::make_unique<ExpertCombineKernel>(communicator, placement, c.Index(node.input(0)),
                                               c.Index(node.input(1)), c.Index(node.output()));
}

absl::StatusOr<std::unique_ptr<Kernel>> MakeAllReduce(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(Communicator * communicator, RequireCommunicator(node, c));
  return std::make_unique<AllReduceKernel>(communicator, c.Index(node.input(0)), c.Index(node.output()));
}

absl::StatusOr<std::unique_ptr<Kernel>> MakeAllGather(const ir::Node& node, CompileContext& c) {
  DSRT_ASSIGN_OR_RETURN(Communicator * communicator, RequireCommunicator(node, c));
  DSRT_ASSIGN_OR_RETURN(std::vector<int64_t> sizes, node.attrs().GetInts("sizes"));
  if (static_cast<int>(sizes.size()) != communicator->world_size() || sizes[communicator->rank()] < 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("gathers from ", sizes.size(), " ranks in a world of ", communicator->world_size()));
  }
  return std::make_unique<AllGatherKernel>(communicator, std::move(sizes), c.IsLogits(node.input(0)),
                                           c.Index(node.input(0)), c.Index(node.output()));
}

}  // namespace

void AddCollectiveKernels(absl::flat_hash_map<std::string, KernelFactory>& f) {
  f["AllReduce"] = MakeAllReduce;
  f["AllGather"] = MakeAllGather;
  f["ExpertCombine"] = MakeExpertCombine;
}

}  // namespace dsrt::backends::onednn
