// The safetensors format (https://github.com/huggingface/safetensors), without LibTorch: a memory-mapped reader that
// checks every byte of the header before handing out a pointer, an atomic writer whose output is byte-for-byte what
// the Python library writes for the same tensors, and Hugging Face sharded checkpoints
// (model.safetensors.index.json + model-0000k-of-0000n.safetensors).
//
// File layout: an 8-byte little-endian header length N; N bytes of JSON
//   {"__metadata__": {str: str}, NAME: {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}, ...}
// padded with spaces; then the data buffer. Offsets are relative to the data buffer. The reader requires, like the
// Rust crate, that the tensors tile the data buffer exactly: no overlaps, no holes, no trailing bytes.
//
// Every error is a SafetensorsError whose message names the file and, where there is one, the tensor.
// The LibTorch conversions live in safetensors_torch.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/errors.h"

namespace aligntrain::model {

// A malformed or unreadable safetensors file or index, or a failed write. A DataError (exit code 3).
// what() is "FILE: tensor \"NAME\": PROBLEM", or "FILE: PROBLEM" when no single tensor is at fault.
class SafetensorsError : public DataError {
 public:
  SafetensorsError(std::string file, std::string tensor, const std::string& problem);
  const std::string& file() const noexcept { return file_; }
  const std::string& tensor() const noexcept { return tensor_; }  // empty when no single tensor is at fault

 private:
  std::string file_;
  std::string tensor_;
};

// ---- dtypes ----------------------------------------------------------------------------------------------------

// The supported element types. The enumerator order is the Rust crate's Dtype order, which its writer (and ours)
// sorts by, largest first, so that every tensor starts at a multiple of its element size.
enum class Dtype : uint8_t { kBool, kU8, kI8, kI16, kF16, kBF16, kI32, kF32, kF64, kI64 };

std::string_view dtype_name(Dtype dtype);  // "F32", "BF16", ...
size_t dtype_size(Dtype dtype);            // bytes per element
// The dtype spelled `name`, or nullopt for a name that is unknown or known but unsupported (F8_E4M3, U16, ...).
std::optional<Dtype> dtype_from_name(std::string_view name);

// ---- reading -----------------------------------------------------------------------------------------------------

using Metadata = std::map<std::string, std::string>;  // the header's "__metadata__"

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;  // [] for a scalar
  uint64_t begin = 0;          // byte range [begin, end) in the data buffer
  uint64_t end = 0;

  uint64_t nbytes() const { return end - begin; }
  int64_t numel() const;  // product of shape (checked by the parser not to overflow)
};

struct ByteSpan {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

struct Header {
  std::vector<TensorInfo> tensors;  // sorted by data offset (file order)
  Metadata metadata;
  uint64_t data_offset = 0;  // where the data buffer starts in the file: 8 + header length
  uint64_t data_size = 0;    // bytes in the data buffer
};

// Parses the JSON text of a header and checks each entry on its own: a known supported dtype, a shape of
// non-negative ints whose byte size does not overflow, data_offsets [begin, end] with end - begin equal to that byte
// size, no duplicate keys, no unknown fields, string metadata. Does not check the layout (see parse_header).
// `file_label` is the file name used in error messages. Pure: no I/O.
Header parse_header_json(const char* json, size_t size, const std::string& file_label);

// Parses a whole file image `data[0, size)`: the 8-byte length (at most 100 MB, within the file), the JSON header
// (parse_header_json), and the layout: every tensor inside the data buffer (checked tensor by tensor first, so the
// error names the tensor whose offsets are out of range), then no overlaps (naming the later tensor and the one it
// overlaps), no holes and no trailing bytes (naming the byte range and the tensors around it, not blaming either:
// a missing header entry looks the same). After it returns, data + data_offset + t.begin .. t.end is in bounds for
// every tensor t. Pure: no I/O.
Header parse_header(const uint8_t* data, size_t size, const std::string& file_label);

// A whole file mapped read-only (PROT_READ, MAP_PRIVATE): pages are read lazily and shared with the page cache, and
// the mapping costs no memory commit however large the file. Unmapped in the destructor. Move-only. As with any
// mmap reader, a file truncated by another process while mapped raises SIGBUS when the lost pages are touched.
class MappedFile {
 public:
  static MappedFile open(const std::string& path);  // throws SafetensorsError naming `path`

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void reset() noexcept;

  std::string path_;
  uint8_t* data_ = nullptr;  // null for an empty file
  size_t size_ = 0;
};

// One safetensors file, mapped and validated by open(). Move-only.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);

  SafetensorsFile(SafetensorsFile&&) = default;
  SafetensorsFile& operator=(SafetensorsFile&&) = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }  // file order
  const Metadata& metadata() const { return header_.metadata; }
  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  const TensorInfo& at(std::string_view name) const;    // throws SafetensorsError naming the file and tensor
  // The tensor's bytes inside the mapping (little-endian, row-major). Valid while this object or a keepalive() lives.
  // Throws if `info` does not lie inside this file's data buffer.
  ByteSpan bytes(const TensorInfo& info) const;
  // Shares ownership of the mapping, for zero-copy views that may outlive this object.
  std::shared_ptr<const void> keepalive() const { return map_; }

 private:
  SafetensorsFile(std::shared_ptr<const MappedFile> map, Header header);

  std::string path_;
  std::shared_ptr<const MappedFile> map_;
  Header header_;
  std::map<std::string, size_t, std::less<>> by_name_;  // name -> index in header_.tensors
};

// ---- writing -----------------------------------------------------------------------------------------------------

// A tensor to write: `data` points at numel(shape) * dtype_size(dtype) bytes, little-endian, row-major.
struct TensorView {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // may be null only when the tensor has no bytes
};

struct EncodedHeader {
  std::string bytes;          // the 8-byte length followed by the space-padded JSON header
  std::vector<size_t> order;  // indices into the input tensors in the order their data follows the header
};

// The bytes the writer puts before the data, laid out as the Python library does: tensors sorted by dtype (largest
// first, see Dtype) then name, "__metadata__" first with sorted keys (omitted when empty), JSON padded with spaces to
// a multiple of 8 bytes. Throws SafetensorsError (naming `file_label`) for an empty, duplicate or "__metadata__"
// name, a negative or overflowing shape, or a name that is not UTF-8.
EncodedHeader encode_header(const std::vector<TensorView>& tensors, const Metadata& metadata,
                            const std::string& file_label);

// Writes `path` atomically: `path`.tmp is written, fsynced, then renamed over `path` (and the folder fsynced).
// The data of tensor i is read from tensors[i].data.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const Metadata& metadata = {});

// ---- Hugging Face model folders (single file or sharded) ------------------------------------------------------

inline constexpr const char* kSafetensorsFileName = "model.safetensors";
inline constexpr const char* kSafetensorsIndexName = "model.safetensors.index.json";

// "model-00001-of-00003.safetensors" for shard 0 of 3 (the transformers / huggingface_hub naming).
std::string shard_file_name(size_t shard, size_t num_shards);

// Greedy split in input order, as huggingface_hub.split_state_dict_into_shards_factory does: a tensor larger than
// `max_shard_bytes` gets a shard of its own; otherwise a new shard starts when the tensor would tip the current one
// over the limit. Returns the tensor indices of each shard. max_shard_bytes must be > 0.
std::vector<std::vector<size_t>> plan_shards(const std::vector<uint64_t>& tensor_bytes, uint64_t max_shard_bytes);

// Writes `tensors` into folder `dir` (created if missing) as transformers' save_pretrained does: model.safetensors
// when everything fits one shard, else model-0000k-of-0000n.safetensors plus model.safetensors.index.json
// ({"metadata": {"total_parameters": N, "total_size": BYTES}, "weight_map": {tensor: file}}, written last, formatted
// as transformers formats it). `metadata` goes into every
// shard. Files of an earlier save in the other layout (model.safetensors, the index, model-*-of-*.safetensors not
// written now) are removed afterwards. Returns the names of the files written, shards first.
std::vector<std::string> write_safetensors_dir(const std::string& dir, const std::vector<TensorView>& tensors,
                                               uint64_t max_shard_bytes, const Metadata& metadata = {});

// The tensors of a model folder across all its shards. Move-only; Entry pointers stay valid while it lives.
class SafetensorsDir {
 public:
  struct Entry {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };

  // Opens DIR/model.safetensors.index.json and its shards, or DIR/model.safetensors; an error if neither or both.
  static SafetensorsDir open(const std::string& dir);
  // Opens an index and every shard it names (paths relative to the index's folder). Errors: the index is not
  // {"weight_map": {str: str}, "metadata": {...}?}; it names a missing or unsafe (absolute, "..") file; a tensor it
  // lists is not in that shard; a shard holds a tensor the index does not list; a tensor is in two shards.
  static SafetensorsDir open_index(const std::string& index_path);
  // A single file as a folder of one shard.
  static SafetensorsDir open_file(const std::string& path);

  SafetensorsDir(SafetensorsDir&&) = default;
  SafetensorsDir& operator=(SafetensorsDir&&) = default;

  const std::vector<SafetensorsFile>& files() const { return files_; }  // shards in file-name order
  std::vector<std::string> names() const;  // every tensor, sorted
  size_t size() const { return by_name_.size(); }
  std::optional<Entry> find(std::string_view name) const;  // nullopt when absent
  Entry at(std::string_view name) const;  // throws SafetensorsError naming the folder and tensor

 private:
  explicit SafetensorsDir(std::string label) : label_(std::move(label)) {}

  std::string label_;  // the index or file path, for messages
  std::vector<SafetensorsFile> files_;
  std::map<std::string, std::pair<size_t, size_t>, std::less<>> by_name_;  // name -> (file, tensor index)
};

}  // namespace aligntrain::model
