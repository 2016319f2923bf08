// The data side of a distill stage: which method its loss names, the check that teacher and student share one
// tokenizer, and the examples each method reads (responses per example: the NLL/KD target, and the second response
// of DCKD and ADPA).
#pragma once

#include <string>

#include "config/schema.h"
#include "data/tokenizer.h"
#include "trainer/stages/models.h"
#include "trainer/stages/responses.h"

namespace aligntrain::stages {

enum class DistillMethod { kd, dckd, adpa, aligndistil };

// The stage's one distillation loss type; UsageError for none, several, or a non-distillation type.
DistillMethod distill_method_of(const config::StageConfig& stage);

// Teacher and student must number tokens alike. UsageError naming the first difference otherwise.
void check_shared_tokenizer(const config::StageConfig& stage, const ModelSource& student, const ModelSource& teacher,
                            const char* role);

// kd, aligndistil: one response ("completion", or "chosen" of pairs). dckd: (chosen, rejected). adpa: (chosen, the
// student's "completion"), or pairs whose "rejected" holds it when the file has no "completion".
ResponseSet load_distill_data(const std::string& path, const config::StageConfig& stage, DistillMethod method,
                              const data::Tokenizer& tok, const ModelSource& src);

}  // namespace aligntrain::stages
