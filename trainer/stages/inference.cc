// See inference.h.
#include "trainer/stages/inference.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/errors.h"
#include "data/encode.h"
#include "data/example.h"
#include "trainer/generation/completions.h"
#include "trainer/stages/models.h"
#include "trainer/stages/preference.h"
#include "trainer/stages/sft.h"

namespace aligntrain::stages {

namespace {

generation::GenerateOptions options_of(const config::StageConfig& stage) {
  generation::GenerateOptions o;
  const auto& g = stage.generation;
  o.sampling = {g.temperature, g.top_p, g.top_k};
  o.max_new_tokens = g.max_new_tokens;
  o.batch_size = stage.batch.micro;
  o.seed = static_cast<uint64_t>(g.seed.value_or(0));
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

nlohmann::ordered_json run_generate(StageEnv& env, const config::StageConfig& stage) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelSource src = resolve_model(env.recipe, stage.policy);
  const auto tok = data::load_tokenizer(src.tokenizer_dir);
  data::ReadOptions ro;
  ro.kind = data::DataKind::kPrompts;
  ro.skip_invalid = stage.data.skip_invalid;
  const auto examples = data::read_examples(stage.data.train, ro);
  data::EncodeOptions eo;
  eo.chat_template_kwargs = stage.data.chat_template_kwargs.json;
  const data::Encoder encoder(*tok, src.chat_template, src.weights_dir, eo);
  auto loaded = load_model(src, env.groups, env.device, frozen_dtype(env.recipe, stage.policy));
  const auto& g = stage.generation;
  spdlog::info("[{}] {} completion(s) of {} prompt(s) from '{}' (temperature {}, top_p {}, top_k {}, up to {} new "
               "tokens)", stage.name, examples.size() * static_cast<size_t>(g.num_samples), examples.size(),
               stage.policy, g.temperature, g.top_p, g.top_k, g.max_new_tokens);
  const auto completions = generation::complete(*loaded.lm, env.groups, *tok, encoder, examples, stage.data.train,
                                                g.num_samples, options_of(stage), env.device, "[" + stage.name + "]");
  if (env.world.is_root()) generation::write_completions(g.out, examples, completions, g.num_samples);
  env.world.barrier();
  int64_t tokens = 0, stopped = 0;
  for (const auto& c : completions) {
    tokens += static_cast<int64_t>(c.ids.size());
    stopped += c.stopped;
  }
  const double secs = seconds_since(t0);
  spdlog::info("[{}] wrote {} ({} tokens, {:.0f} tokens/s; {} of {} ended at EOS)", stage.name, g.out, tokens,
               static_cast<double>(tokens) / std::max(secs, 1e-9), stopped, completions.size());
  nlohmann::ordered_json s;
  s["kind"] = "generate";
  s["completions"] = completions.size();
  s["tokens"] = tokens;
  s["seconds"] = secs;
  return s;
}

ExactMatch exact_match(StageEnv& env, model::CausalLM& lm, const data::Tokenizer& tok, const std::string& chat_template,
                       const std::string& model_dir, const std::string& path, const config::StageConfig& stage) {
  data::ReadOptions ro;
  ro.kind = data::DataKind::kSft;
  ro.skip_invalid = stage.data.skip_invalid;
  const auto examples = data::read_examples(path, ro);
  data::EncodeOptions eo;
  eo.chat_template_kwargs = stage.data.chat_template_kwargs.json;
  const data::Encoder encoder(tok, chat_template, model_dir, eo);
  auto options = options_of(stage);
  options.sampling = {};  // greedy
  options.sampling.temperature = 0;
  const auto completions =
      generation::complete(lm, env.groups, tok, encoder, examples, path, 1, options, env.device, "[" + stage.name + "]");
  ExactMatch m;
  for (const auto& c : completions) {
    m.matched += data::exact_match(c.text, examples[c.example]);
    ++m.total;
  }
  m.accuracy = m.total ? static_cast<double>(m.matched) / static_cast<double>(m.total) : 0.0;
  return m;
}

nlohmann::ordered_json run_eval(StageEnv& env, const config::StageConfig& stage) {
  if (stage.data.eval.empty()) throw UsageError("stage '" + stage.name + "': an eval stage needs data.eval");
  const auto paired = config::allowed_loss_types(config::StageKind::preference);
  bool preference = false;
  for (auto t : stage.loss.type) {
    if (t == config::LossType::sft) continue;
    if (std::find(paired.begin(), paired.end(), t) == paired.end()) {
      throw UsageError("stage '" + stage.name + "': eval with loss type " + config::to_string(t) +
                       " is not built yet (sft and the paired preference types are)");
    }
    preference = true;
  }
  if (preference) {
    if (stage.eval.exact_match) {
      throw UsageError("stage '" + stage.name + "': eval.exact_match needs {prompt, completion} data; a stage with "
                       "preference losses scores pairs");
    }
    return run_preference(env, stage).summary;
  }
  const ModelSource src = resolve_model(env.recipe, stage.policy);
  const auto tok = data::load_tokenizer(src.tokenizer_dir);
  const SftData eval = load_sft_data(stage.data.eval, stage, *tok, src.chat_template, src.weights_dir);
  auto loaded = load_model(src, env.groups, env.device, frozen_dtype(env.recipe, stage.policy));
  const auto t0 = std::chrono::steady_clock::now();
  const auto e = evaluate_sft(*loaded.lm, env.groups, env.device, eval, stage.batch.micro, collate_options(*tok, stage));
  nlohmann::ordered_json line;
  line["stage"] = stage.name;
  line["step"] = 0;
  line["eval/loss"] = e.loss;
  line["eval/ppl"] = std::exp(e.loss);
  line["eval/tokens"] = e.tokens;
  std::optional<ExactMatch> em;
  if (stage.eval.exact_match) {
    em = exact_match(env, *loaded.lm, *tok, src.chat_template, src.weights_dir, stage.data.eval, stage);
    line["eval/exact_match"] = em->accuracy;
    line["eval/exact_match_count"] = em->matched;
    line["eval/examples"] = em->total;
  }
  env.metrics.truncate_after(stage.name, -1);
  env.metrics.write(line);
  spdlog::info("[{}] '{}' on {}: eval/loss {:.4f}, eval/ppl {:.3f} over {} tokens{}", stage.name, stage.policy,
               stage.data.eval, e.loss, std::exp(e.loss), e.tokens,
               em ? fmt::format("; exact match {}/{} = {:.3f}", em->matched, em->total, em->accuracy) : "");
  return eval_summary(e.loss, em ? std::optional<double>(em->accuracy) : std::nullopt, seconds_since(t0));
}

}  // namespace aligntrain::stages
