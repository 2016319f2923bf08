// Hugging Face model folders in and out: config.json + model.safetensors (or shards + index) + tokenizer files.
// Every tensor goes through the name table (hf_names.h): a missing tensor, an unexpected one or a wrong shape is a
// DataError naming the folder and the tensor. Under tensor parallelism each rank reads only its own slices.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "trainer/model/model_config.h"
#include "trainer/model/transformer.h"

namespace aligntrain::model {

// Fills every parameter of the model's parameter set (this rank's slices) from the checkpoint in `dir`; a tensor in
// `dir` that is not in the set is an error (unless hf_names.h calls it an ignorable extra).
void load_hf_weights(CausalLM& model, const std::string& dir, int64_t tp_rank, int64_t tp_size);

// Random initialisation as transformers does it (normal(0, initializer_range) for linear and embedding weights, ones
// for norms, zeros for biases), from `seed`. Each full tensor is drawn from its own generator seeded by (seed, its
// index in the parameter set) and then sliced, so every tensor-parallel layout gives the same model.
void init_weights(CausalLM& model, uint64_t seed, int64_t tp_rank, int64_t tp_size);

// Writes an HF model folder that transformers loads as is: config.json, generation_config.json,
// model.safetensors (sharded above `max_shard_bytes`), and the tokenizer files found in `tokenizer_dir` (if not
// empty). Written to a temporary sibling folder and renamed into place, so `dir` is never half-written.
// `tensors` are the full tensors (gathered) in `config`'s table order; their dtype decides config.torch_dtype.
void save_hf_model(const std::string& dir, ModelConfig config, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                   const std::string& tokenizer_dir, uint64_t max_shard_bytes = 2ull << 30);

// Names of the tokenizer files copied by save_hf_model.
const std::vector<std::string>& tokenizer_file_names();

}  // namespace aligntrain::model
