#include "trainer/stages/sft.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <spdlog/spdlog.h>

#include <cmath>

#include "common/errors.h"
#include "data/dealing.h"
#include "trainer/model/logprobs.h"
#include "trainer/objectives/distill.h"
#include "trainer/parallel/vocab_parallel.h"
#include "trainer/runtime/host_sync.h"
#include "trainer/stages/training_stage.h"

namespace aligntrain::stages {

namespace {

std::vector<std::vector<const data::Encoded*>> rows_of(const SftData& data, const std::vector<std::vector<int64_t>>& rows) {
  std::vector<std::vector<const data::Encoded*>> out;
  for (const auto& row : rows) {
    out.emplace_back();
    for (int64_t i : row) out.back().push_back(&data.examples.at(static_cast<size_t>(i)));
  }
  return out;
}

}  // namespace

SftData load_sft_data(const std::string& path, const config::StageConfig& stage, const data::Tokenizer& tokenizer,
                      const std::string& chat_template, const std::string& model_dir) {
  SftData out;
  out.path = path;
  data::ReadOptions ro;
  ro.kind = data::DataKind::kSft;
  ro.skip_invalid = stage.data.skip_invalid;
  const auto examples = data::read_examples(path, ro, &out.report);
  if (out.report.skipped > 0) {
    spdlog::warn("{}: skipped {} invalid line(s) of {} (data.skip_invalid); first: {}", path, out.report.skipped,
                 out.report.lines, out.report.first_errors.empty() ? "" : out.report.first_errors.front());
  }
  data::EncodeOptions eo;
  eo.max_length = stage.batch.max_length;
  eo.truncate = truncate_of(stage.data.truncate);
  eo.assistant_only_loss = stage.data.assistant_only_loss;
  eo.chat_template_kwargs = stage.data.chat_template_kwargs.json;
  data::Encoder encoder(tokenizer, chat_template, model_dir, eo);
  for (const auto& ex : examples) {
    auto enc = encoder.encode_example(ex, *ex.completion, path, &out.stats);
    if (!enc) continue;
    if (data::loss_tokens(*enc, stage.data.train_on_prompt) <= 0) {
      ++out.stats.dropped;
      continue;
    }
    out.lengths.push_back(static_cast<int64_t>(enc->ids.size()));
    out.examples.push_back(std::move(*enc));
  }
  if (out.stats.truncated > 0 || out.stats.dropped > 0) {
    spdlog::info("{}: {} example(s) truncated ({}), {} dropped, to max_length {}", path, out.stats.truncated,
                 config::name_of(stage.data.truncate), out.stats.dropped, stage.batch.max_length);
  }
  if (out.examples.empty()) {
    throw DataError(path + ": no usable example: all " + std::to_string(examples.size()) +
                    " were dropped (longer than batch.max_length " + std::to_string(stage.batch.max_length) +
                    " with truncate: " + std::string(config::name_of(stage.data.truncate)) +
                    ", or no completion token left after truncation)");
  }
  return out;
}

at::Tensor sum_nll(model::CausalLM& lm, const data::Batch& b, runtime::Communicator& tp, const at::Device& device) {
  const auto mb = model_batch(b, device);
  return -objectives::token_logprob_sum(lm.hidden_states(mb.input), *lm.lm_head, mb.labels, tp);
}

EvalLoss evaluate_sft(model::CausalLM& lm, runtime::Groups& groups, const at::Device& device, const SftData& data,
                      int64_t micro, const data::CollateOptions& collate) {
  at::NoGradGuard no_grad;
  double nll = 0;
  int64_t tokens = 0;
  for (const auto& batch :
       data::rank_batches(static_cast<int64_t>(data.examples.size()), groups.layout.dp_rank, groups.layout.dp, micro)) {
    std::vector<std::vector<int64_t>> rows;
    for (int64_t i : batch) rows.push_back({i});
    const auto b = data::collate(rows_of(data, rows), collate);
    nll += sum_nll(lm, b, *groups.tp, device).item<double>();
    tokens += b.loss_tokens;
  }
  auto t = at::tensor({nll, static_cast<double>(tokens)}, at::kDouble).to(device);
  groups.dp->all_reduce(t, runtime::ReduceOp::kSum);
  t = t.to(at::kCPU);
  EvalLoss out;
  out.tokens = static_cast<int64_t>(t[1].item<double>());
  out.loss = t[0].item<double>() / std::max<double>(1.0, t[1].item<double>());
  return out;
}

SftObjective::SftObjective(model::CausalLM& lm, runtime::Groups& groups, at::Device device, const SftData& data,
                           data::CollateOptions collate, bool packing)
    : lm_(lm), groups_(groups), device_(device), data_(data), collate_(collate), packing_(packing) {}

void SftObjective::begin_step(const data::StepRows& step) {
  loss_tokens_ = 0;
  step_tokens_ = 0;
  nll_sum_ = at::zeros({1}, at::TensorOptions(at::kDouble).device(device_));
  for (const auto& row : step.rows) {
    for (int64_t i : row) {
      const auto& e = data_.examples.at(static_cast<size_t>(i));
      loss_tokens_ += data::loss_tokens(e, collate_.train_on_prompt);
      step_tokens_ += static_cast<int64_t>(e.ids.size());
    }
  }
}

void SftObjective::micro_step(const std::vector<std::vector<int64_t>>& rows) {
  const auto b = data::collate(rows_of(data_, rows), collate_);
  const auto mb = model_batch(b, device_);
  // The data-parallel average divides by dp; the loss is the sum over the global batch / its loss tokens. With the
  // scale known here, the LM head's weight gradient goes straight into its .grad during the forward.
  const double scale = -static_cast<double>(groups_.layout.dp) / static_cast<double>(loss_tokens_);
  const auto loss = objectives::token_logprob_sum(lm_.hidden_states(mb.input), *lm_.lm_head, mb.labels, *groups_.tp,
                                                  0, scale);
  loss.backward();
  nll_sum_.add_(loss.detach().to(at::kDouble) / scale * -1.0);
}

StepMetrics SftObjective::end_step(bool report) {
  if (!report) return {};
  auto t = nll_sum_.clone();
  groups_.dp->all_reduce(t, runtime::ReduceOp::kSum);
  const double loss = runtime::host_value<double>(t) / static_cast<double>(loss_tokens_);
  return {{"loss", loss}, {"ppl", std::exp(loss)}};
}

StageResult run_sft(StageEnv& env, const config::StageConfig& stage) {
  const ModelSource src = policy_source(env.recipe, stage);
  const auto tok = data::load_tokenizer(src.tokenizer_dir);
  const SftData train_data = load_sft_data(stage.data.train, stage, *tok, src.chat_template, src.weights_dir);
  std::optional<SftData> eval;
  if (!stage.data.eval.empty()) eval = load_sft_data(stage.data.eval, stage, *tok, src.chat_template, src.weights_dir);
  spdlog::info("[{}] {} training example(s){}; policy '{}'", stage.name, train_data.examples.size(),
               eval ? fmt::format(", {} eval example(s)", eval->examples.size()) : "", stage.policy);
  const auto collate = collate_options(*tok, stage);
  return run_training_stage(env, stage, src, [&](model::CausalLM& lm) {
    StageTraining t;
    t.objective = std::make_unique<SftObjective>(lm, env.groups, env.device, train_data, collate, stage.data.packing);
    if (eval) {
      t.evaluate = [&env, &lm, &eval, &stage, collate]() -> StepMetrics {
        const auto e = evaluate_sft(lm, env.groups, env.device, *eval, stage.batch.micro, collate);
        return {{"eval/loss", e.loss}, {"eval/ppl", std::exp(e.loss)}, {"eval/tokens", static_cast<double>(e.tokens)}};
      };
    }
    return t;
  });
}

}  // namespace aligntrain::stages
