// aligntrain: the command line (DESIGN.md §2). Parses arguments with CLI11, starts the process world (MPI when
// launched by mpirun), sets up logging and dispatches to one subcommand in trainer/cli/.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "common/errors.h"
#include "trainer/cli/commands.h"
#include "trainer/runtime/allocator.h"
#include "trainer/runtime/cpu_memory.h"
#include "trainer/runtime/cuda_alloc_conf.h"
#include "trainer/runtime/logging.h"
#include "trainer/runtime/world.h"
#include "trainer/version.h"

namespace {

using namespace aligntrain;

struct Args {
  cli::RecipeArgs recipe;
  bool fresh = false;
  cli::PlanArgs plan;
  bool verbose = false;
};

void add_recipe_args(CLI::App* cmd, cli::RecipeArgs& args) {
  cmd->add_option("recipe", args.recipe, "Recipe file (YAML)")->required();
  cmd->add_option("--set", args.overrides,
                  "Override a recipe value before validation, e.g. --set stages.dpo.loss.beta=0.05 "
                  "(repeatable)")
      ->type_name("KEY=VALUE");
}

// Reports an error raised on this rank and ends the job with `code`. Under MPI the other ranks may be waiting in a
// collective, so the whole job is aborted (its exit code is `code`); alone, the process simply exits.
int fail(runtime::World& world, const char* what, int code) {
  spdlog::error("{}", what);
  runtime::flush_logs();
  if (world.size() > 1) world.abort(code);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  const char* malloc_mode = runtime::keep_freed_memory();  // before any large allocation
  runtime::track_cpu_memory();  // before any tensor: CPU tensor bytes and their peak (cpu_memory.h)
  const char* cuda_alloc = runtime::configure_cuda_allocator();  // before anything touches CUDA
  runtime::World world(&argc, &argv);
  Args args;

  CLI::App app{"aligntrain: SFT, preference optimisation and distillation pipelines for Llama-family models.\n"
               "Every subcommand runs unchanged under `mpirun -np N`."};
  app.set_version_flag("--version", version_line());
  app.require_subcommand(1);
  app.add_flag("-v,--verbose", args.verbose, "Debug-level console logging");
  app.footer("Exit codes: 0 ok, 1 runtime failure, 2 usage or recipe error, 3 data or model-file error.\n"
             "Run `aligntrain SUBCOMMAND --help` for the options of each subcommand.");

  auto* run = app.add_subcommand("run", "Run every stage of a recipe; resumes from the latest complete checkpoint");
  add_recipe_args(run, args.recipe);
  run->add_flag("--fresh", args.fresh, "Ignore existing checkpoints and DONE markers and start over");

  auto* validate = app.add_subcommand(
      "validate", "Check everything that can be checked without training; print the resolved recipe");
  add_recipe_args(validate, args.recipe);

  auto* plan = app.add_subcommand("plan", "Print the rank layout and the plan of each stage");
  add_recipe_args(plan, args.recipe);
  plan->add_option("--world-size", args.plan.world_size,
                   "Plan for this many ranks (default: the current world, 1 without mpirun)")
      ->check(CLI::Range(1, 1 << 20));
  auto* gpu = plan->add_option("--gpu", args.plan.gpu,
                   "Add each training stage's expected tokens/s and memory on this GPU (a name as nvidia-smi prints "
                   "it, e.g. \"NVIDIA H100 80GB HBM3\")");
  plan->add_option("--mfu", args.plan.mfu, "Model-FLOPs utilisation the GPU estimate assumes (default 0.4)")
      ->check(CLI::Range(0.01, 1.0))
      ->needs(gpu);
  plan->add_option("--peak-tflops", args.plan.peak_tflops,
                   "The GPU's dense bf16 peak in TFLOP/s (instead of the built-in table; needed for other chips)")
      ->check(CLI::PositiveNumber)
      ->needs(gpu);

  cli::InitModelArgs init_args;
  auto* init_model = app.add_subcommand("init-model", "Write a random-initialised model as a Hugging Face model dir");
  init_model->add_option("--preset", init_args.preset,
                         "Embedded preset: tiny-llama, tiny-llama-4l, tiny-qwen2, tiny-qwen3, small-llama");
  init_model->add_option("--config", init_args.config, "HF config.json to initialise instead of a preset");
  init_model->add_option("--out", init_args.out, "Output model dir")->required();
  init_model->add_option("--seed", init_args.seed, "Initialisation seed (default 0)");
  init_model->add_option("--tokenizer", init_args.tokenizer,
                         "byte (default for presets), or a model dir whose tokenizer files are copied");
  cli::LogprobsArgs lp_args;
  auto* logprobs = app.add_subcommand("logprobs", "Sequence log-probs of each example's response(s), prompt masked");
  logprobs->add_option("--model", lp_args.model, "HF model dir")->required();
  logprobs->add_option("--data", lp_args.data, "JSONL file (sft, preference or unpaired examples)")->required();
  logprobs->add_option("--out", lp_args.out, "Output JSONL (default: stdout)");
  logprobs->add_flag("--tokens", lp_args.tokens, "Also write per-token log-probs");
  logprobs->add_option("--batch-size", lp_args.batch_size, "Responses per forward pass (default 8)")
      ->check(CLI::Range(1, 1 << 16));
  logprobs->add_option("--tensor-parallel", lp_args.tensor_parallel,
                       "Tensor-parallel degree under mpirun (default 1; the rest of the ranks are data-parallel)")
      ->check(CLI::Range(1, 1 << 16));
  logprobs->add_option("--device", lp_args.device, "auto (CUDA when available), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cli::GenerateArgs gen_args;
  auto* generate = app.add_subcommand("generate", "Generate completions for prompts (KV-cache decoding)");
  generate->add_option("--model", gen_args.model, "HF model dir")->required();
  generate->add_option("--prompts", gen_args.prompts, "JSONL with a \"prompt\" field per line")->required();
  generate->add_option("--out", gen_args.out, "Output JSONL: each input object plus \"completion\"")->required();
  generate->add_option("--max-new-tokens", gen_args.max_new_tokens, "Maximum new tokens per completion (default 128)");
  generate->add_option("--temperature", gen_args.temperature, "Sampling temperature (default 1; 0 = greedy)");
  generate->add_option("--top-p", gen_args.top_p, "Nucleus sampling mass (default 1 = off)");
  generate->add_option("--top-k", gen_args.top_k, "Sample from the k most likely tokens (default 0 = off)");
  generate->add_option("--num-samples", gen_args.num_samples, "Completions per prompt (default 1)");
  generate->add_option("--seed", gen_args.seed, "Sampling seed (default 0)");
  generate->add_option("--batch-size", gen_args.batch_size, "Prompts decoded together (default 8)")
      ->check(CLI::Range(1, 1 << 16));
  generate->add_option("--tensor-parallel", gen_args.tensor_parallel,
                       "Tensor-parallel degree under mpirun (default 1; the rest of the ranks are data-parallel)")
      ->check(CLI::Range(1, 1 << 16));
  generate->add_flag("--token-ids", gen_args.token_ids, "Also write each completion's token ids (\"completion_ids\")");
  generate->add_option("--device", gen_args.device, "auto (CUDA when available), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cli::TokenizeArgs tok_args;
  auto* tokenize = app.add_subcommand(
      "tokenize", "Write each example's rendered text, token ids and loss mask exactly as training sees them");
  tokenize->add_option("--model", tok_args.model, "HF model dir (or org/name in the Hugging Face cache)")->required();
  tokenize->add_option("--data", tok_args.data, "JSONL or Parquet data (sft, preference, unpaired, prompts)")
      ->required();
  tokenize->add_option("--out", tok_args.out, "Output JSONL (default: stdout)");
  tokenize->add_option("--chat-template", tok_args.chat_template,
                       "auto (the model's own, default), chatml, llama3, plain, or a .jinja file");
  tokenize->add_option("--chat-template-kwargs", tok_args.chat_template_kwargs,
                       "Extra template variables as a JSON object, e.g. '{\"enable_thinking\": false}'");
  tokenize->add_option("--max-length", tok_args.max_length, "Truncate to this many tokens (default 0: no limit)")
      ->check(CLI::NonNegativeNumber);
  tokenize->add_option("--truncate", tok_args.truncate, "right (default), left or drop, as data.truncate")
      ->check(CLI::IsMember({"left", "right", "drop"}));
  tokenize->add_flag("--assistant-only-loss", tok_args.assistant_only_loss,
                     "Conversational SFT: loss on every assistant turn, not only the last (data.assistant_only_loss)");
  tokenize->footer("One JSON line per example: {\"index\", \"text\", \"input_ids\", \"loss_mask\"} (pairs: under "
                   "\"chosen\" and \"rejected\").\nExit codes: 0 ok, 2 usage or template error, 3 data or model-file error.");
  cli::ExportArgs export_args;
  auto* export_cmd = app.add_subcommand("export", "Gather tensor-parallel checkpoint shards into an HF model dir");
  export_cmd->add_option("checkpoint", export_args.checkpoint,
                         "Checkpoint dir (checkpoints/<stage>/step-<N>), or checkpoints/<stage> for its newest")
      ->required();
  export_cmd->add_option("--out", export_args.out, "Output model dir")->required();
  export_cmd->add_flag("--merge", export_args.merge,
                       "Merge the checkpoint's LoRA adapters into the weights (W + scaling * B A, as PEFT's "
                       "merge_and_unload)");
  std::string report_dir;
  auto* report = app.add_subcommand(
      "report", "Rewrite RUN_DIR/report.html (charts of metrics.jsonl, the summary, the resolved recipe)");
  report->add_option("run_dir", report_dir, "Run folder: the run.output_dir of an `aligntrain run`")->required();
  report->footer("Reads RUN_DIR's recipe.resolved.yaml, metrics.jsonl and <stage>/DONE markers; needs no model or data "
                 "file.\nExit codes: 0 written, 2 RUN_DIR missing or not a run folder, 3 a file in it unreadable, "
                 "1 the report cannot be written.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version print on rank 0 only and exit 0; every other parse error is a usage error (exit 2).
    int code = cli::kExitOk;
    if (world.is_root()) code = app.exit(e);
    else code = e.get_exit_code();
    world.exit(code == 0 ? cli::kExitOk : cli::kExitUsage);
  }

  runtime::init_logging(world.rank(), world.size(), args.verbose);
  spdlog::debug("allocator: {} (ALIGNTRAIN_MALLOC=default keeps glibc's defaults); CUDA caching allocator: {}",
                malloc_mode, cuda_alloc);
  int code = cli::kExitRuntime;
  try {
    if (*run) code = cli::run(world, args.recipe, args.fresh);
    else if (*validate) code = cli::validate(world, args.recipe);
    else if (*plan) code = cli::plan(world, args.recipe, args.plan);
    else if (*init_model) code = cli::init_model(world, init_args);
    else if (*logprobs) code = cli::logprobs(world, lp_args);
    else if (*generate) code = cli::generate(world, gen_args);
    else if (*tokenize) code = cli::tokenize(world, tok_args);
    else if (*export_cmd) code = cli::export_checkpoint(world, export_args);
    else if (*report) code = cli::report(world, report_dir);
  } catch (const UsageError& e) {
    code = fail(world, e.what(), cli::kExitUsage);
  } catch (const DataError& e) {
    code = fail(world, e.what(), cli::kExitData);
  } catch (const std::exception& e) {
    code = fail(world, e.what(), cli::kExitRuntime);
  }
  runtime::flush_logs();
  world.exit(code);
}
