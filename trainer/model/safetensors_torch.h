// LibTorch conversions for safetensors.h: a tensor from a mapped file (copied, or a zero-copy read-only view that
// keeps the mapping alive), and the writers from named CPU tensors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "trainer/model/safetensors.h"

namespace aligntrain::model {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

at::ScalarType to_scalar_type(Dtype dtype);
// The safetensors dtype of `type`; throws SafetensorsError naming `file` and `tensor` if there is none.
Dtype to_dtype(at::ScalarType type, const std::string& file, const std::string& tensor);

// The tensor `info` of `file` as a CPU tensor of its dtype and shape.
// copy = true: a fresh tensor owning its memory (BOOL data is checked to be 0 or 1).
// copy = false: a view of the mapping, no copy. It keeps the mapping alive (it may outlive `file`) but is read-only:
// writing into it faults. Throws if the data is not aligned to the element size (use copy = true then).
at::Tensor to_tensor(const SafetensorsFile& file, const TensorInfo& info, bool copy = true);
at::Tensor to_tensor(const SafetensorsDir& dir, std::string_view name, bool copy = true);

// Every tensor of the file at `path`, copied, in file order.
NamedTensors load_safetensors(const std::string& path);

// write_safetensors / write_safetensors_dir for named tensors, which must be contiguous CPU tensors of a supported
// dtype (F32, BF16, F16, and the integer, bool and F64 dtypes of Dtype). HF model folders use {{"format", "pt"}}.
void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {});
std::vector<std::string> save_safetensors_dir(const std::string& dir, const NamedTensors& tensors,
                                              uint64_t max_shard_bytes, const Metadata& metadata = {});

}  // namespace aligntrain::model
