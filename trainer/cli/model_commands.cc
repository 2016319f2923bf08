// `init-model` and `logprobs`: the subcommands that work on a single model directory.
#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "data/dealing.h"
#include "data/encode.h"
#include "data/example.h"
#include "data/tokenizer.h"
#include "trainer/cli/commands.h"
#include "trainer/cli/model_dir.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/presets.h"
#include "trainer/model/transformer.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/parallel/layers.h"
#include "trainer/parallel/vocab_parallel.h"
#include "trainer/runtime/communicators.h"
#include "trainer/runtime/device.h"

namespace aligntrain::cli {

namespace fs = std::filesystem;

int init_model(const runtime::World& world, const InitModelArgs& args) {
  if (args.preset.empty() == args.config.empty()) throw UsageError("init-model: give exactly one of --preset and --config");
  model::ModelConfig config =
      args.preset.empty() ? model::load_model_config(args.config) : model::preset_config(args.preset);
  const std::string tokenizer = args.tokenizer.empty() ? (args.preset.empty() ? "" : "byte") : args.tokenizer;
  if (!world.is_root()) return kExitOk;  // one writer; the model is small enough to build on one rank

  // The tokenizer files come from a folder: the byte tokenizer is written into a scratch one first.
  std::string tokenizer_dir;
  fs::path scratch;
  if (tokenizer == "byte") {
    scratch = fs::temp_directory_path() / ("aligntrain-byte-tok-" + std::to_string(::getpid()));
    data::save_byte_tokenizer(scratch.string());
    tokenizer_dir = scratch.string();
  } else {
    tokenizer_dir = tokenizer;
  }
  if (!tokenizer_dir.empty()) {
    const auto tok = data::load_tokenizer(tokenizer_dir);
    if (tok->vocab_size() > config.vocab_size) {
      throw UsageError("init-model: the tokenizer in " + tokenizer_dir + " has " + std::to_string(tok->vocab_size()) +
                       " tokens but the model's vocab_size is " + std::to_string(config.vocab_size));
    }
    // The model's special ids are the tokenizer's (a config.json's ids may not even be tokens of it).
    auto ids = [](std::optional<int32_t> id) { return id ? std::vector<int64_t>{*id} : std::vector<int64_t>{}; };
    config.bos_token_ids = ids(tok->bos_id());
    config.eos_token_ids = ids(tok->eos_id());
    config.pad_token_id = tok->pad_id() ? std::optional<int64_t>(*tok->pad_id()) : std::nullopt;
  }

  auto factory = model::dense_layer_factory();
  model::CausalLM lm(config, *factory);
  model::init_weights(lm, static_cast<uint64_t>(args.seed), 0, 1);
  model::save_hf_model(args.out, config, lm.parameter_set().named_tensors(), tokenizer_dir);
  if (!scratch.empty()) fs::remove_all(scratch);
  spdlog::info("wrote {} model ({} parameters, {} layers, hidden {}) to {}", config.model_type(),
               model::parameter_count(config), config.num_layers, config.hidden_size, args.out);
  return kExitOk;
}

namespace {

// One response of one example, tokenised.
struct Item {
  size_t example;     // index into the examples
  std::string field;  // completion | chosen | rejected
  data::Encoded enc;
};

// Token log-probs of a batch of items (right-padded), written into row `item` of `token_lp` ([items, max_len]):
// each row holds that response's token log-probs, zeros after it.
void score_batch(model::CausalLM& lm, runtime::Communicator& tp, const std::vector<size_t>& batch,
                 const std::vector<Item>& items, int32_t pad_id, const at::Device& device, at::Tensor& token_lp) {
  int64_t t = 0;
  for (size_t i : batch) t = std::max<int64_t>(t, items[i].enc.ids.size());
  const int64_t b = static_cast<int64_t>(batch.size());
  auto ids = at::full({b, t}, pad_id, at::kLong);
  auto attn = at::zeros({b, t}, at::kLong);
  auto loss_mask = at::zeros({b, t}, at::kLong);
  for (int64_t r = 0; r < b; ++r) {
    const auto& e = items[batch[r]].enc;
    const int64_t n = static_cast<int64_t>(e.ids.size());
    ids[r].narrow(0, 0, n).copy_(at::tensor(std::vector<int64_t>(e.ids.begin(), e.ids.end()), at::kLong));
    attn[r].narrow(0, 0, n).fill_(1);
    loss_mask[r].narrow(0, e.prompt_len, n - e.prompt_len).fill_(1);
  }
  at::NoGradGuard no_grad;
  ids = ids.to(device);
  attn = attn.to(device);
  const auto labels = model::shift_labels(ids, loss_mask.to(device));
  const auto lp = parallel::token_logprobs(lm, lm.hidden_states({ids, attn}), labels, tp).to(at::kCPU);
  for (int64_t r = 0; r < b; ++r) {
    const auto& e = items[batch[r]].enc;
    const int64_t n = static_cast<int64_t>(e.ids.size()) - e.prompt_len;
    token_lp[static_cast<int64_t>(batch[r])].narrow(0, 0, n).copy_(lp[r].narrow(0, e.prompt_len - 1, n));
  }
}

}  // namespace

int logprobs(const runtime::World& world, const LogprobsArgs& args) {
  data::DataKind kind = data::DataKind::kAuto;
  const auto examples = data::read_examples(args.data, {}, nullptr, &kind);
  const ModelDir dir = read_model_dir(args.model);
  const auto& tokenizer = dir.tokenizer;
  data::Encoder encoder(*tokenizer, "auto", args.model, {});
  std::vector<Item> items;
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& ex = examples[i];
    for (const auto& [field, text] : {std::pair{"completion", &ex.completion}, std::pair{"chosen", &ex.chosen},
                                      std::pair{"rejected", &ex.rejected}}) {
      if (!*text) continue;
      auto enc = encoder.encode_example(ex, **text, args.data);
      if (!enc) throw DataError(args.data + ":" + std::to_string(ex.line) + ": " + field + ": no response tokens");
      if (enc->prompt_len == 0) {
        throw DataError(args.data + ":" + std::to_string(ex.line) +
                        ": prompt: empty prompt and no BOS token (the first response token has no context)");
      }
      items.push_back({i, field, std::move(*enc)});
    }
  }
  if (items.empty()) throw DataError(args.data + ": no example has a completion, chosen or rejected response");

  // Tensor parallelism shards the model; data-parallel replicas score every dp-th response; rank 0 writes.
  const at::Device device = runtime::select_device(args.device, world.local_rank());
  auto groups = runtime::make_groups(world, args.tensor_parallel,
                                     device.is_cuda() ? runtime::Device::kCuda : runtime::Device::kCpu);
  auto loaded = load_model_dir(args.model, dir.config, groups, device);
  const int32_t pad = tokenizer->pad_id().value_or(0);
  int64_t max_len = 0;
  for (const auto& it : items) max_len = std::max<int64_t>(max_len, it.enc.ids.size() - it.enc.prompt_len);
  at::Tensor token_lp = at::zeros({static_cast<int64_t>(items.size()), max_len}, at::kDouble);
  for (const auto& rows : data::rank_batches(static_cast<int64_t>(items.size()), groups.layout.dp_rank,
                                             groups.layout.dp, args.batch_size)) {
    const std::vector<size_t> batch(rows.begin(), rows.end());
    score_batch(*loaded.lm, *groups.tp, batch, items, pad, device, token_lp);
  }
  token_lp = parallel::sum_dealt_rows(token_lp, *groups.dp, device);
  if (!world.is_root()) return kExitOk;

  std::ofstream file;
  if (!args.out.empty()) {
    file.open(args.out, std::ios::binary | std::ios::trunc);
    if (!file) throw std::runtime_error("cannot write " + args.out);
  }
  std::ostream& os = args.out.empty() ? std::cout : file;
  nlohmann::ordered_json line;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i == 0 || items[i].example != items[i - 1].example) {
      if (i > 0) os << line.dump() << "\n";
      line = {{"index", examples[items[i].example].index}};
    }
    const int64_t n = static_cast<int64_t>(items[i].enc.ids.size()) - items[i].enc.prompt_len;
    const auto row = token_lp[static_cast<int64_t>(i)].narrow(0, 0, n);
    const double logp = row.sum().item<double>();
    nlohmann::ordered_json r = {{"logp", logp}, {"mean", logp / static_cast<double>(n)}, {"n_tokens", n}};
    if (args.tokens) {
      const auto f = row.to(at::kFloat).contiguous();
      r["token_logps"] = std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + n);
    }
    line[items[i].field] = r;
  }
  os << line.dump() << "\n";
  os.flush();
  if (!args.out.empty()) spdlog::info("wrote log-probs of {} examples to {}", examples.size(), args.out);
  return kExitOk;
}

}  // namespace aligntrain::cli
