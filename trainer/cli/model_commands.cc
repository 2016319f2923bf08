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

#include "data/encode.h"
#include "data/example.h"
#include "data/tokenizer.h"
#include "trainer/cli/commands.h"
#include "trainer/errors.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/presets.h"
#include "trainer/model/transformer.h"
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
  model::save_hf_model(args.out, config, model::named_tensors(lm), tokenizer_dir);
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

struct Result {
  double logp = 0, mean = 0;
  int64_t n_tokens = 0;
  std::vector<float> token_logps;
};

// Token log-probs of a batch of items, right-padded; fills one Result per item.
void score_batch(model::CausalLM& lm, const std::vector<const Item*>& batch, int32_t pad_id, bool tokens,
                 const at::Device& device, std::vector<Result>& out) {
  int64_t t = 0;
  for (const Item* it : batch) t = std::max<int64_t>(t, it->enc.ids.size());
  const int64_t b = static_cast<int64_t>(batch.size());
  auto ids = at::full({b, t}, pad_id, at::kLong);
  auto attn = at::zeros({b, t}, at::kLong);
  auto loss_mask = at::zeros({b, t}, at::kLong);
  for (int64_t i = 0; i < b; ++i) {
    const auto& e = batch[i]->enc;
    const int64_t n = static_cast<int64_t>(e.ids.size());
    ids[i].narrow(0, 0, n).copy_(at::tensor(std::vector<int64_t>(e.ids.begin(), e.ids.end()), at::kLong));
    attn[i].narrow(0, 0, n).fill_(1);
    loss_mask[i].narrow(0, e.prompt_len, n - e.prompt_len).fill_(1);
  }
  at::NoGradGuard no_grad;
  ids = ids.to(device);
  attn = attn.to(device);
  loss_mask = loss_mask.to(device);
  const auto labels = model::shift_labels(ids, loss_mask);
  const auto lp = model::token_logprobs(lm, lm.hidden_states({ids, attn}), labels);
  for (int64_t i = 0; i < b; ++i) {
    const auto& e = batch[i]->enc;
    const int64_t n = static_cast<int64_t>(e.ids.size()) - e.prompt_len;
    const auto row = lp[i].narrow(0, e.prompt_len - 1, n).to(at::kCPU).to(at::kDouble);
    Result r;
    r.logp = row.sum().item<double>();
    r.n_tokens = n;
    r.mean = r.logp / static_cast<double>(n);
    if (tokens) {
      const auto f = row.to(at::kFloat).contiguous();
      r.token_logps.assign(f.data_ptr<float>(), f.data_ptr<float>() + n);
    }
    out.push_back(std::move(r));
  }
}

}  // namespace

int logprobs(const runtime::World& world, const LogprobsArgs& args) {
  if (world.size() > 1) {
    throw UsageError("logprobs does not run under mpirun yet (tensor and data parallelism arrive with the "
                     "distributed runtime); run it as one process");
  }
  data::DataKind kind = data::DataKind::kAuto;
  const auto examples = data::read_examples(args.data, {}, nullptr, &kind);
  const auto config = model::load_model_config((fs::path(args.model) / "config.json").string());
  const auto tokenizer = data::load_tokenizer(args.model);
  if (tokenizer->vocab_size() > config.vocab_size) {
    throw DataError(args.model + ": tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                    " tokens but config.json vocab_size is " + std::to_string(config.vocab_size));
  }
  data::Encoder encoder(*tokenizer, "auto", args.model, {});
  std::vector<Item> items;
  for (size_t i = 0; i < examples.size(); ++i) {
    const auto& ex = examples[i];
    for (const auto& [field, text] : {std::pair{"completion", &ex.completion}, std::pair{"chosen", &ex.chosen},
                                      std::pair{"rejected", &ex.rejected}}) {
      if (!*text) continue;
      auto enc = encoder.encode(ex.prompt, **text);
      if (!enc) throw DataError(args.data + ":" + std::to_string(ex.line) + ": " + field + ": no response tokens");
      if (enc->prompt_len == 0) {
        throw DataError(args.data + ":" + std::to_string(ex.line) +
                        ": prompt: empty prompt and no BOS token (the first response token has no context)");
      }
      items.push_back({i, field, std::move(*enc)});
    }
  }
  if (items.empty()) throw DataError(args.data + ": no example has a completion, chosen or rejected response");

  auto factory = model::dense_layer_factory();
  model::CausalLM lm(config, *factory);
  model::load_hf_weights(lm, args.model, 0, 1);
  const at::Device device = runtime::select_device(args.device);
  lm.to(device, at::kFloat);
  const int32_t pad = tokenizer->pad_id().value_or(0);
  std::vector<Result> results;
  for (size_t start = 0; start < items.size(); start += args.batch_size) {
    std::vector<const Item*> batch;
    for (size_t i = start; i < std::min(items.size(), start + args.batch_size); ++i) batch.push_back(&items[i]);
    score_batch(lm, batch, pad, args.tokens, device, results);
  }

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
    nlohmann::ordered_json r = {{"logp", results[i].logp}, {"mean", results[i].mean}, {"n_tokens", results[i].n_tokens}};
    if (args.tokens) r["token_logps"] = results[i].token_logps;
    line[items[i].field] = r;
  }
  os << line.dump() << "\n";
  os.flush();
  if (!args.out.empty()) spdlog::info("wrote log-probs of {} examples to {}", examples.size(), args.out);
  return kExitOk;
}

}  // namespace aligntrain::cli
