#include "trainer/checkpoint/reshard.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <map>

#include "common/errors.h"
#include "trainer/model/hf_names.h"
#include "trainer/model/safetensors_torch.h"

namespace aligntrain::checkpoint {

namespace fs = std::filesystem;

namespace {

std::string shape_text(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// The saved rank files of a checkpoint, memory-mapped, and full tensors rebuilt from their slices.
class SavedShards {
 public:
  SavedShards(const fs::path& dir, const TrainState& state) : dir_(dir), tp_(state.tp), dp_(state.dp) {
    if (tp_ < 1 || dp_ < 1) {
      throw DataError((dir / "state.json").string() + ": tp " + std::to_string(tp_) + ", dp " + std::to_string(dp_) +
                      ": expected positive degrees");
    }
    for (int r = 0; r < tp_ * dp_; ++r) {
      const fs::path file = dir / rank_file_name(r);
      if (!fs::exists(file)) {
        throw DataError(file.string() + ": missing (the checkpoint says it was written by tensor " +
                        std::to_string(tp_) + " x data " + std::to_string(dp_) + " ranks)");
      }
      files_.push_back(model::SafetensorsFile::open(file.string()));
    }
  }

  int world() const { return tp_ * dp_; }
  const model::SafetensorsFile& file(int rank) const { return files_.at(static_cast<size_t>(rank)); }

  // Tensor `key` (e.g. "model.<name>") of parameter `spec` in full: tensor-parallel index t's slice from the first
  // data-parallel replica that holds it (under ZeRO-1 only the owner holds optimizer state), concatenated along the
  // split dimension.
  at::Tensor full(const std::string& key, const model::TensorSpec& spec) const {
    const int dim = model::split_dim(spec.split);
    std::vector<at::Tensor> parts;
    for (int t = 0; t < (dim < 0 ? 1 : tp_); ++t) {
      const model::TensorInfo* info = nullptr;
      int holder = -1;
      for (int d = 0; d < dp_ && !info; ++d) {
        holder = d * tp_ + t;
        info = file(holder).find(key);
      }
      if (!info) {
        throw DataError(dir_.string() + ": no rank file of tensor-parallel index " + std::to_string(t) +
                        " holds tensor " + key);
      }
      parts.push_back(model::to_tensor(file(holder), *info, /*copy=*/true));
    }
    at::Tensor t = parts.size() == 1 ? parts.front() : at::cat(parts, dim);
    if (t.sizes().vec() != spec.shape) {
      throw DataError(dir_.string() + ": " + key + " gathers to shape " + shape_text(t.sizes()) + ", but state.json " +
                      "records " + shape_text(spec.shape));
    }
    return t;
  }

 private:
  fs::path dir_;
  int tp_, dp_;
  std::vector<model::SafetensorsFile> files_;
};

// Tensor-parallel index `tp_rank`'s slice of a full tensor.
at::Tensor slice(const at::Tensor& full, const model::TensorSpec& spec, int tp_rank, int tp) {
  const int dim = model::split_dim(spec.split);
  if (dim < 0 || tp == 1) return full;
  const int64_t n = full.size(dim) / tp;
  return full.narrow(dim, tp_rank * n, n);
}

}  // namespace

std::string describe(const ShardLayout& layout) {
  return "tensor " + std::to_string(layout.tp) + " x data " + std::to_string(layout.dp) + ", ZeRO-1 " +
         (layout.zero1 ? "on" : "off");
}

NamedTensors load_resharded(const fs::path& dir, const TrainState& state, int rank, int tp_rank, int tp,
                            const NamedTensors& model, const std::vector<std::pair<std::string, std::string>>& optimizer,
                            ReshardCounts* counts) {
  const std::string state_file = (dir / "state.json").string();
  if (state.parameters.empty()) {
    throw DataError(state_file + ": no parameter list (written by an older aligntrain); resume it with the layout " +
                    "it was written with: tensor " + std::to_string(state.tp) + " x data " + std::to_string(state.dp));
  }
  std::map<std::string, const model::TensorSpec*> specs;
  for (const auto& s : state.parameters) specs[s.name] = &s;
  auto spec_of = [&](const std::string& name, at::IntArrayRef local) -> const model::TensorSpec& {
    const auto it = specs.find(name);
    if (it == specs.end()) throw DataError(state_file + ": parameters: no entry for " + name + ", which the model has");
    const auto want = model::local_shape(*it->second, tp);
    if (local.vec() != want) {
      throw DataError(state_file + ": parameters: " + name + " has full shape " + shape_text(it->second->shape) +
                      ", whose tensor-parallel slice (of " + std::to_string(tp) + ") is " + shape_text(want) +
                      ", but the model's is " + shape_text(local));
    }
    return *it->second;
  };
  if (specs.size() != model.size()) {
    throw DataError(state_file + ": parameters: " + std::to_string(specs.size()) + " recorded, but the model has " +
                    std::to_string(model.size()));
  }

  const SavedShards saved(dir, state);
  ReshardCounts c;
  at::NoGradGuard no_grad;
  for (const auto& [name, param] : model) {
    const auto& spec = spec_of(name, param.sizes());
    param.detach().copy_(slice(saved.full("model." + name, spec), spec, tp_rank, tp));
    ++c.parameters;
    if (model::split_dim(spec.split) >= 0 && (tp != state.tp)) ++c.resliced;
  }
  std::map<std::string, at::Tensor> local_of;
  for (const auto& [name, param] : model) local_of[name] = param;
  NamedTensors optim;
  for (const auto& [state_name, param_name] : optimizer) {
    const auto it = local_of.find(param_name);
    if (it == local_of.end()) throw DataError(state_file + ": optimizer state of " + param_name + ", not a parameter");
    const auto& spec = spec_of(param_name, it->second.sizes());
    optim.emplace_back(state_name, slice(saved.full("optim." + state_name, spec), spec, tp_rank, tp).contiguous());
    ++c.optimizer_tensors;
  }

  const auto& rng_file = saved.file(rank < saved.world() ? rank : 0);
  at::Tensor cpu, cuda;
  if (const auto* info = rng_file.find("rng.cpu")) cpu = model::to_tensor(rng_file, *info, /*copy=*/true);
  if (const auto* info = rng_file.find("rng.cuda")) cuda = model::to_tensor(rng_file, *info, /*copy=*/true);
  restore_rng(cpu, cuda);
  if (counts) *counts = c;
  return optim;
}

}  // namespace aligntrain::checkpoint
