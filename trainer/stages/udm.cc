// See udm.h.
#include "trainer/stages/udm.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <map>

#include "common/errors.h"
#include "data/encode.h"
#include "data/example.h"
#include "trainer/objectives/logistic.h"
#include "trainer/stages/embed.h"
#include "trainer/stages/models.h"
#include "trainer/stages/preference.h"

namespace aligntrain::stages {

std::vector<std::vector<double>> udm_weights(StageEnv& env, const config::StageConfig& stage,
                                             const std::vector<const ResponseSet*>& sets) {
  const auto& l = stage.loss;
  const ModelSource src = resolve_model(env.recipe, l.udm_model);
  const auto tok = data::load_tokenizer(src.tokenizer_dir);
  data::EncodeOptions eo;
  eo.chat_template_kwargs = stage.data.chat_template_kwargs.json;
  const data::Encoder encoder(*tok, src.chat_template, src.weights_dir, eo);
  // Prompts of the examples each set kept, tokenised for the embedding model.
  std::vector<std::vector<std::vector<int32_t>>> prompts(sets.size());
  for (size_t s = 0; s < sets.size(); ++s) {
    std::map<int64_t, const data::Example*> by_line;
    const auto examples = read_stage_examples(sets[s]->path, stage, data::DataKind::kUnpaired);
    for (const auto& ex : examples) by_line[ex.line] = &ex;
    for (int64_t line : sets[s]->lines) {
      auto ids = encoder.encode_prompt(by_line.at(line)->prompt, by_line.at(line)->template_vars);
      if (ids.empty()) ids.push_back(tok->eos_id().value_or(0));
      prompts[s].push_back(std::move(ids));
    }
  }
  auto loaded = load_model(src, env.groups, env.device, frozen_dtype(env.recipe, src.name));
  const int32_t pad = tok->pad_id().value_or(tok->eos_id().value_or(0));
  std::vector<at::Tensor> emb;
  for (const auto& p : prompts) emb.push_back(mean_hidden_states(env, *loaded.lm, p, stage.batch.micro, pad));

  // The classifier: the first prompt_sample_size prompts of each class of the training set.
  const ResponseSet& train = *sets.front();
  std::vector<int64_t> rows;
  int64_t n_d = 0, n_u = 0;
  for (int64_t i = 0; i < train.size(); ++i) {
    const bool d = train.desirable.at(static_cast<size_t>(i)) != 0;
    if ((d ? n_d : n_u) >= l.prompt_sample_size) continue;
    (d ? n_d : n_u) += 1;
    rows.push_back(i);
  }
  if (n_d == 0 || n_u == 0) {
    throw DataError(train.path + ": BCO's UDM needs desirable and undesirable examples (has " + std::to_string(n_d) +
                    " and " + std::to_string(n_u) + ")");
  }
  const auto idx = at::tensor(rows, at::kLong);
  std::vector<int64_t> labels;
  for (int64_t i : rows) labels.push_back(train.desirable.at(static_cast<size_t>(i)));
  const auto model = objectives::fit_logistic_regression(emb.front().index_select(0, idx), at::tensor(labels, at::kLong));

  std::vector<std::vector<double>> out;
  for (size_t s = 0; s < sets.size(); ++s) {
    const auto w = objectives::udm_weight(model.predict(emb[s]), l.min_density_ratio, l.max_density_ratio);
    std::vector<double> ws(static_cast<size_t>(sets[s]->size()), 1.0);
    double sum = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < sets[s]->size(); ++i) {
      if (sets[s]->desirable.at(static_cast<size_t>(i))) continue;
      ws[static_cast<size_t>(i)] = w[i].item<double>();
      sum += ws[static_cast<size_t>(i)];
      ++count;
    }
    out.push_back(std::move(ws));
    spdlog::info("[{}] UDM on {}: classifier fitted on {} desirable + {} undesirable prompts embedded by '{}'; mean "
                 "weight of the {} undesirable examples {:.4f}", stage.name, sets[s]->path, n_d, n_u, src.name, count,
                 count ? sum / static_cast<double>(count) : 0.0);
  }
  return out;
}

}  // namespace aligntrain::stages
