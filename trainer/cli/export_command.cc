// `export CHECKPOINT_DIR --out DIR`: a checkpoint's model shards (data-parallel replica 0, tensor-parallel ranks
// 0..tp-1, which are world ranks 0..tp-1) gathered into an HF model dir, with the config and tokenizer files the
// checkpoint carries. A checkpoint of LoRA training is exported with --merge: W + scaling · B A for every adapter
// (PEFT's merge_and_unload); its frozen base, which the checkpoint leaves out, is re-read from the folder (or preset
// seed) that state.json records, and must be unchanged.
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>

#include "common/errors.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/checkpoint/fingerprint.h"
#include "trainer/cli/commands.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/hf_names.h"
#include "trainer/model/lora.h"
#include "trainer/model/model_config.h"
#include "trainer/model/projection.h"
#include "trainer/model/transformer.h"
#include "trainer/model/safetensors_torch.h"

namespace aligntrain::cli {

namespace fs = std::filesystem;

namespace {

// The full tensors of a LoRA checkpoint's frozen base (checkpoint::TrainState::frozen_base), as `dtype`.
std::vector<std::pair<std::string, at::Tensor>> frozen_base(const nlohmann::json& origin, const model::ModelConfig& config,
                                                            const fs::path& dir, at::ScalarType dtype) {
  auto factory = model::dense_layer_factory();
  auto lm = std::make_shared<model::CausalLM>(config, *factory);
  if (origin.contains("init_seed")) {
    model::init_weights(*lm, origin.at("init_seed").get<uint64_t>(), 0, 1);
  } else {
    const std::string path = origin.at("path").get<std::string>();
    if (checkpoint::weights_digest(path) != origin.at("digest").get<std::string>()) {
      throw DataError(dir.string() + ": the checkpoint's frozen base " + path + " has changed since it was written "
                      "(its weights are not in the checkpoint)");
    }
    model::load_hf_weights(*lm, path, 0, 1);
  }
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, t] : lm->parameter_set().named_tensors()) out.emplace_back(name, t.detach().to(dtype));
  return out;
}

}  // namespace

int export_checkpoint(const runtime::World& world, const ExportArgs& args) {
  fs::path dir = args.checkpoint;
  if (!fs::is_directory(dir)) throw DataError(dir.string() + ": no such checkpoint folder");
  if (!fs::exists(dir / "state.json")) {
    const auto latest = checkpoint::latest_complete(dir);
    if (!latest) throw DataError(dir.string() + ": neither a checkpoint (no state.json) nor a folder of complete ones");
    dir = *latest;
  }
  if (!fs::exists(dir / "COMPLETE")) {
    throw DataError(dir.string() + ": incomplete checkpoint (no COMPLETE marker: the job stopped while writing it)");
  }
  if (!world.is_root()) return kExitOk;
  const auto state = checkpoint::read_state(dir);
  const auto config = model::load_model_config((dir / "config.json").string());
  std::vector<std::map<std::string, at::Tensor>> shards;
  for (int r = 0; r < state.tp; ++r) {
    const fs::path file = dir / checkpoint::rank_file_name(r);
    if (!fs::exists(file)) throw DataError(file.string() + ": missing shard of tensor-parallel rank " + std::to_string(r));
    const auto tensors = model::load_safetensors(file.string());
    shards.emplace_back(tensors.begin(), tensors.end());
  }
  std::vector<std::pair<std::string, at::Tensor>> full;
  // The parameter set the checkpoint recorded (everything its training stage registered); older checkpoints: the
  // config's name table.
  const auto specs = state.parameters.empty() ? model::hf_tensor_table(config) : state.parameters;
  for (const auto& spec : specs) {
    std::vector<at::Tensor> parts;
    for (int r = 0; r < state.tp; ++r) {
      const auto it = shards[r].find("model." + spec.name);
      if (it == shards[r].end()) {
        throw DataError((dir / checkpoint::rank_file_name(r)).string() + ": no tensor model." + spec.name);
      }
      parts.push_back(it->second);
      if (model::split_dim(spec.split) < 0) break;
    }
    at::Tensor t = parts.size() == 1 ? parts[0] : at::cat(parts, model::split_dim(spec.split));
    if (t.sizes().vec() != spec.shape) throw DataError(dir.string() + ": " + spec.name + " has the wrong shape");
    full.emplace_back(spec.name, t);
  }
  if (!state.frozen_base.is_null()) {
    if (!args.merge) throw UsageError(dir.string() + ": the checkpoint holds LoRA adapters without their frozen base; "
                                      "export --merge writes the merged model");
    const at::ScalarType dtype = full.empty() ? at::kFloat : full.front().second.scalar_type();
    auto base = frozen_base(state.frozen_base, config, dir, dtype);
    base.insert(base.end(), full.begin(), full.end());
    full = std::move(base);
  }
  if (state.lora_scaling > 0) {
    if (!args.merge) {
      throw UsageError(dir.string() + ": the checkpoint holds LoRA adapters on a frozen base; export --merge writes "
                       "the merged model (the stage's <stage>/adapter folder is the adapter alone)");
    }
    full = model::merge_lora(full, state.lora_scaling);
  } else if (args.merge) {
    throw UsageError(dir.string() + ": --merge: the checkpoint has no LoRA adapters");
  }
  const fs::path tok = dir / "tokenizer";
  model::save_hf_model(args.out, config, full, fs::exists(tok) ? tok.string() : "");
  spdlog::info("exported {} (step {}, tensor-parallel {}) to {}", dir.string(), state.step, state.tp, args.out);
  return kExitOk;
}

}  // namespace aligntrain::cli
