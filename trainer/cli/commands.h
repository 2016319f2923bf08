// The subcommands of `aligntrain` (DESIGN.md §2). Each returns the process exit code:
// 0 ok, 1 runtime failure, 2 usage or recipe error, 3 data or model-file error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/runtime/world.h"

namespace aligntrain::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitData = 3;

struct RecipeArgs {
  std::string recipe;
  std::vector<std::string> overrides;  // --set KEY=VALUE
};

// Loads, overrides and validates the recipe on every rank, prints the resolved recipe on rank 0.
int validate(const runtime::World& world, const RecipeArgs& args);

// Runs every stage of the recipe (resuming unless `fresh`).
int run(const runtime::World& world, const RecipeArgs& args, bool fresh);

struct PlanArgs {
  int world_size = 0;       // > 0: plan for that many ranks instead of the current world
  std::string gpu;          // non-empty: add the GPU estimate for this chip (a name as nvidia-smi prints it)
  double mfu = 0.4;         // the model-FLOPs utilisation the estimate assumes
  double peak_tflops = 0;   // > 0: the chip's dense bf16 peak instead of the table's (needed for unknown chips)
};

// Prints the rank layout and per-stage plan; with a GPU named, each training stage's expected tokens/s and memory.
int plan(const runtime::World& world, const RecipeArgs& args, const PlanArgs& plan_args);

struct InitModelArgs {
  std::string preset, config, out, tokenizer;
  int64_t seed = 0;
};

// Writes a random-initialised model (a preset or an HF config.json) as an HF model dir.
int init_model(const runtime::World& world, const InitModelArgs& args);

struct LogprobsArgs {
  std::string model, data, out;
  bool tokens = false;
  int64_t batch_size = 8;
  std::string device = "auto";  // auto | cpu | cuda
  int tensor_parallel = 1;       // under mpirun: TP degree (data-parallel degree = world size / TP)
};

// Sequence log-probs of each example's responses (completion, chosen, rejected), prompt masked.
int logprobs(const runtime::World& world, const LogprobsArgs& args);

struct GenerateArgs {
  std::string model, prompts, out;
  int64_t max_new_tokens = 128;
  double temperature = 1.0;  // 0: greedy
  double top_p = 1.0;
  int64_t top_k = 0;
  int num_samples = 1;
  int64_t seed = 0;
  int64_t batch_size = 8;
  std::string device = "auto";
  int tensor_parallel = 1;
  bool token_ids = false;  // also write "completion_ids"
};

// Completions for the prompts of a JSONL file (KV-cache decoding; TP and DP under mpirun).
int generate(const runtime::World& world, const GenerateArgs& args);

struct ExportArgs {
  std::string checkpoint, out;
  bool merge = false;  // merge the checkpoint's LoRA adapters into the weights (required for a LoRA checkpoint)
};

// Gathers a checkpoint's tensor-parallel shards into an HF model dir. `checkpoint` is a step-<N> folder, or a
// checkpoints/<stage> folder (its newest complete checkpoint).
int export_checkpoint(const runtime::World& world, const ExportArgs& args);

struct TokenizeArgs {
  std::string model, data, out;
  std::string chat_template = "auto";  // auto, chatml, llama3, plain or a .jinja file
  std::string chat_template_kwargs;    // JSON object of extra template variables
  int64_t max_length = 0;              // 0: no truncation
  std::string truncate = "right";      // left | right | drop
  bool assistant_only_loss = false;    // sft conversations: loss on every assistant turn
};

// Writes, for each example in input order, the rendered text, token ids and 0/1 loss mask a training stage uses.
int tokenize(const runtime::World& world, const TokenizeArgs& args);

// Rewrites RUN_DIR/report.html from the run folder's files (recipe.resolved.yaml, metrics.jsonl, DONE markers).
// A missing folder or one without recipe.resolved.yaml is a usage error (UsageError), an unreadable file a data
// error (DataError).
int report(const runtime::World& world, const std::string& run_dir);

}  // namespace aligntrain::cli
