// See checkpoint_io.h.
#include "trainer/model/checkpoint_io.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/irange.h>
#include <torch/nn/module.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "common/errors.h"
#include "data/dealing.h"
#include "trainer/model/hf_names.h"
#include "trainer/model/safetensors.h"
#include "trainer/model/safetensors_torch.h"

namespace aligntrain::model {

namespace fs = std::filesystem;

namespace {

std::string shape_str(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// This rank's slice of a full tensor.
at::Tensor shard(const at::Tensor& full, const TensorSpec& spec, int64_t rank, int64_t tp) {
  const int dim = split_dim(spec.split);
  if (tp == 1 || dim < 0) return full;
  const int64_t n = full.size(dim) / tp;
  return full.narrow(dim, rank * n, n);
}

// Walks the model's parameter set and copies `full(spec)`'s slice into each parameter.
void fill_parameters(CausalLM& model, int64_t rank, int64_t tp, const std::function<at::Tensor(const TensorSpec&)>& full) {
  at::NoGradGuard no_grad;
  for (const auto& p : model.parameter_set()) {
    const auto slice = shard(full(p.spec), p.spec, rank, tp);
    if (slice.sizes() != p.tensor.sizes()) {
      throw std::logic_error(p.name() + ": slice " + shape_str(slice.sizes()) + " vs parameter " +
                             shape_str(p.tensor.sizes()));
    }
    at::Tensor dst = p.tensor;
    dst.copy_(slice);
  }
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace

void load_hf_weights(CausalLM& model, const std::string& dir, int64_t rank, int64_t tp) {
  const auto files = SafetensorsDir::open(dir);
  const ModelConfig& config = model.config();
  for (const auto& name : files.names()) {
    if (!model.parameter_set().find(name) && !is_ignorable_extra(name, config)) {
      throw DataError(dir + ": unexpected tensor \"" + name + "\" (not part of a " + config.model_type() +
                      " model with this config.json)");
    }
  }
  fill_parameters(model, rank, tp, [&](const TensorSpec& spec) {
    const auto entry = files.find(spec.name);
    if (!entry) throw DataError(dir + ": missing tensor \"" + spec.name + "\"");
    const auto& info = *entry->info;
    if (info.shape != spec.shape) {
      throw DataError(entry->file->path() + ": tensor \"" + spec.name + "\" has shape " + shape_str(info.shape) +
                      ", config.json implies " + shape_str(spec.shape));
    }
    if (info.dtype != Dtype::kF32 && info.dtype != Dtype::kBF16 && info.dtype != Dtype::kF16) {
      throw DataError(entry->file->path() + ": tensor \"" + spec.name + "\" has dtype " +
                      std::string(dtype_name(info.dtype)) + " (expected F32, BF16 or F16)");
    }
    return to_tensor(*entry->file, info, /*copy=*/false);
  });
}

void init_weights(CausalLM& model, uint64_t seed, int64_t rank, int64_t tp) {
  const double std = model.config().initializer_range;
  std::map<std::string, uint64_t> index;
  for (const auto& p : model.parameter_set()) index.emplace(p.name(), index.size());
  fill_parameters(model, rank, tp, [&](const TensorSpec& spec) {
    switch (spec.init) {
      case Init::kOnes: return at::ones(spec.shape);
      case Init::kZeros: return at::zeros(spec.shape);
      case Init::kNormal: break;
    }
    // SplitMix-style mixing so neighbouring seeds and indices give unrelated streams.
    const uint64_t s = data::mix64(seed * 0x9E3779B97F4A7C15ull + index.at(spec.name) + 1);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(s);
    return at::normal(0.0, std, spec.shape, gen);
  });
}

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {
      "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
      "tokenizer.model", "aligntrain_tokenizer.json", "chat_template.jinja"};
  return names;
}

void save_hf_model(const std::string& dir, ModelConfig config,
                   const std::vector<std::pair<std::string, at::Tensor>>& tensors, const std::string& tokenizer_dir,
                   uint64_t max_shard_bytes) {
  if (tensors.empty()) throw std::logic_error("save_hf_model: no tensors");
  const auto dtype = tensors.front().second.scalar_type();
  config.torch_dtype = dtype == at::kBFloat16 ? "bfloat16" : dtype == at::kHalf ? "float16" : "float32";

  const fs::path target = fs::absolute(dir);
  const fs::path staging = target.string() + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging);

  write_text(staging / "config.json", model_config_to_json(config));
  nlohmann::json gen = {{"_from_model_config", true}};
  if (!config.bos_token_ids.empty()) gen["bos_token_id"] = config.bos_token_ids.front();
  if (!config.eos_token_ids.empty()) {
    gen["eos_token_id"] = config.eos_token_ids.size() == 1 ? nlohmann::json(config.eos_token_ids[0])
                                                           : nlohmann::json(config.eos_token_ids);
  }
  if (config.pad_token_id) gen["pad_token_id"] = *config.pad_token_id;
  write_text(staging / "generation_config.json", gen.dump(2) + "\n");

  NamedTensors cpu;
  for (const auto& [name, t] : tensors) cpu.emplace_back(name, t.detach().to(at::kCPU).contiguous());
  save_safetensors_dir(staging.string(), cpu, max_shard_bytes, {{"format", "pt"}});

  if (!tokenizer_dir.empty()) {
    for (const auto& name : tokenizer_file_names()) {
      const fs::path src = fs::path(tokenizer_dir) / name;
      if (fs::exists(src)) fs::copy_file(src, staging / name, fs::copy_options::overwrite_existing);
    }
  }
  // Swap into place: the old folder (if any) is moved aside first and removed after the rename.
  const fs::path old = target.string() + ".old-" + std::to_string(::getpid());
  if (fs::exists(target)) fs::rename(target, old);
  fs::rename(staging, target);
  fs::remove_all(old, ec);
}

}  // namespace aligntrain::model
