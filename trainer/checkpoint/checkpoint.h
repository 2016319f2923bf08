// Training checkpoints (DESIGN.md §5): <output_dir>/checkpoints/<stage>/step-<N>/ holding
//   rank-<R>.safetensors   every rank's model shard ("model.<hf name>"), optimizer state ("optim.<...>") and RNG
//                          state ("rng.cpu", "rng.cuda")
//   state.json             step counters, data cursor, objective state, the recipe fingerprint, the layout
//   config.json, tokenizer files   so `aligntrain export` can rebuild an HF model dir from the checkpoint alone
//   COMPLETE               written last
//
// Writing is collective over the world: rank 0 makes step-<N>.tmp/, every rank writes and fsyncs its file, then
// rank 0 writes state.json, renames the folder to step-<N>/, fsyncs the parent and writes COMPLETE. A folder
// without COMPLETE (a job killed mid-write) is never read and is removed by the next pruning. Pruning keeps the
// newest `keep_last` complete checkpoints, and never the newest one.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "trainer/model/hf_names.h"
#include "trainer/model/model_config.h"
#include "trainer/runtime/communicator.h"

namespace aligntrain::checkpoint {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct TrainState {
  int64_t step = 0;         // optimizer steps done
  int64_t total_steps = 0;
  int64_t cursor = 0;       // data stream position after `step` steps
  int tp = 1, dp = 1;
  bool zero1 = false;       // optimizer state sharded over the data-parallel group (each tensor on its owner)
  nlohmann::json fingerprint = nlohmann::json::object();  // results-relevant recipe fields (fingerprint.h)
  nlohmann::json objective = nlohmann::json::object();    // objective state that must survive a resume
  // The model's parameter set (name, full shape, tensor-parallel split) as written: export gathers the shards by it.
  // Empty in checkpoints written before it was recorded (export then uses the config's name table).
  std::vector<model::TensorSpec> parameters;
  // LoRA: the adapters' scaling (alpha / rank, or alpha / √rank), so that export --merge can merge them; 0: none.
  double lora_scaling = 0;
  // LoRA: where the frozen base weights come from, which the rank files then leave out (they hold the adapters, and
  // `parameters` lists only those): {"path": HF model folder, "digest": of its weight files} or {"init_seed": N}
  // (a preset's random initialisation, the config being config.json). Null: the rank files hold every parameter.
  nlohmann::json frozen_base;
};

// What one rank contributes to a checkpoint.
struct RankState {
  NamedTensors model;      // this rank's parameter shards by HF name
  NamedTensors optimizer;  // AdamW::state_tensors()
};

struct Written {
  std::filesystem::path dir;
  double seconds = 0;
  int64_t bytes = 0;  // this rank's file
};

// Collective over `world`. `tokenizer_dir` (may be empty) and `config` go into the checkpoint for export.
Written write_checkpoint(const std::filesystem::path& stage_dir, const TrainState& state, const RankState& mine,
                         const model::ModelConfig& config, const std::string& tokenizer_dir,
                         runtime::Communicator& world, int keep_last);

// The newest complete checkpoint under `stage_dir` (checkpoints/<stage>), if any.
std::optional<std::filesystem::path> latest_complete(const std::filesystem::path& stage_dir);

TrainState read_state(const std::filesystem::path& dir);

// Loads this rank's file of checkpoint `dir`: copies model shards into `model` (by name) and returns the optimizer
// tensors; restores the RNG state. Throws DataError naming the file and tensor when something is missing.
NamedTensors load_rank(const std::filesystem::path& dir, int rank, const NamedTensors& model);

std::string rank_file_name(int rank);

// Restores the default CPU generator (and the CUDA one, where there is a GPU) from saved states; an undefined
// tensor leaves that generator as it is.
void restore_rng(const at::Tensor& cpu_state, const at::Tensor& cuda_state);

// Removes incomplete checkpoint folders and all but the newest `keep_last` complete ones (at least one kept).
void prune(const std::filesystem::path& stage_dir, int keep_last);

// Test-only fault injection: ALIGNTRAIN_FAULT=checkpoint:N makes rank 0 die (as if killed) while writing the
// checkpoint of step N, after the rank files and before COMPLETE.
bool fault_requested(const char* where, int64_t step);

}  // namespace aligntrain::checkpoint
