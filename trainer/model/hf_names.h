// The one table of Hugging Face tensor names for a Llama-family config: every tensor a checkpoint of that config
// holds, its full shape, and how tensor parallelism splits it. Module parameter names equal these names, so the
// table is also the map from checkpoint tensors to modules. Loading, saving, initialisation and TP slicing all
// walk this table; a checkpoint tensor not in it is an error unless it is a known optional extra.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trainer/model/model_config.h"

namespace aligntrain::model {

enum class Split {
  kReplicated,  // every rank holds the whole tensor (norms, row-parallel biases)
  kRows,        // dim 0 split: column-parallel weights and biases, vocab-parallel embedding / LM head
  kColumns,     // dim 1 split: row-parallel weights
};

enum class Init { kNormal, kZeros, kOnes };

struct TensorSpec {
  std::string name;             // e.g. "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;   // full, unsharded
  Split split = Split::kReplicated;
  Init init = Init::kNormal;
};

// Every tensor of a checkpoint of `config`, in a fixed order (embeddings, layers in order, final norm, LM head).
// With tied embeddings there is no lm_head.weight.
std::vector<TensorSpec> hf_tensor_table(const ModelConfig& config);

// Extra tensors that checkpoints may carry and that are ignored on load: rotary inv_freq buffers, and
// lm_head.weight when the embeddings are tied (some exporters write it anyway).
bool is_ignorable_extra(const std::string& name, const ModelConfig& config);

// "replicated", "rows", "columns" (checkpoints record each parameter's split by name); nullopt for another name.
const char* split_name(Split split);
std::optional<Split> split_from_name(const std::string& name);

// The dimension a split divides (0 for kRows, 1 for kColumns), or -1 for a replicated tensor.
int split_dim(Split split);

// This rank's shape of a tensor under `tp` ranks (the full shape for replicated tensors).
std::vector<int64_t> local_shape(const TensorSpec& spec, int64_t tp);

}  // namespace aligntrain::model
