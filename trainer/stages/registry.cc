// See registry.h.
#include "trainer/stages/registry.h"

#include <algorithm>
#include <vector>

#include "trainer/stages/distill.h"
#include "trainer/stages/inference.h"
#include "trainer/stages/online.h"
#include "trainer/stages/preference.h"
#include "trainer/stages/select.h"
#include "trainer/stages/sft.h"

namespace aligntrain::stages {

namespace {

template <data::DataKind K>
data::DataKind fixed(const config::StageConfig&) {
  return K;
}

// An eval stage scores completions (NLL, exact match), or pairs when it has preference losses.
data::DataKind eval_data(const config::StageConfig& stage) {
  const bool pairs = std::any_of(stage.loss.type.begin(), stage.loss.type.end(),
                                 [](config::LossType t) { return t != config::LossType::sft; });
  return pairs ? data::DataKind::kPreference : data::DataKind::kSft;
}

StageResult generate(StageEnv& env, const config::StageConfig& stage) { return {run_generate(env, stage), false}; }
StageResult eval(StageEnv& env, const config::StageConfig& stage) { return {run_eval(env, stage), false}; }

const std::vector<StageKindEntry>& table() {
  using config::StageKind;
  using data::DataKind;
  static const std::vector<StageKindEntry> entries = {
      {StageKind::sft, fixed<DataKind::kSft>, run_sft},
      {StageKind::preference, fixed<DataKind::kPreference>, run_preference},
      {StageKind::unpaired, fixed<DataKind::kUnpaired>, run_unpaired},
      {StageKind::negatives, fixed<DataKind::kNegatives>, run_negatives},
      {StageKind::distill, fixed<DataKind::kAuto>, run_distill},  // the loss type decides (distill.cc)
      {StageKind::online, online_data_kind, run_online},
      {StageKind::generate, fixed<DataKind::kPrompts>, generate},
      {StageKind::select, fixed<DataKind::kAuto>, run_select},  // any kind of pool; select.text picks the fields
      {StageKind::eval, eval_data, eval},
  };
  return entries;
}

}  // namespace

const StageKindEntry* find_stage_kind(config::StageKind kind) {
  for (const auto& e : table())
    if (e.kind == kind) return &e;
  return nullptr;
}

std::string runnable_stage_kinds() {
  std::string out;
  for (const auto& e : table()) out += (out.empty() ? "" : ", ") + std::string(config::name_of(e.kind));
  return out;
}

}  // namespace aligntrain::stages
