// Conversions between safetensors files and at::Tensor. Only narrow ATen headers: <torch/torch.h> would triple the
// compile time of this file.
#include "trainer/model/safetensors_torch.h"

#include <cstring>

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/ScalarType.h>
#include <c10/core/TensorOptions.h>

namespace aligntrain::model {
namespace {

[[noreturn]] void fail(const std::string& file, const std::string& tensor, const std::string& problem) {
  throw SafetensorsError(file, tensor, problem);
}

// A BOOL tensor's bytes must be 0 or 1: any other byte in an at::kBool tensor is undefined behaviour in C++.
void check_bool_bytes(const ByteSpan& bytes, const SafetensorsFile& file, const TensorInfo& info) {
  for (size_t i = 0; i < bytes.size; ++i) {
    if (bytes.data[i] > 1) {
      fail(file.path(), info.name,
           "BOOL element " + std::to_string(i) + " is byte " + std::to_string(bytes.data[i]) + ", expected 0 or 1");
    }
  }
}

std::vector<TensorView> views_of(const NamedTensors& tensors, const std::string& file) {
  std::vector<TensorView> views;
  views.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) fail(file, name, "is an undefined tensor");
    if (tensor.layout() != at::kStrided) fail(file, name, "is not a dense (strided) tensor");
    if (!tensor.device().is_cpu()) fail(file, name, "is on " + tensor.device().str() + "; move it to the CPU first");
    if (!tensor.is_contiguous()) fail(file, name, "is not contiguous; call .contiguous() first");
    views.push_back({name, to_dtype(tensor.scalar_type(), file, name), tensor.sizes().vec(), tensor.data_ptr()});
  }
  return views;
}

}  // namespace

at::ScalarType to_scalar_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::kBool: return at::kBool;
    case Dtype::kU8: return at::kByte;
    case Dtype::kI8: return at::kChar;
    case Dtype::kI16: return at::kShort;
    case Dtype::kF16: return at::kHalf;
    case Dtype::kBF16: return at::kBFloat16;
    case Dtype::kI32: return at::kInt;
    case Dtype::kF32: return at::kFloat;
    case Dtype::kF64: return at::kDouble;
    case Dtype::kI64: return at::kLong;
  }
  throw std::invalid_argument("invalid aligntrain::model::Dtype value");
}

Dtype to_dtype(at::ScalarType type, const std::string& file, const std::string& tensor) {
  switch (type) {
    case at::kBool: return Dtype::kBool;
    case at::kByte: return Dtype::kU8;
    case at::kChar: return Dtype::kI8;
    case at::kShort: return Dtype::kI16;
    case at::kHalf: return Dtype::kF16;
    case at::kBFloat16: return Dtype::kBF16;
    case at::kInt: return Dtype::kI32;
    case at::kFloat: return Dtype::kF32;
    case at::kDouble: return Dtype::kF64;
    case at::kLong: return Dtype::kI64;
    default: break;
  }
  fail(file, tensor, std::string("dtype ") + c10::toString(type) + " cannot be stored (supported: float32, "
                     "bfloat16, float16, float64, int64, int32, int16, int8, uint8, bool)");
}

at::Tensor to_tensor(const SafetensorsFile& file, const TensorInfo& info, bool copy) {
  const ByteSpan bytes = file.bytes(info);  // checks that `info` is a tensor of `file`
  const auto options = at::TensorOptions().dtype(to_scalar_type(info.dtype)).device(at::kCPU);
  if (info.dtype == Dtype::kBool) check_bool_bytes(bytes, file, info);
  if (copy || bytes.size == 0) {
    at::Tensor out = at::empty(info.shape, options);
    if (bytes.size > 0) std::memcpy(out.data_ptr(), bytes.data, bytes.size);
    return out;
  }
  const size_t alignment = dtype_size(info.dtype);
  if (reinterpret_cast<uintptr_t>(bytes.data) % alignment != 0) {
    fail(file.path(), info.name,
         "data is not aligned to its " + std::to_string(alignment) +
             "-byte element size, so it cannot be viewed without a copy; load it with copy = true");
  }
  std::shared_ptr<const void> keepalive = file.keepalive();
  return at::from_blob(
      const_cast<uint8_t*>(bytes.data), info.shape, [keepalive](void*) mutable { keepalive.reset(); }, options);
}

at::Tensor to_tensor(const SafetensorsDir& dir, std::string_view name, bool copy) {
  const SafetensorsDir::Entry entry = dir.at(name);
  return to_tensor(*entry.file, *entry.info, copy);
}

NamedTensors load_safetensors(const std::string& path) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  NamedTensors out;
  out.reserve(file.tensors().size());
  for (const TensorInfo& info : file.tensors()) out.emplace_back(info.name, to_tensor(file, info));
  return out;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  write_safetensors(path, views_of(tensors, path), metadata);
}

std::vector<std::string> save_safetensors_dir(const std::string& dir, const NamedTensors& tensors,
                                              uint64_t max_shard_bytes, const Metadata& metadata) {
  return write_safetensors_dir(dir, views_of(tensors, dir), max_shard_bytes, metadata);
}

}  // namespace aligntrain::model
