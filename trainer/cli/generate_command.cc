// `generate`: completions for the prompts of a JSONL file with one model directory.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/errors.h"
#include "data/encode.h"
#include "data/example.h"
#include "data/tokenizer.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/model_dir.h"
#include "trainer/generation/completions.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/parallel/layers.h"
#include "trainer/runtime/communicators.h"
#include "trainer/runtime/device.h"

namespace aligntrain::cli {

namespace fs = std::filesystem;

int generate(const runtime::World& world, const GenerateArgs& args) {
  if (args.max_new_tokens < 1) throw UsageError("generate: --max-new-tokens must be at least 1");
  if (args.temperature < 0) throw UsageError("generate: --temperature must be >= 0 (0 = greedy)");
  if (!(args.top_p > 0 && args.top_p <= 1)) throw UsageError("generate: --top-p must be in (0, 1]");
  if (args.top_k < 0) throw UsageError("generate: --top-k must be >= 0 (0 = off)");
  if (args.num_samples < 1) throw UsageError("generate: --num-samples must be at least 1");
  if (args.temperature == 0 && args.num_samples > 1) {
    throw UsageError("generate: --num-samples " + std::to_string(args.num_samples) +
                     " with greedy decoding (--temperature 0) would repeat one completion");
  }
  const auto examples = data::read_examples(args.prompts, {data::DataKind::kPrompts, false});
  const ModelDir dir = read_model_dir(args.model);
  const auto& tokenizer = dir.tokenizer;
  data::Encoder encoder(*tokenizer, "auto", args.model, {});

  const at::Device device = runtime::select_device(args.device, world.local_rank());
  auto groups = runtime::make_groups(world, args.tensor_parallel,
                                     device.is_cuda() ? runtime::Device::kCuda : runtime::Device::kCpu);
  auto loaded = load_model_dir(args.model, dir.config, groups, device);

  generation::GenerateOptions options;
  options.sampling = {args.temperature, args.top_p, args.top_k};
  options.max_new_tokens = args.max_new_tokens;
  options.batch_size = args.batch_size;
  options.seed = static_cast<uint64_t>(args.seed);
  const auto completions = generation::complete(*loaded.lm, groups, *tokenizer, encoder, examples, args.prompts,
                                                args.num_samples, options, device, "generate");
  if (!world.is_root()) return kExitOk;
  generation::write_completions(args.out, examples, completions, args.num_samples, args.token_ids);
  int64_t tokens = 0, stopped = 0;
  for (const auto& c : completions) {
    tokens += static_cast<int64_t>(c.ids.size());
    stopped += c.stopped;
  }
  spdlog::info("wrote {} completion(s) of {} prompt(s) to {} ({} tokens; {} ended at EOS, {} at --max-new-tokens)",
               completions.size(), examples.size(), args.out, tokens, stopped,
               static_cast<int64_t>(completions.size()) - stopped);
  return kExitOk;
}

}  // namespace aligntrain::cli
