// `export CHECKPOINT_DIR --out DIR`: a checkpoint's model shards (data-parallel replica 0, tensor-parallel ranks
// 0..tp-1, which are world ranks 0..tp-1) gathered into an HF model dir, with the config and tokenizer files the
// checkpoint carries. A checkpoint of LoRA training is exported with --merge: W + scaling · B A for every adapter
// (PEFT's merge_and_unload).
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>

#include "common/errors.h"
#include "trainer/checkpoint/checkpoint.h"
#include "trainer/cli/commands.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/hf_names.h"
#include "trainer/model/lora.h"
#include "trainer/model/model_config.h"
#include "trainer/model/safetensors_torch.h"

namespace aligntrain::cli {

namespace fs = std::filesystem;

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
