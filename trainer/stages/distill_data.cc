// See distill_data.h.
#include "trainer/stages/distill_data.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/errors.h"
#include "data/example.h"
#include "trainer/stages/preference.h"

namespace aligntrain::stages {

using config::LossType;

DistillMethod distill_method_of(const config::StageConfig& stage) {
  std::optional<DistillMethod> m;
  for (LossType t : stage.loss.type) {
    DistillMethod x = DistillMethod::kd;
    switch (t) {
      case LossType::kd: x = DistillMethod::kd; break;
      case LossType::dckd: x = DistillMethod::dckd; break;
      case LossType::adpa: x = DistillMethod::adpa; break;
      case LossType::aligndistil: x = DistillMethod::aligndistil; break;
      default:
        throw UsageError("stage '" + stage.name + "': loss type " + config::to_string(t) +
                         " in a distill stage: the NLL term is each method's own weight (kd_ratio, sft_weight)");
    }
    if (m) throw UsageError("stage '" + stage.name + "': one distillation loss type per stage (got several)");
    m = x;
  }
  if (!m) throw UsageError("stage '" + stage.name + "': a distill stage needs loss.type (kd, dckd, adpa or aligndistil)");
  return *m;
}

// Same tokenizer (every token string and the special ids) and the same vocabulary width (distributions are
// compared id by id on sharded logits).
void check_shared_tokenizer(const config::StageConfig& stage, const ModelSource& student, const ModelSource& teacher,
                            const char* role) {
  const auto a = data::load_tokenizer(student.tokenizer_dir), b = data::load_tokenizer(teacher.tokenizer_dir);
  std::string why;
  if (a->vocab_size() != b->vocab_size()) {
    why = "its tokenizer has " + std::to_string(b->vocab_size()) + " tokens, the student's " +
          std::to_string(a->vocab_size());
  } else if (a->bos_id() != b->bos_id() || a->eos_id() != b->eos_id() || a->pad_id() != b->pad_id()) {
    why = "its BOS/EOS/PAD ids differ from the student's";
  } else {
    for (int id = 0; id < a->vocab_size() && why.empty(); ++id) {
      const auto x = a->id_to_token(id), y = b->id_to_token(id);
      if (x != y) {
        why = "token id " + std::to_string(id) + " is '" + y.value_or("(none)") + "' for it and '" +
              x.value_or("(none)") + "' for the student";
      }
    }
  }
  if (why.empty() && teacher.config.vocab_size != student.config.vocab_size) {
    why = "its vocab_size is " + std::to_string(teacher.config.vocab_size) + ", the student's " +
          std::to_string(student.config.vocab_size);
  }
  if (!why.empty()) {
    throw UsageError("stage '" + stage.name + "': " + role + " '" + teacher.name + "' does not share the student's ('" +
                     student.name + "') tokenizer: " + why +
                     ". Distillation compares the two distributions token id by token id, so teacher and student "
                     "must use one tokenizer");
  }
}

namespace {

// Whether the first non-empty line of a JSONL file is an object with `field` (false when unreadable: the reader
// reports that).
bool first_line_has(const std::string& path, const char* field) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const auto j = nlohmann::json::parse(line);
      return j.is_object() && j.contains(field);
    } catch (const nlohmann::json::exception&) {
      return false;
    }
  }
  return false;
}

}  // namespace

// The examples of a distill stage: responses (NLL/KD target, second response) per method.
ResponseSet load_distill_data(const std::string& path, const config::StageConfig& stage, DistillMethod method,
                              const data::Tokenizer& tok, const ModelSource& src) {
  if (method == DistillMethod::dckd) return load_pair_data(path, stage, tok, src.chat_template, src.weights_dir);
  if (method == DistillMethod::adpa) {
    // The student's response ŷ is "completion" (what a generate stage adds to a pairs file); a file without it is
    // read as pairs whose "rejected" holds ŷ, the layout of the released ADPA code.
    if (!first_line_has(path, "completion")) {
      return encode_responses(path, stage, tok, src.chat_template, src.weights_dir,
                              read_stage_examples(path, stage, data::DataKind::kPreference), 2,
                              [](const data::Example& ex) {
                                return std::vector<const data::Text*>{&*ex.chosen, &*ex.rejected};
                              });
    }
    const auto examples = read_stage_examples(path, stage, data::DataKind::kSft);
    for (const auto& ex : examples) {
      if (!ex.chosen) {
        throw DataError(path + ":" + std::to_string(ex.line) +
                        ": chosen: missing field (ADPA trains NLL on the reference answer \"chosen\" and the "
                        "advantage term on the student's own \"completion\")");
      }
    }
    return encode_responses(path, stage, tok, src.chat_template, src.weights_dir, examples, 2,
                            [](const data::Example& ex) {
                              return std::vector<const data::Text*>{&*ex.chosen, &*ex.completion};
                            });
  }
  // kd, aligndistil: completions, or the chosen responses of pairs.
  const auto examples = read_stage_examples(path, stage, data::DataKind::kAuto);
  for (const auto& ex : examples) {
    if (!ex.completion && !ex.chosen) {
      throw DataError(path + ":" + std::to_string(ex.line) + ": completion: missing field (or \"chosen\" of a pair)");
    }
  }
  return encode_responses(path, stage, tok, src.chat_template, src.weights_dir, examples, 1,
                          [](const data::Example& ex) {
                            return std::vector<const data::Text*>{ex.completion ? &*ex.completion : &*ex.chosen};
                          });
}

}  // namespace aligntrain::stages
