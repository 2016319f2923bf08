// The safetensors reader, writer and sharded-folder support declared in safetensors.h. Parsing is pure (bytes in,
// Header out) so that it can be fuzzed; only MappedFile (POSIX mmap), the writers (common/atomic_file.h) and
// SafetensorsDir touch the file system. (std::filesystem is safe here: the build binds it to the system libstdc++
// rather than LibTorch's exported copy, which test/model/filesystem_test checks.)
#include "trainer/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader hands out raw bytes and needs a little-endian host"
#endif

namespace aligntrain::model {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr size_t kLengthPrefixBytes = 8;
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the Rust crate's MAX_HEADER_SIZE
constexpr uint64_t kMaxIndexBytes = 100'000'000;
constexpr size_t kMaxQuotedChars = 200;  // longer names and values are cut in messages

// ---- messages ----------------------------------------------------------------------------------------------------

// `text` in double quotes, with quotes, backslashes and control bytes escaped and long text cut, for messages.
std::string in_quotes(std::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < kMaxQuotedChars; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMaxQuotedChars) out += "...";
  return out + "\"";
}

// A JSON value as it appeared, cut short, for messages.
std::string describe(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 60) + "...";
  return text;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string range_string(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

std::string message(const std::string& file, const std::string& tensor, const std::string& problem) {
  if (tensor.empty()) return file + ": " + problem;
  return file + ": tensor " + in_quotes(tensor) + ": " + problem;
}

[[noreturn]] void fail(const std::string& file, const std::string& tensor, const std::string& problem) {
  throw SafetensorsError(file, tensor, problem);
}

[[noreturn]] void fail_errno(const std::string& file, const std::string& what) {
  fail(file, "", what + ": " + std::strerror(errno));
}

// ---- dtypes ------------------------------------------------------------------------------------------------------

struct DtypeEntry {
  Dtype dtype;
  std::string_view name;
  size_t size;
};

// Indexed by the Dtype enumerator.
constexpr DtypeEntry kDtypes[] = {
    {Dtype::kBool, "BOOL", 1}, {Dtype::kU8, "U8", 1},     {Dtype::kI8, "I8", 1},     {Dtype::kI16, "I16", 2},
    {Dtype::kF16, "F16", 2},   {Dtype::kBF16, "BF16", 2}, {Dtype::kI32, "I32", 4},   {Dtype::kF32, "F32", 4},
    {Dtype::kF64, "F64", 8},   {Dtype::kI64, "I64", 8},
};

// Dtypes of the format that this reader does not support.
constexpr std::string_view kUnsupportedDtypes[] = {"U16",     "U32",     "U64",     "F8_E5M2", "F8_E4M3",
                                                   "F8_E8M0", "F4",      "F6_E2M3", "F6_E3M2", "C64"};

const DtypeEntry& dtype_entry(Dtype dtype) {
  const auto i = static_cast<size_t>(dtype);
  if (i >= std::size(kDtypes)) throw std::invalid_argument("invalid aligntrain::model::Dtype value");
  return kDtypes[i];
}

std::string supported_dtype_list() {
  std::string out;
  for (const DtypeEntry& e : kDtypes) out += (out.empty() ? "" : ", ") + std::string(e.name);
  return out;
}

// numel(shape) * dtype_size(dtype), or nullopt when a dimension is negative, numel exceeds int64 or the byte count
// exceeds uint64. Like the Rust crate, any intermediate overflow counts, even if a later dimension is 0.
std::optional<uint64_t> checked_byte_size(const std::vector<int64_t>& shape, Dtype dtype) {
  uint64_t numel = 1;
  for (int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(dim), &numel)) return std::nullopt;
  }
  uint64_t bytes = 0;
  if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(dtype)), &bytes)) {
    return std::nullopt;
  }
  return bytes;
}

// ---- strict JSON ---------------------------------------------------------------------------------------------------

// Thrown from inside nlohmann's parser callback; the caller turns it into a SafetensorsError with context.
struct JsonStructureError {
  enum Kind { kDuplicateKey, kTooDeep } kind;
  std::vector<std::string> path;  // the keys leading to the offending value; for kDuplicateKey, ends with that key
};

// Parses JSON like nlohmann::json::parse but rejects duplicate keys (which nlohmann would silently overwrite) and
// containers nested deeper than `max_depth` (the root container is depth 1). Throws Json::exception on bad syntax.
Json parse_json_strict(const char* text, size_t size, int max_depth) {
  struct Frame {
    std::set<std::string> keys;
    std::string current_key;
  };
  std::vector<Frame> objects;
  auto path = [&objects]() {
    std::vector<std::string> keys;
    for (const Frame& f : objects) keys.push_back(f.current_key);
    return keys;
  };
  auto guard = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (depth >= max_depth) throw JsonStructureError{JsonStructureError::kTooDeep, path()};
        if (event == Json::parse_event_t::object_start) objects.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        objects.pop_back();
        break;
      case Json::parse_event_t::key: {
        Frame& frame = objects.back();
        frame.current_key = parsed.get<std::string>();
        if (!frame.keys.insert(frame.current_key).second) throw JsonStructureError{JsonStructureError::kDuplicateKey, path()};
        break;
      }
      default:
        break;
    }
    return true;
  };
  return Json::parse(text, text + size, guard, /*allow_exceptions=*/true, /*ignore_comments=*/false);
}

// nlohmann's parse_error text without its "[json.exception...] " prefix, printable and bounded.
std::string json_error_text(const Json::exception& e) {
  std::string text = e.what();
  if (const size_t close = text.find("] "); text.rfind("[json.exception", 0) == 0 && close != std::string::npos) {
    text = text.substr(close + 2);
  }
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  if (text.size() > 300) text = text.substr(0, 300) + "...";
  return text;
}

// Reports a duplicate key or over-deep nesting in a header, naming the tensor when there is one.
[[noreturn]] void fail_header_structure(const JsonStructureError& e, const std::string& file) {
  const bool duplicate = e.kind == JsonStructureError::kDuplicateKey;
  if (e.path.empty()) fail(file, "", "header nests deeper than a safetensors header can");
  const std::string& top = e.path[0];
  if (top == "__metadata__") {
    const std::string key = e.path.size() >= 2 ? " key " + in_quotes(e.path[1]) : "";
    fail(file, "", "__metadata__" + key + (duplicate ? " appears twice" : " nests deeper than a string"));
  }
  if (e.path.size() == 1) fail(file, top, duplicate ? "appears twice in the header" : "entry nests too deeply");
  fail(file, top, "field " + in_quotes(e.path[1]) + (duplicate ? " appears twice" : " nests too deeply"));
}

// ---- header entries ----------------------------------------------------------------------------------------------

Dtype parse_dtype_field(const Json& value, const std::string& file, const std::string& tensor) {
  if (!value.is_string()) fail(file, tensor, "dtype is " + describe(value) + ", expected a string such as \"F32\"");
  const std::string& name = value.get_ref<const std::string&>();
  if (std::optional<Dtype> dtype = dtype_from_name(name)) return *dtype;
  const bool known = std::find(std::begin(kUnsupportedDtypes), std::end(kUnsupportedDtypes), name) !=
                     std::end(kUnsupportedDtypes);
  fail(file, tensor,
       (known ? "dtype " + in_quotes(name) + " is not supported" : "unknown dtype " + in_quotes(name)) +
           " (supported: " + supported_dtype_list() + ")");
}

std::vector<int64_t> parse_shape_field(const Json& value, const std::string& file, const std::string& tensor) {
  if (!value.is_array()) fail(file, tensor, "shape is " + describe(value) + ", expected a list of integers");
  std::vector<int64_t> shape;
  shape.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const Json& dim = value[i];
    const bool ok = dim.is_number_unsigned() &&
                    dim.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (!ok) {
      fail(file, tensor,
           "shape[" + std::to_string(i) + "] is " + describe(dim) + ", expected a non-negative integer below 2^63");
    }
    shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));
  }
  return shape;
}

std::pair<uint64_t, uint64_t> parse_offsets_field(const Json& value, const std::string& file,
                                                  const std::string& tensor) {
  const bool ok = value.is_array() && value.size() == 2 && value[0].is_number_unsigned() &&
                  value[1].is_number_unsigned();
  if (!ok) fail(file, tensor, "data_offsets is " + describe(value) + ", expected [begin, end] (non-negative integers)");
  const auto begin = value[0].get<uint64_t>();
  const auto end = value[1].get<uint64_t>();
  if (begin > end) fail(file, tensor, "data_offsets " + range_string(begin, end) + " have begin > end");
  return {begin, end};
}

TensorInfo parse_entry(const std::string& name, const Json& entry, const std::string& file) {
  if (!entry.is_object()) {
    fail(file, name, "entry is " + describe(entry) + ", expected an object with dtype, shape and data_offsets");
  }
  for (const auto& item : entry.items()) {
    const std::string& field = item.key();
    if (field != "dtype" && field != "shape" && field != "data_offsets") {
      fail(file, name, "unknown field " + in_quotes(field) + " (expected dtype, shape, data_offsets)");
    }
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(field)) fail(file, name, std::string("missing field \"") + field + "\"");
  }
  TensorInfo info;
  info.name = name;
  info.dtype = parse_dtype_field(entry.at("dtype"), file, name);
  info.shape = parse_shape_field(entry.at("shape"), file, name);
  std::tie(info.begin, info.end) = parse_offsets_field(entry.at("data_offsets"), file, name);

  const std::optional<uint64_t> expected = checked_byte_size(info.shape, info.dtype);
  if (!expected) {
    fail(file, name, "shape " + shape_string(info.shape) + " is too large: its element or byte count overflows");
  }
  if (info.nbytes() != *expected) {
    fail(file, name,
         "data_offsets " + range_string(info.begin, info.end) + " hold " + std::to_string(info.nbytes()) +
             " bytes but dtype " + std::string(dtype_name(info.dtype)) + " and shape " + shape_string(info.shape) +
             " need " + std::to_string(*expected));
  }
  return info;
}

Metadata parse_metadata(const Json& value, const std::string& file) {
  Metadata metadata;
  if (value.is_null()) return metadata;  // the Rust crate accepts null
  if (!value.is_object()) fail(file, "", "__metadata__ is " + describe(value) + ", expected an object of strings");
  for (const auto& item : value.items()) {
    if (!item.value().is_string()) {
      fail(file, "", "__metadata__ key " + in_quotes(item.key()) + " is " + describe(item.value()) + ", expected a string");
    }
    metadata.emplace(item.key(), item.value().get<std::string>());
  }
  return metadata;
}

// Every tensor must lie inside the data buffer, and together (sorted by offset) they must cover it exactly. Each
// tensor's own offsets are checked first (parse_entry has checked begin <= end and the size), so that a tensor whose
// offsets point past the buffer is reported by name rather than as a hole where its data should have been. A hole or
// trailing bytes belong to no tensor (a header entry is missing, or some offsets are wrong): the message names the
// tensors around it without blaming either.
void check_layout(const std::vector<TensorInfo>& tensors, uint64_t data_size, const std::string& file) {
  for (const TensorInfo& t : tensors) {
    if (t.end > data_size) {
      fail(file, t.name,
           "data_offsets " + range_string(t.begin, t.end) + " end past the data buffer, which has " +
               std::to_string(data_size) + " bytes (truncated file or wrong offsets)");
    }
  }
  const std::string missing = "; is a tensor's entry missing from the header, or are some data_offsets wrong?";
  uint64_t covered = 0;  // the data buffer [0, covered) is accounted for
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : tensors) {
    if (t.begin < covered) {
      fail(file, t.name,
           "data_offsets " + range_string(t.begin, t.end) + " overlap tensor " + in_quotes(previous->name) + " at " +
               range_string(previous->begin, previous->end));
    }
    if (t.begin > covered) {
      fail(file, "",
           "data bytes [" + std::to_string(covered) + ", " + std::to_string(t.begin) + ") belong to no tensor (" +
               (previous ? "between tensor " + in_quotes(previous->name) + ", which ends at " +
                               std::to_string(previous->end) + ", and "
                         : "before ") +
               "tensor " + in_quotes(t.name) + ", which starts at " + std::to_string(t.begin) + ")" + missing);
    }
    covered = t.end;
    previous = &t;
  }
  if (covered != data_size) {
    const std::string trailing = "the data buffer has " + std::to_string(data_size - covered) + " bytes after ";
    if (!previous) fail(file, "", "the header lists no tensors but " + trailing + "the header");
    fail(file, "",
         trailing + "the last tensor's data (tensor " + in_quotes(previous->name) + " ends at " +
             std::to_string(previous->end) + " of " + std::to_string(data_size) + ")" + missing);
  }
}

uint64_t read_le64(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

void append_le64(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

// ---- writing helpers -------------------------------------------------------------------------------------------------

// `text` as a JSON string literal, escaped exactly as serde_json (the Python library's writer) does.
std::string json_string(const std::string& text, const std::string& file, const std::string& what) {
  try {
    return Json(text).dump();
  } catch (const Json::type_error&) {
    fail(file, "", what + " " + in_quotes(text) + " is not valid UTF-8");
  }
}

// ---- paths -----------------------------------------------------------------------------------------------------

std::string join_path(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

bool path_exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// mkdir -p.
void make_dirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "", "cannot create folder: " + ec.message());
  if (!fs::is_directory(dir, ec)) fail(dir, "", "is not a folder");
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> names;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec) fail(dir, "", "cannot list folder: " + ec.message());
  return names;
}

// [1,2,3], as serde_json prints integer lists.
template <typename Int>
std::string json_ints(const std::vector<Int>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + std::to_string(values[i]);
  return out + "]";
}

// Writes through the shared durable writer (common/atomic_file.h), its failures reported as SafetensorsError
// (exit code 3) like every other error of this file.
template <typename Write>
void write_durably(Write&& write) {
  try {
    write();
  } catch (const FileWriteError& e) {
    fail(e.path(), "", e.problem());
  }
}

std::string read_small_file(const std::string& path, uint64_t max_bytes) {
  const MappedFile file = MappedFile::open(path);
  if (file.size() > max_bytes) {
    fail(path, "", "is " + std::to_string(file.size()) + " bytes, more than the " + std::to_string(max_bytes) +
                       "-byte limit");
  }
  return std::string(reinterpret_cast<const char*>(file.data()), file.size());
}

// "model-00001-of-00003.safetensors" and the like.
bool is_shard_file_name(const std::string& name) {
  static constexpr std::string_view kPattern = "model-#####-of-#####.safetensors";
  if (name.size() != kPattern.size()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const bool ok = kPattern[i] == '#' ? (name[i] >= '0' && name[i] <= '9') : name[i] == kPattern[i];
    if (!ok) return false;
  }
  return true;
}

void remove_file(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);  // a missing file is no error
  if (ec) fail(path, "", "cannot remove stale file: " + ec.message());
}

// Removes what an earlier save in another layout left in `dir`: every file in `stale` and every shard file not in
// `keep`.
void remove_stale_files(const std::string& dir, const std::vector<std::string>& stale,
                        const std::set<std::string>& keep) {
  for (const std::string& name : stale) remove_file(join_path(dir, name));
  for (const std::string& name : list_dir(dir)) {
    if (is_shard_file_name(name) && keep.count(name) == 0) remove_file(join_path(dir, name));
  }
}

// A shard path from an index must stay inside the index's folder.
bool is_safe_relative_path(const std::string& name) {
  if (name.empty() || name[0] == '/' || name.find('\0') != std::string::npos) return false;
  for (size_t begin = 0; begin <= name.size();) {
    const size_t end = std::min(name.find('/', begin), name.size());
    if (name.compare(begin, end - begin, "..") == 0) return false;
    begin = end + 1;
  }
  return true;
}

}  // namespace

// ---- errors and dtypes ---------------------------------------------------------------------------------------------

SafetensorsError::SafetensorsError(std::string file, std::string tensor, const std::string& problem)
    : DataError(message(file, tensor, problem)), file_(std::move(file)), tensor_(std::move(tensor)) {}

std::string_view dtype_name(Dtype dtype) { return dtype_entry(dtype).name; }

size_t dtype_size(Dtype dtype) { return dtype_entry(dtype).size; }

std::optional<Dtype> dtype_from_name(std::string_view name) {
  for (const DtypeEntry& e : kDtypes) {
    if (e.name == name) return e.dtype;
  }
  return std::nullopt;
}

int64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t dim : shape) n *= static_cast<uint64_t>(dim);  // unsigned: wraps instead of UB on bad input
  return static_cast<int64_t>(n);
}

// ---- parsing ------------------------------------------------------------------------------------------------------

Header parse_header_json(const char* json, size_t size, const std::string& file) {
  Json root;
  try {
    // A header nests three deep: {name: {"shape": [...]}}.
    root = parse_json_strict(json, size, /*max_depth=*/3);
  } catch (const JsonStructureError& e) {
    fail_header_structure(e, file);
  } catch (const Json::exception& e) {
    fail(file, "", "header (" + std::to_string(size) + " bytes) is not valid JSON: " + json_error_text(e));
  }
  if (!root.is_object()) fail(file, "", "header is " + describe(root) + ", expected a JSON object");

  Header header;
  for (const auto& item : root.items()) {
    if (item.key() == "__metadata__") {
      header.metadata = parse_metadata(item.value(), file);
    } else {
      header.tensors.push_back(parse_entry(item.key(), item.value(), file));
    }
  }
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  return header;
}

Header parse_header(const uint8_t* data, size_t size, const std::string& file) {
  if (size < kLengthPrefixBytes) {
    fail(file, "", "file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  }
  const uint64_t header_bytes = read_le64(data);
  const uint64_t rest = size - kLengthPrefixBytes;
  if (header_bytes > kMaxHeaderBytes) {
    fail(file, "", "header length " + std::to_string(header_bytes) + " exceeds the " +
                       std::to_string(kMaxHeaderBytes) + "-byte limit (not a safetensors file?)");
  }
  if (header_bytes > rest) {
    fail(file, "", "header length " + std::to_string(header_bytes) + " runs past the end of the file (" +
                       std::to_string(rest) + " bytes follow the length; truncated file?)");
  }
  Header header =
      parse_header_json(reinterpret_cast<const char*>(data + kLengthPrefixBytes), header_bytes, file);
  header.data_offset = kLengthPrefixBytes + header_bytes;
  header.data_size = rest - header_bytes;
  check_layout(header.tensors, header.data_size, file);
  return header;
}

// ---- MappedFile ----------------------------------------------------------------------------------------------------

MappedFile MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_errno(path, "cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    fail_errno(path, "cannot stat");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "", "is not a regular file");
  }
  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<size_t>(st.st_size);
  if (file.size_ > 0) {
    void* p = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int saved = errno;
      ::close(fd);
      errno = saved;
      fail_errno(path, "cannot mmap " + std::to_string(file.size_) + " bytes");
    }
    file.data_ = static_cast<uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file open
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    reset();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() { reset(); }

void MappedFile::reset() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

// ---- SafetensorsFile -----------------------------------------------------------------------------------------------

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto map = std::make_shared<const MappedFile>(MappedFile::open(path));
  Header header = parse_header(map->data(), map->size(), path);
  return SafetensorsFile(std::move(map), std::move(header));
}

SafetensorsFile::SafetensorsFile(std::shared_ptr<const MappedFile> map, Header header)
    : path_(map->path()), map_(std::move(map)), header_(std::move(header)) {
  for (size_t i = 0; i < header_.tensors.size(); ++i) by_name_.emplace(header_.tensors[i].name, i);
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &header_.tensors[it->second];
}

const TensorInfo& SafetensorsFile::at(std::string_view name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr) fail(path_, std::string(name), "not found in this file");
  return *info;
}

ByteSpan SafetensorsFile::bytes(const TensorInfo& info) const {
  const TensorInfo* own = find(info.name);
  if (map_ == nullptr || own == nullptr || own->begin != info.begin || own->end != info.end) {
    fail(path_, info.name, "the TensorInfo passed to bytes() does not describe a tensor of this file");
  }
  return {map_->data() + header_.data_offset + own->begin, static_cast<size_t>(own->nbytes())};
}

// ---- writing -------------------------------------------------------------------------------------------------------

EncodedHeader encode_header(const std::vector<TensorView>& tensors, const Metadata& metadata,
                            const std::string& file) {
  std::set<std::string_view> names;
  std::vector<uint64_t> sizes(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorView& t = tensors[i];
    if (t.name.empty()) fail(file, "", "tensor " + std::to_string(i) + " has an empty name");
    if (t.name == "__metadata__") fail(file, t.name, "this name is reserved for the metadata");
    if (!names.insert(t.name).second) fail(file, t.name, "appears twice in the tensors to write");
    dtype_entry(t.dtype);  // rejects an out-of-range enumerator
    const std::optional<uint64_t> size = checked_byte_size(t.shape, t.dtype);
    if (!size) fail(file, t.name, "shape " + shape_string(t.shape) + " has a negative or overflowing dimension");
    sizes[i] = *size;
  }

  EncodedHeader out;
  out.order.resize(tensors.size());
  std::iota(out.order.begin(), out.order.end(), size_t{0});
  std::sort(out.order.begin(), out.order.end(), [&](size_t a, size_t b) {
    if (tensors[a].dtype != tensors[b].dtype) return tensors[a].dtype > tensors[b].dtype;
    return tensors[a].name < tensors[b].name;
  });

  std::string json = "{";
  if (!metadata.empty()) {
    json += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      json += (first ? "" : ",") + json_string(key, file, "metadata key") + ":" +
              json_string(value, file, "metadata value");
      first = false;
    }
    json += "}";
  }
  uint64_t offset = 0;
  for (size_t i : out.order) {
    const TensorView& t = tensors[i];
    if (json.size() > 1) json += ",";
    json += json_string(t.name, file, "tensor name") + ":{\"dtype\":\"" + std::string(dtype_name(t.dtype)) +
            "\",\"shape\":" + json_ints(t.shape) + ",\"data_offsets\":" + json_ints(std::vector<uint64_t>{offset, offset + sizes[i]}) + "}";
    if (__builtin_add_overflow(offset, sizes[i], &offset)) fail(file, t.name, "total data size overflows");
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');

  out.bytes.reserve(kLengthPrefixBytes + json.size());
  append_le64(out.bytes, json.size());
  out.bytes += json;
  return out;
}

// Call after encode_header has accepted `tensors`.
void check_data_pointers(const std::vector<TensorView>& tensors, const std::string& file) {
  for (const TensorView& t : tensors) {
    if (t.data == nullptr && *checked_byte_size(t.shape, t.dtype) > 0) fail(file, t.name, "data pointer is null");
  }
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors, const Metadata& metadata) {
  const EncodedHeader header = encode_header(tensors, metadata, path);
  check_data_pointers(tensors, path);
  write_durably([&] {
    AtomicFile out(path);
    out.write(header.bytes.data(), header.bytes.size());
    for (size_t i : header.order) {
      const TensorView& t = tensors[i];
      out.write(t.data, static_cast<size_t>(*checked_byte_size(t.shape, t.dtype)));
    }
    out.commit();
  });
}

std::string shard_file_name(size_t shard, size_t num_shards) {
  char name[64];
  std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", shard + 1, num_shards);
  return name;
}

std::vector<std::vector<size_t>> plan_shards(const std::vector<uint64_t>& tensor_bytes, uint64_t max_shard_bytes) {
  if (max_shard_bytes == 0) throw std::invalid_argument("plan_shards: max_shard_bytes must be positive");
  std::vector<std::vector<size_t>> shards;
  std::vector<size_t> current;
  uint64_t current_bytes = 0;
  for (size_t i = 0; i < tensor_bytes.size(); ++i) {
    const uint64_t bytes = tensor_bytes[i];
    if (bytes > max_shard_bytes) {  // a shard of its own, placed before the one being filled
      shards.push_back({i});
      continue;
    }
    if (current_bytes + bytes > max_shard_bytes) {  // no overflow: both terms are <= max_shard_bytes
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += bytes;
  }
  if (!current.empty()) shards.push_back(std::move(current));
  return shards;
}

std::vector<std::string> write_safetensors_dir(const std::string& dir, const std::vector<TensorView>& tensors,
                                               uint64_t max_shard_bytes, const Metadata& metadata) {
  if (max_shard_bytes == 0) fail(dir, "", "max_shard_bytes must be positive");
  encode_header(tensors, metadata, dir);  // validates names and shapes across all shards before writing anything
  check_data_pointers(tensors, dir);
  make_dirs(dir);

  std::vector<uint64_t> sizes;
  uint64_t total_bytes = 0;
  uint64_t total_parameters = 0;
  for (const TensorView& t : tensors) {
    sizes.push_back(*checked_byte_size(t.shape, t.dtype));
    total_bytes += sizes.back();  // cannot overflow: encode_header summed the same sizes
    total_parameters += sizes.back() / dtype_size(t.dtype);
  }
  const std::vector<std::vector<size_t>> plan = plan_shards(sizes, max_shard_bytes);
  if (plan.size() <= 1) {
    write_safetensors(join_path(dir, kSafetensorsFileName), tensors, metadata);
    remove_stale_files(dir, {kSafetensorsIndexName}, {});
    return {kSafetensorsFileName};
  }

  std::vector<std::string> written;
  Json weight_map = Json::object();
  for (size_t k = 0; k < plan.size(); ++k) {
    const std::string name = shard_file_name(k, plan.size());
    std::vector<TensorView> shard;
    for (size_t i : plan[k]) {
      shard.push_back(tensors[i]);
      weight_map[tensors[i].name] = name;
    }
    write_safetensors(join_path(dir, name), shard, metadata);
    written.push_back(name);
  }
  const Json index = {{"metadata", {{"total_parameters", total_parameters}, {"total_size", total_bytes}}},
                      {"weight_map", weight_map}};
  write_durably([&] { write_file_atomic(join_path(dir, kSafetensorsIndexName), index.dump(2) + "\n"); });
  written.push_back(kSafetensorsIndexName);
  remove_stale_files(dir, {kSafetensorsFileName}, {written.begin(), written.end()});
  return written;
}

// ---- SafetensorsDir ------------------------------------------------------------------------------------------------

SafetensorsDir SafetensorsDir::open(const std::string& dir) {
  const std::string index = join_path(dir, kSafetensorsIndexName);
  const std::string single = join_path(dir, kSafetensorsFileName);
  const bool has_index = path_exists(index);
  const bool has_file = path_exists(single);
  if (has_index && has_file) {
    fail(dir, "", std::string("holds both ") + kSafetensorsFileName + " and " + kSafetensorsIndexName +
                      "; remove the stale one");
  }
  if (has_index) return open_index(index);
  if (has_file) return open_file(single);
  fail(dir, "", std::string("has neither ") + kSafetensorsFileName + " nor " + kSafetensorsIndexName);
}

SafetensorsDir SafetensorsDir::open_file(const std::string& path) {
  SafetensorsDir out(path);
  out.files_.push_back(SafetensorsFile::open(path));
  const std::vector<TensorInfo>& tensors = out.files_[0].tensors();
  for (size_t i = 0; i < tensors.size(); ++i) out.by_name_.emplace(tensors[i].name, std::make_pair(size_t{0}, i));
  return out;
}

SafetensorsDir SafetensorsDir::open_index(const std::string& index_path) {
  const std::string text = read_small_file(index_path, kMaxIndexBytes);
  Json index;
  try {
    index = parse_json_strict(text.data(), text.size(), /*max_depth=*/8);
  } catch (const JsonStructureError& e) {
    const bool duplicate = e.kind == JsonStructureError::kDuplicateKey;
    if (duplicate && e.path.size() == 2 && e.path[0] == "weight_map") {
      fail(index_path, e.path[1], "appears twice in weight_map");
    }
    std::string where;
    for (const std::string& key : e.path) where += "/" + key;
    fail(index_path, "", (duplicate ? "duplicate key at " : "nesting too deep at ") + in_quotes(where));
  } catch (const Json::exception& e) {
    fail(index_path, "", "not valid JSON: " + json_error_text(e));
  }
  if (!index.is_object()) fail(index_path, "", "is " + describe(index) + ", expected a JSON object");
  if (index.contains("metadata") && !index.at("metadata").is_object()) {
    fail(index_path, "", "\"metadata\" is " + describe(index.at("metadata")) + ", expected an object");
  }
  if (!index.contains("weight_map") || !index.at("weight_map").is_object()) {
    fail(index_path, "", "expected \"weight_map\": {tensor: file}");
  }

  // weight_map: tensor -> shard file name; then open each shard once, in file-name order.
  const std::string folder = fs::path(index_path).parent_path().string();
  std::map<std::string, std::string> weight_map;
  std::map<std::string, std::string> first_tensor_of;  // shard -> a tensor listed for it, for messages
  for (const auto& item : index.at("weight_map").items()) {
    if (!item.value().is_string()) {
      fail(index_path, item.key(), "weight_map value is " + describe(item.value()) + ", expected a file name");
    }
    const std::string& shard = item.value().get_ref<const std::string&>();
    if (!is_safe_relative_path(shard)) {
      fail(index_path, item.key(), "shard file " + in_quotes(shard) + " is not a relative path inside the folder");
    }
    weight_map.emplace(item.key(), shard);
    first_tensor_of.emplace(shard, item.key());
  }
  SafetensorsDir out(index_path);
  std::map<std::string, size_t> file_index;
  for (const auto& [shard, tensor] : first_tensor_of) {
    const std::string shard_path = join_path(folder, shard);
    if (!path_exists(shard_path)) {
      fail(index_path, tensor, "its shard " + in_quotes(shard) + " does not exist (" + shard_path + ")");
    }
    file_index.emplace(shard, out.files_.size());
    out.files_.push_back(SafetensorsFile::open(shard_path));
  }

  // Every tensor of every shard is in exactly one shard and is listed for that shard.
  for (size_t f = 0; f < out.files_.size(); ++f) {
    const std::vector<TensorInfo>& tensors = out.files_[f].tensors();
    for (size_t i = 0; i < tensors.size(); ++i) {
      const std::string& name = tensors[i].name;
      const auto [it, inserted] = out.by_name_.emplace(name, std::make_pair(f, i));
      if (!inserted) {
        fail(index_path, name, "is in two shards: " + out.files_[it->second.first].path() + " and " +
                                   out.files_[f].path());
      }
      if (weight_map.count(name) == 0) {
        fail(index_path, name, "is in shard " + out.files_[f].path() + " but not in the index's weight_map");
      }
    }
  }
  for (const auto& [name, shard] : weight_map) {
    const auto it = out.by_name_.find(name);
    const size_t listed = file_index.at(shard);
    if (it == out.by_name_.end() || it->second.first != listed) {
      fail(index_path, name, "the index maps it to shard " + in_quotes(shard) + ", which has no such tensor");
    }
  }
  return out;
}

std::vector<std::string> SafetensorsDir::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& entry : by_name_) out.push_back(entry.first);
  return out;
}

std::optional<SafetensorsDir::Entry> SafetensorsDir::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  const SafetensorsFile& file = files_[it->second.first];
  return Entry{&file, &file.tensors()[it->second.second]};
}

SafetensorsDir::Entry SafetensorsDir::at(std::string_view name) const {
  const std::optional<Entry> entry = find(name);
  if (!entry) fail(label_, std::string(name), "not found");
  return *entry;
}

}  // namespace aligntrain::model
