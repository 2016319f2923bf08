// Tests of trainer/model/safetensors.{h,cc} and safetensors_torch.{h,cc}: C++ round trips, byte-for-byte agreement
// with the Python `safetensors` library and transformers' sharded save_pretrained (run through $ALIGNTRAIN_PYTHON,
// default /work/main/.venv/bin/python), and one test per malformed-file case, each checking that the message names
// the file and the tensor at fault.
#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>
#include <nlohmann/json.hpp>

#include "trainer/model/safetensors.h"
#include "trainer/model/safetensors_torch.h"

namespace aligntrain::model {
namespace {

using Json = nlohmann::json;

// ---- fixtures and helpers -------------------------------------------------------------------------------------------
// (POSIX calls, from when std::filesystem calls in binaries linked with LibTorch bound to the wheel's own copy and
// remove_all crashed; the build now binds them to the system libstdc++, as filesystem_test checks.)

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/safetensors_test.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    ::nftw(
        path_.c_str(), [](const char* p, const struct stat*, int, FTW*) { return ::remove(p); }, 16,
        FTW_DEPTH | FTW_PHYS);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string le64(uint64_t value) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

// A file image: length prefix, `header` verbatim, then `data_bytes` bytes of data.
std::string file_image(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\x01');
}

// The SafetensorsError message of `fn`; a test failure if it throws nothing or something else.
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const SafetensorsError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected SafetensorsError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected SafetensorsError, nothing was thrown";
  return "";
}

// Opening a file holding `image` fails with a message naming the file, `tensor` (when non-empty) and `detail`.
// Returns the tensor the error names ("" when it blames none).
std::string expect_bad_file(const std::string& image, const std::string& tensor, const std::string& detail) {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  write_file(path, image);
  std::string tensor_in_error;
  const std::string message = error_of([&] {
    try {
      SafetensorsFile::open(path);
    } catch (const SafetensorsError& e) {
      tensor_in_error = e.tensor();
      throw;
    }
  });
  EXPECT_NE(message.find(path), std::string::npos) << "message does not name the file: " << message;
  if (!tensor.empty()) {
    EXPECT_NE(message.find("tensor \"" + tensor + "\""), std::string::npos)
        << "message does not name tensor " << tensor << ": " << message;
    EXPECT_EQ(tensor_in_error, tensor);
  }
  EXPECT_NE(message.find(detail), std::string::npos) << "message lacks \"" << detail << "\": " << message;
  return tensor_in_error;
}

// Deterministic bytes for a test tensor.
std::vector<uint8_t> pattern_bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(seed * 31 + i * 7);
  return bytes;
}

// The same values as pattern() in kPythonPrelude: (arange(n) * 7 % 251 - 100), / 8 for floating dtypes.
at::Tensor pattern_tensor(const std::vector<int64_t>& shape, at::ScalarType type) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  at::Tensor x = at::arange(numel, at::kLong).mul(7).remainder(251).sub(100);
  if (at::isFloatingType(type)) x = x.to(at::kDouble).div(8);
  if (type == at::kBool) x = x.remainder(2).eq(0);
  return x.to(type).reshape(shape);
}

// ---- Python ----------------------------------------------------------------------------------------------------------

// $ALIGNTRAIN_PYTHON, else the repository venv; empty when neither is configured (the Python tests then skip).
std::string python_path() {
  if (const char* env = std::getenv("ALIGNTRAIN_PYTHON"); env && *env) return env;
  const char* fallback = "/work/main/.venv/bin/python";
  return exists(fallback) ? fallback : "";
}

#define SKIP_WITHOUT_PYTHON()                                                                                   \
  if (python_path().empty()) {                                                                                  \
    GTEST_SKIP() << "no Python: set ALIGNTRAIN_PYTHON to a python with torch, safetensors and transformers "   \
                    "(/work/main/.venv/bin/python does not exist)";                                            \
  }

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `script` with `args`; returns its exit status and combined output.
std::pair<int, std::string> run_python(const TempDir& dir, const std::string& script,
                                       const std::vector<std::string>& args) {
  const std::string script_path = dir / "script.py";
  write_file(script_path, script);
  std::string command = "HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error " +
                        shell_quote(python_path()) + " " + shell_quote(script_path);
  for (const std::string& a : args) command += " " + shell_quote(a);
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string output;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

#define ASSERT_PYTHON_OK(result) ASSERT_EQ((result).first, 0) << (result).second

constexpr const char* kPythonPrelude = R"PY(
import json, os, sys
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}

def pattern(shape, dtype):
    n = 1
    for d in shape:
        n *= d
    x = torch.arange(n) * 7 % 251 - 100
    if dtype.is_floating_point:
        x = x.to(torch.float64) / 8
    if dtype == torch.bool:
        x = x.remainder(2) == 0
    return x.to(dtype).reshape(shape)

def dump(tensors, folder):
    """Raw bytes of each tensor plus a manifest, for the C++ side to compare against."""
    manifest = {}
    for i, (name, t) in enumerate(tensors.items()):
        fn = f"{i}.bin"
        with open(os.path.join(folder, fn), "wb") as f:
            f.write(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        manifest[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "file": fn}
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f)
)PY";

// Checks every tensor of the manifest written by dump() against `dir`'s tensors: same set, dtype, shape and bytes.
void expect_matches_manifest(const SafetensorsDir& st, const TempDir& dumps) {
  const Json manifest = Json::parse(read_file(dumps / "manifest.json"));
  ASSERT_EQ(st.size(), manifest.size());
  for (const auto& item : manifest.items()) {
    SCOPED_TRACE(item.key());
    const std::optional<SafetensorsDir::Entry> entry = st.find(item.key());
    ASSERT_TRUE(entry.has_value());
    EXPECT_EQ(dtype_name(entry->info->dtype), item.value()["dtype"].get<std::string>());
    EXPECT_EQ(entry->info->shape, item.value()["shape"].get<std::vector<int64_t>>());
    const ByteSpan bytes = entry->file->bytes(*entry->info);
    const std::string expected = read_file(dumps / item.value()["file"].get<std::string>());
    ASSERT_EQ(bytes.size, expected.size());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data), bytes.size), expected);
    // And through LibTorch: the copied tensor holds the same bytes.
    const at::Tensor t = to_tensor(st, item.key());
    EXPECT_EQ(t.sizes().vec(), entry->info->shape);
    ASSERT_EQ(t.nbytes(), expected.size());
    if (t.nbytes() > 0) EXPECT_EQ(std::memcmp(t.data_ptr(), expected.data(), expected.size()), 0);
  }
}

// Tensors of every supported dtype, including a scalar and an empty tensor.
NamedTensors sample_tensors() {
  return {
      {"model.embed_tokens.weight", pattern_tensor({7, 5}, at::kFloat)},
      {"model.norm.weight", pattern_tensor({5}, at::kBFloat16)},
      {"lm_head.weight", pattern_tensor({3, 5}, at::kHalf)},
      {"f64", pattern_tensor({2, 2}, at::kDouble)},
      {"ids", pattern_tensor({2, 3}, at::kLong)},
      {"i32", pattern_tensor({4}, at::kInt)},
      {"i16", pattern_tensor({3}, at::kShort)},
      {"i8", pattern_tensor({3}, at::kChar)},
      {"u8", pattern_tensor({5}, at::kByte)},
      {"mask", pattern_tensor({3}, at::kBool)},
      {"scalar", pattern_tensor({}, at::kFloat)},
      {"empty", pattern_tensor({0, 4}, at::kFloat)},
  };
}

Json spec_of(const NamedTensors& tensors, const Metadata& metadata) {
  Json spec = {{"tensors", Json::array()}, {"metadata", metadata}};
  for (const auto& [name, t] : tensors) {
    spec["tensors"].push_back({name, dtype_name(to_dtype(t.scalar_type(), "", name)), t.sizes().vec()});
  }
  return spec;
}

// ---- C++ round trips ---------------------------------------------------------------------------------------------

TEST(SafetensorsWrite, RawRoundTripAllDtypes) {
  TempDir dir;
  const std::string path = dir / "raw.safetensors";
  const std::vector<std::pair<Dtype, std::vector<int64_t>>> specs = {
      {Dtype::kF32, {2, 3}}, {Dtype::kBF16, {4}},   {Dtype::kF16, {1, 1, 3}}, {Dtype::kF64, {2}},
      {Dtype::kI64, {3}},    {Dtype::kI32, {}},     {Dtype::kI16, {2}},       {Dtype::kI8, {5}},
      {Dtype::kU8, {0, 7}},  {Dtype::kBool, {6}},
  };
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<TensorView> views;
  for (size_t i = 0; i < specs.size(); ++i) {
    int64_t numel = 1;
    for (int64_t d : specs[i].second) numel *= d;
    buffers.push_back(pattern_bytes(numel * dtype_size(specs[i].first), static_cast<uint8_t>(i)));
    if (specs[i].first == Dtype::kBool) for (uint8_t& b : buffers.back()) b &= 1;
    views.push_back({"t" + std::to_string(i), specs[i].first, specs[i].second, buffers.back().data()});
  }
  const Metadata metadata = {{"format", "pt"}, {"note", "quote \" and newline \n"}};
  write_safetensors(path, views, metadata);
  EXPECT_FALSE(exists(path + ".tmp"));

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.metadata(), metadata);
  ASSERT_EQ(file.tensors().size(), views.size());
  for (size_t i = 0; i < views.size(); ++i) {
    SCOPED_TRACE(views[i].name);
    const TensorInfo& info = file.at(views[i].name);
    EXPECT_EQ(info.dtype, views[i].dtype);
    EXPECT_EQ(info.shape, views[i].shape);
    const ByteSpan bytes = file.bytes(info);
    ASSERT_EQ(bytes.size, buffers[i].size());
    EXPECT_TRUE(std::equal(bytes.data, bytes.data + bytes.size, buffers[i].begin()));
    // The writer aligns every tensor to its element size (the data buffer starts at a multiple of 8).
    EXPECT_EQ(reinterpret_cast<uintptr_t>(bytes.data) % dtype_size(info.dtype), 0u);
  }
  EXPECT_EQ(file.find("missing"), nullptr);
  const std::string message = error_of([&] { file.at("missing"); });
  EXPECT_NE(message.find(path), std::string::npos);
  EXPECT_NE(message.find("tensor \"missing\""), std::string::npos);
}

TEST(SafetensorsWrite, HeaderIsSortedAndPadded) {
  const float f[2] = {1, 2};
  const int64_t i[1] = {3};
  const uint16_t h[1] = {0};
  const EncodedHeader header = encode_header(
      {{"b", Dtype::kF32, {2}, f}, {"a", Dtype::kF32, {2}, f}, {"h", Dtype::kBF16, {1}, h}, {"z", Dtype::kI64, {1}, i}},
      {{"format", "pt"}}, "mem");
  EXPECT_EQ(header.order, (std::vector<size_t>{3, 1, 0, 2}));
  const std::string json = header.bytes.substr(8);
  EXPECT_EQ(json.size() % 8, 0u);
  EXPECT_EQ(header.bytes.substr(0, 8), le64(json.size()));
  EXPECT_EQ(json.substr(0, json.find_last_not_of(' ') + 1),
            R"({"__metadata__":{"format":"pt"},"z":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
            R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},)"
            R"("h":{"dtype":"BF16","shape":[1],"data_offsets":[24,26]}})");
}

TEST(SafetensorsWrite, RejectsBadInput) {
  TempDir dir;
  const std::string path = dir / "w.safetensors";
  const float f[1] = {0};
  auto expect_rejected = [&](const std::vector<TensorView>& views, const std::string& detail) {
    const std::string message = error_of([&] { write_safetensors(path, views); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(detail), std::string::npos) << message;
    EXPECT_FALSE(exists(path));
    EXPECT_FALSE(exists(path + ".tmp"));
  };
  expect_rejected({{"a", Dtype::kF32, {1}, f}, {"a", Dtype::kF16, {1}, f}}, "tensor \"a\": appears twice");
  expect_rejected({{"", Dtype::kF32, {1}, f}}, "empty name");
  expect_rejected({{"__metadata__", Dtype::kF32, {1}, f}}, "reserved");
  expect_rejected({{"neg", Dtype::kF32, {-1}, f}}, "tensor \"neg\": shape [-1]");
  expect_rejected({{"big", Dtype::kF32, {int64_t{1} << 62, 4}, f}}, "overflowing");
  expect_rejected({{"null", Dtype::kF32, {1}, nullptr}}, "tensor \"null\": data pointer is null");
  expect_rejected({{"bad\xff", Dtype::kF32, {1}, f}}, "not valid UTF-8");
}

TEST(SafetensorsWrite, ReplacesAnExistingFileAtomically) {
  TempDir dir;
  const std::string path = dir / "w.safetensors";
  const float one[1] = {1};
  const float two[2] = {2, 3};
  write_safetensors(path, {{"x", Dtype::kF32, {1}, one}});
  write_safetensors(path, {{"y", Dtype::kF32, {2}, two}});
  const SafetensorsFile file = SafetensorsFile::open(path);
  ASSERT_EQ(file.tensors().size(), 1u);
  EXPECT_EQ(file.tensors()[0].name, "y");
  EXPECT_FALSE(exists(path + ".tmp"));
}

TEST(SafetensorsWrite, EmptyFile) {
  TempDir dir;
  write_safetensors(dir / "e.safetensors", {});
  const SafetensorsFile file = SafetensorsFile::open(dir / "e.safetensors");
  EXPECT_TRUE(file.tensors().empty());
  EXPECT_TRUE(file.metadata().empty());
}

TEST(SafetensorsFile, MoveKeepsTheMapping) {
  TempDir dir;
  const float f[3] = {1, 2, 3};
  write_safetensors(dir / "m.safetensors", {{"x", Dtype::kF32, {3}, f}});
  SafetensorsFile a = SafetensorsFile::open(dir / "m.safetensors");
  SafetensorsFile b = std::move(a);
  const ByteSpan bytes = b.bytes(b.at("x"));
  ASSERT_EQ(bytes.size, sizeof f);
  EXPECT_EQ(std::memcmp(bytes.data, f, sizeof f), 0);
  // A TensorInfo that is not this file's is refused rather than read out of bounds.
  TensorInfo forged = b.at("x");
  forged.end = 1 << 20;
  EXPECT_NE(error_of([&] { b.bytes(forged); }).find("does not describe a tensor of this file"), std::string::npos);
}

TEST(SafetensorsTorch, RoundTripAndZeroCopy) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  const NamedTensors tensors = sample_tensors();
  save_safetensors(path, tensors, {{"format", "pt"}});
  const NamedTensors loaded = load_safetensors(path);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    const auto it = std::find_if(loaded.begin(), loaded.end(), [&](const auto& p) { return p.first == name; });
    ASSERT_NE(it, loaded.end());
    EXPECT_EQ(it->second.scalar_type(), expected.scalar_type());
    EXPECT_TRUE(at::equal(it->second, expected));
  }

  // A zero-copy view points into the mapping and keeps it alive after the file object is gone.
  at::Tensor view;
  {
    const SafetensorsFile file = SafetensorsFile::open(path);
    const TensorInfo& info = file.at("model.embed_tokens.weight");
    view = to_tensor(file, info, /*copy=*/false);
    EXPECT_EQ(view.data_ptr(), static_cast<const void*>(file.bytes(info).data));
  }
  EXPECT_TRUE(at::equal(view, tensors[0].second));
}

TEST(SafetensorsTorch, MisalignedZeroCopyIsRefused) {
  // The data buffer starts 8-aligned (the header is padded to 8 bytes), and a one-byte U8 tensor first puts the F32
  // tensor at an odd address.
  std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
  while (header.size() % 8 != 0) header += ' ';
  TempDir dir;
  write_file(dir / "m.safetensors", file_image(header, 5));
  const SafetensorsFile file = SafetensorsFile::open(dir / "m.safetensors");
  const std::string message = error_of([&] { to_tensor(file, file.at("b"), /*copy=*/false); });
  EXPECT_NE(message.find("tensor \"b\": data is not aligned"), std::string::npos) << message;
  EXPECT_EQ(to_tensor(file, file.at("b")).numel(), 1);  // a copy is fine
}

TEST(SafetensorsTorch, BoolBytesAreChecked) {
  const std::string header = R"({"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})";
  TempDir dir;
  write_file(dir / "b.safetensors", le64(header.size()) + header + std::string("\x01\x02", 2));
  const SafetensorsFile file = SafetensorsFile::open(dir / "b.safetensors");
  const std::string message = error_of([&] { to_tensor(file, file.at("m")); });
  EXPECT_NE(message.find("tensor \"m\": BOOL element 1 is byte 2"), std::string::npos) << message;
}

TEST(SafetensorsTorch, WriterRejectsUnsupportedTensors) {
  TempDir dir;
  const std::string path = dir / "t.safetensors";
  const at::Tensor base = at::ones({3, 4});
  auto message = error_of([&] { save_safetensors(path, {{"t", base.t()}}); });
  EXPECT_NE(message.find("tensor \"t\": is not contiguous"), std::string::npos) << message;
  message = error_of([&] { save_safetensors(path, {{"c", at::zeros({2}, at::kComplexFloat)}}); });
  EXPECT_NE(message.find("tensor \"c\": dtype ComplexFloat cannot be stored"), std::string::npos) << message;
  message = error_of([&] { save_safetensors(path, {{"u", at::Tensor()}}); });
  EXPECT_NE(message.find("tensor \"u\": is an undefined tensor"), std::string::npos) << message;
  EXPECT_FALSE(exists(path));
}

// ---- sharding --------------------------------------------------------------------------------------------------------

TEST(SafetensorsShards, PlanFollowsHuggingfaceHub) {
  // The example of huggingface_hub's docstring: [6, 6, 2, 6, 2, 2] with limit 10 -> [6], [6+2], [6+2+2].
  EXPECT_EQ(plan_shards({6, 6, 2, 6, 2, 2}, 10), (std::vector<std::vector<size_t>>{{0}, {1, 2}, {3, 4, 5}}));
  // An oversized tensor gets its own shard, placed before the shard still being filled.
  EXPECT_EQ(plan_shards({1, 10, 1}, 5), (std::vector<std::vector<size_t>>{{1}, {0, 2}}));
  EXPECT_EQ(plan_shards({}, 5), (std::vector<std::vector<size_t>>{}));
  EXPECT_EQ(shard_file_name(0, 3), "model-00001-of-00003.safetensors");
}

TEST(SafetensorsShards, CppRoundTripAndStaleFileCleanup) {
  TempDir dir;
  const std::string folder = dir / "model";
  const NamedTensors tensors = sample_tensors();
  const std::vector<std::string> written = save_safetensors_dir(folder, tensors, 64, {{"format", "pt"}});
  ASSERT_GT(written.size(), 2u);
  EXPECT_EQ(written.back(), kSafetensorsIndexName);
  {
    const SafetensorsDir st = SafetensorsDir::open(folder);
    EXPECT_EQ(st.files().size(), written.size() - 1);
    ASSERT_EQ(st.size(), tensors.size());
    for (const auto& [name, expected] : tensors) EXPECT_TRUE(at::equal(to_tensor(st, name), expected)) << name;
    EXPECT_EQ(st.files()[0].metadata().at("format"), "pt");
  }
  // Re-saving as one file removes the index and the shards; re-saving sharded removes model.safetensors.
  EXPECT_EQ(save_safetensors_dir(folder, tensors, 1 << 20), std::vector<std::string>{kSafetensorsFileName});
  EXPECT_EQ(list_dir(folder), std::vector<std::string>{kSafetensorsFileName});
  save_safetensors_dir(folder, tensors, 64);
  EXPECT_FALSE(exists(folder + "/" + kSafetensorsFileName));
  EXPECT_EQ(SafetensorsDir::open(folder).size(), tensors.size());
}

// Writes a two-shard folder {a, b} + {c} and returns the index path, for the index error cases.
std::string write_two_shards(const TempDir& dir) {
  const float f[2] = {1, 2};
  write_safetensors(dir / "s1.safetensors", {{"a", Dtype::kF32, {2}, f}, {"b", Dtype::kF32, {1}, f}});
  write_safetensors(dir / "s2.safetensors", {{"c", Dtype::kF32, {2}, f}});
  return dir / kSafetensorsIndexName;
}

void expect_bad_index(const std::string& index_json, const std::string& tensor, const std::string& detail) {
  TempDir dir;
  const std::string index = write_two_shards(dir);
  write_file(index, index_json);
  const std::string message = error_of([&] { SafetensorsDir::open(dir.path()); });
  EXPECT_NE(message.find(index), std::string::npos) << message;
  if (!tensor.empty()) {
    EXPECT_NE(message.find("tensor \"" + tensor + "\""), std::string::npos) << message;
  }
  EXPECT_NE(message.find(detail), std::string::npos) << message;
}

TEST(SafetensorsShards, IndexErrors) {
  const std::string good = R"("a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors")";
  {  // the good index opens
    TempDir dir;
    write_file(write_two_shards(dir), R"({"metadata": {"total_size": 20}, "weight_map": {)" + good + "}}");
    EXPECT_EQ(SafetensorsDir::open(dir.path()).names(), (std::vector<std::string>{"a", "b", "c"}));
  }
  expect_bad_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s3.safetensors"}})", "c",
                   "its shard \"s3.safetensors\" does not exist");
  expect_bad_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors", "c": "s2.safetensors"}})", "b",
                   "the index maps it to shard \"s2.safetensors\", which has no such tensor");
  expect_bad_index(R"({"weight_map": {"a": "s1.safetensors", "c": "s2.safetensors"}})", "b",
                   "but not in the index's weight_map");
  expect_bad_index(R"({"weight_map": {"a": "s1.safetensors", "a": "s1.safetensors"}})", "a",
                   "appears twice in weight_map");
  expect_bad_index(R"({"weight_map": {"a": "../s1.safetensors"}})", "a", "not a relative path inside the folder");
  expect_bad_index(R"({"weight_map": {"a": "/etc/passwd"}})", "a", "not a relative path inside the folder");
  expect_bad_index(R"({"weight_map": {"a": 3}})", "a", "expected a file name");
  expect_bad_index(R"({"metadata": {}})", "", "expected \"weight_map\"");
  expect_bad_index(R"({"weight_map": )", "", "not valid JSON");
  expect_bad_index("[]", "", "expected a JSON object");
}

TEST(SafetensorsShards, TensorInTwoShards) {
  TempDir dir;
  const float f[2] = {1, 2};
  write_safetensors(dir / "s1.safetensors", {{"a", Dtype::kF32, {2}, f}});
  write_safetensors(dir / "s2.safetensors", {{"a", Dtype::kF32, {2}, f}, {"c", Dtype::kF32, {1}, f}});
  write_file(dir / kSafetensorsIndexName, R"({"weight_map": {"a": "s1.safetensors", "c": "s2.safetensors"}})");
  const std::string message = error_of([&] { SafetensorsDir::open(dir.path()); });
  EXPECT_NE(message.find("tensor \"a\": is in two shards"), std::string::npos) << message;
  EXPECT_NE(message.find("s1.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("s2.safetensors"), std::string::npos) << message;
}

TEST(SafetensorsShards, FolderWithNeitherOrBoth) {
  TempDir dir;
  EXPECT_NE(error_of([&] { SafetensorsDir::open(dir.path()); }).find("has neither"), std::string::npos);
  write_two_shards(dir);
  write_file(dir / kSafetensorsIndexName, R"({"weight_map": {}})");
  write_safetensors(dir / kSafetensorsFileName, {});
  EXPECT_NE(error_of([&] { SafetensorsDir::open(dir.path()); }).find("holds both"), std::string::npos);
}

// ---- malformed files: each message names the file and the tensor ------------------------------------------------

// A valid two-tensor header, to start the bad cases from: a F32[2] at [0, 8], b F16[3] at [8, 14].
const char* kTwoTensors = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F16","shape":[3],"data_offsets":[8,14]}})";

TEST(SafetensorsBadFile, GoodBaseline) {
  TempDir dir;
  write_file(dir / "ok.safetensors", file_image(kTwoTensors, 14));
  EXPECT_EQ(SafetensorsFile::open(dir / "ok.safetensors").tensors().size(), 2u);
}

TEST(SafetensorsBadFile, TooShortForTheLength) {
  expect_bad_file("abc", "", "file is 3 bytes, too short for the 8-byte header length");
  expect_bad_file("", "", "file is 0 bytes");
}

TEST(SafetensorsBadFile, HeaderLengthPastEnd) {
  expect_bad_file(le64(1000) + "{}", "", "header length 1000 runs past the end of the file (2 bytes follow");
}

TEST(SafetensorsBadFile, AbsurdHeaderLength) {
  expect_bad_file(le64(uint64_t{1} << 40) + "{}", "", "exceeds the 100000000-byte limit");
}

TEST(SafetensorsBadFile, TruncatedData) {
  const std::string image = file_image(kTwoTensors, 14);
  expect_bad_file(image.substr(0, image.size() - 3), "b",
                  "data_offsets [8, 14] end past the data buffer, which has 11 bytes");
}

TEST(SafetensorsBadFile, TruncatedHeader) {
  const std::string image = file_image(kTwoTensors, 14);
  expect_bad_file(image.substr(0, 40), "", "runs past the end of the file");
}

TEST(SafetensorsBadFile, NotJson) {
  expect_bad_file(file_image(R"({"a": nope})", 0), "", "header (11 bytes) is not valid JSON: parse error at line 1");
  expect_bad_file(file_image("{\"a\": \"\xff\"}", 0), "", "not valid JSON");  // invalid UTF-8
  expect_bad_file(file_image("", 0), "", "not valid JSON");
}

TEST(SafetensorsBadFile, NotAnObject) {
  expect_bad_file(file_image("[1, 2]", 0), "", "header is [1,2], expected a JSON object");
  expect_bad_file(file_image(R"({"a": [1]})", 0), "a", "entry is [1], expected an object");
}

TEST(SafetensorsBadFile, OffsetsOutOfBounds) {
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), "a",
                  "data_offsets [0, 16] end past the data buffer, which has 8 bytes");
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[9,9]}})", 8), "a",
                  "end past the data buffer");
}

TEST(SafetensorsBadFile, OffsetsMalformed) {
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8), "a",
                  "data_offsets [8, 4] have begin > end");
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), "a",
                  "data_offsets is [0], expected [begin, end]");
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})", 4), "a",
                  "expected [begin, end]");
}

TEST(SafetensorsBadFile, OverlappingOffsets) {
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             12),
                  "b", "data_offsets [4, 12] overlap tensor \"a\" at [0, 8]");
  // An empty tensor inside another one overlaps it too (the Rust crate agrees).
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                             8),
                  "e", "overlap tensor \"a\"");
}

// A hole or trailing bytes belong to no tensor: the message names the bytes and the tensors around them, and blames
// neither (a header that lacks one tensor's entry looks just like this).
TEST(SafetensorsBadFile, Holes) {
  EXPECT_EQ(expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[6,10]}})",
                                       10),
                            "",
                            "data bytes [4, 6) belong to no tensor (between tensor \"a\", which ends at 4, and tensor "
                            "\"b\", which starts at 6)"),
            "");
  EXPECT_EQ(expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})", 6), "",
                            "data bytes [0, 2) belong to no tensor (before tensor \"a\", which starts at 2)"),
            "");
  EXPECT_EQ(expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 9), "",
                            "the data buffer has 5 bytes after the last tensor's data (tensor \"a\" ends at 4 of 9)"),
            "");
  expect_bad_file(file_image("{}", 3), "", "the header lists no tensors but the data buffer has 3 bytes");
}

// Three F32[1] tensors a, b, c tiling a 12-byte buffer, with b's entry replaced by `b` ("" for none).
std::string three_tensors(const std::string& b) {
  return file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)" + b +
                        R"("c":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                    12);
}

// One tensor's offsets point past the data buffer: that tensor is named, not its neighbour "c" (whose offsets, sorted
// after the hole that b's data leaves, used to be reported as leaving a hole).
TEST(SafetensorsBadFile, OutOfRangeOffsetsNameTheirTensorNotANeighbour) {
  const std::string detail = "data_offsets [100, 104] end past the data buffer, which has 12 bytes";
  expect_bad_file(three_tensors(R"("b":{"dtype":"F32","shape":[1],"data_offsets":[100,104]},)"), "b", detail);
  // Listed first in the header or first by name, it is still b that is reported.
  expect_bad_file(file_image(R"({"c":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[100,104]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                             12),
                  "b", detail);
  expect_bad_file(three_tensors(R"("0":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},)"), "0",
                  "data_offsets [12, 16] end past the data buffer");
}

// A tensor's own offsets disagree with its dtype and shape, or run backwards: that tensor is named, before any
// coverage check could blame a neighbour for the gap it leaves.
TEST(SafetensorsBadFile, InconsistentOffsetsNameTheirTensor) {
  expect_bad_file(three_tensors(R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,6]},)"), "b",
                  "data_offsets [4, 6] hold 2 bytes but dtype F32 and shape [1] need 4");
  expect_bad_file(three_tensors(R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,4]},)"), "b",
                  "data_offsets [8, 4] have begin > end");
}

// A header that lacks b's entry: the gap is reported with both neighbours named, and neither is blamed.
TEST(SafetensorsBadFile, AMissingEntryIsAHoleBetweenItsNeighbours) {
  EXPECT_EQ(expect_bad_file(three_tensors(""), "",
                            "data bytes [4, 8) belong to no tensor (between tensor \"a\", which ends at 4, and tensor "
                            "\"c\", which starts at 8); is a tensor's entry missing from the header"),
            "");
  // The last entry missing: trailing bytes, named after the last tensor present, which is not blamed either.
  EXPECT_EQ(expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                       12),
                            "",
                            "the data buffer has 4 bytes after the last tensor's data (tensor \"b\" ends at 8 of 12); "
                            "is a tensor's entry missing"),
            "");
}

TEST(SafetensorsBadFile, WrongDtype) {
  expect_bad_file(file_image(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4), "a",
                  "unknown dtype \"F33\" (supported: BOOL, U8, I8, I16, F16, BF16, I32, F32, F64, I64)");
  expect_bad_file(file_image(R"({"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", 1), "a",
                  "dtype \"F8_E4M3\" is not supported");
  expect_bad_file(file_image(R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", 4), "a",
                  "dtype is 32, expected a string");
}

TEST(SafetensorsBadFile, SizeShapeMismatch) {
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "a",
                  "data_offsets [0, 8] hold 8 bytes but dtype F32 and shape [3] need 12");
}

TEST(SafetensorsBadFile, BadShape) {
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "a",
                  "shape[0] is -1, expected a non-negative integer");
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", 4), "a",
                  "shape[0] is 1.0");
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", 4), "a",
                  "shape is \"1\", expected a list of integers");
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4,0],"data_offsets":[0,0]}})", 0),
                  "a", "is too large: its element or byte count overflows");
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,0]}})", 0),
                  "a", "expected a non-negative integer below 2^63");
}

TEST(SafetensorsBadFile, Duplicates) {
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                             8),
                  "a", "appears twice in the header");
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", 4), "a",
                  "field \"dtype\" appears twice");
  expect_bad_file(file_image(R"({"__metadata__":{"k":"1","k":"2"}})", 0), "", "__metadata__ key \"k\" appears twice");
}

TEST(SafetensorsBadFile, FieldsAndMetadata) {
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", 4), "a",
                  "unknown field \"x\"");
  expect_bad_file(file_image(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4), "a", "missing field \"shape\"");
  expect_bad_file(file_image(R"({"__metadata__":{"k":1}})", 0), "", "__metadata__ key \"k\" is 1, expected a string");
  expect_bad_file(file_image(R"({"__metadata__":[]})", 0), "", "__metadata__ is [], expected an object");
}

TEST(SafetensorsBadFile, DeepNestingIsRejectedCheaply) {
  expect_bad_file(file_image(std::string(100000, '[') + std::string(100000, ']'), 0), "",
                  "header nests deeper than a safetensors header can");
  expect_bad_file(file_image(R"({"a":{"shape":[[1]]}})", 0), "a", "field \"shape\" nests too deeply");
}

TEST(SafetensorsBadFile, NotAFile) {
  TempDir dir;
  const std::string missing = dir / "missing.safetensors";
  std::string message = error_of([&] { SafetensorsFile::open(missing); });
  EXPECT_NE(message.find(missing + ": cannot open: No such file or directory"), std::string::npos) << message;
  message = error_of([&] { SafetensorsFile::open(dir.path()); });
  EXPECT_NE(message.find("is not a regular file"), std::string::npos) << message;
}

TEST(SafetensorsBadFile, RandomCorruptionNeverEscapesAsAnotherError) {
  // Flip bytes of a valid file at random: every outcome is a clean open or a SafetensorsError.
  TempDir dir;
  const std::string path = dir / "c.safetensors";
  save_safetensors(path, sample_tensors());
  const std::string original = read_file(path);
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    std::string image = original;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) image[rng() % image.size()] = static_cast<char>(rng() % 256);
    if (trial % 7 == 0) image.resize(rng() % image.size());
    write_file(path, image);
    try {
      const SafetensorsFile file = SafetensorsFile::open(path);
      for (const TensorInfo& t : file.tensors()) file.bytes(t);
    } catch (const SafetensorsError&) {
    }
  }
}

// ---- cross-checks with the Python libraries ------------------------------------------------------------------------

TEST(SafetensorsPython, CppWritesPythonReadsAndWritesTheSameBytes) {
  SKIP_WITHOUT_PYTHON();
  TempDir dir;
  const NamedTensors tensors = sample_tensors();
  const Metadata metadata = {{"format", "pt"}};  // one key: Python writes metadata in hash order
  save_safetensors(dir / "cpp.safetensors", tensors, metadata);
  write_file(dir / "spec.json", spec_of(tensors, metadata).dump());
  const std::string script = std::string(kPythonPrelude) + R"PY(
path, out, spec_path = sys.argv[1:4]
spec = json.load(open(spec_path))
loaded = load_file(path)
assert sorted(loaded) == sorted(n for n, _, _ in spec["tensors"]), sorted(loaded)
for name, dt, shape in spec["tensors"]:
    t = loaded[name]
    assert t.dtype == DTYPES[dt] and list(t.shape) == shape, (name, t.dtype, t.shape)
    assert torch.equal(t, pattern(shape, DTYPES[dt])), name
with safe_open(path, framework="pt") as f:
    assert (f.metadata() or {}) == spec["metadata"], f.metadata()
save_file(loaded, out, metadata=spec["metadata"])
print("OK")
)PY";
  const auto result = run_python(dir, script, {dir / "cpp.safetensors", dir / "py.safetensors", dir / "spec.json"});
  ASSERT_PYTHON_OK(result);
  // Python's writer, given what it read, produces exactly the bytes the C++ writer produced.
  EXPECT_EQ(read_file(dir / "cpp.safetensors"), read_file(dir / "py.safetensors"));
}

TEST(SafetensorsPython, PythonWritesCppReads) {
  SKIP_WITHOUT_PYTHON();
  TempDir dir;
  const std::string script = std::string(kPythonPrelude) + R"PY(
folder = sys.argv[1]
torch.manual_seed(0)
tensors = {
    "model.embed_tokens.weight": torch.randn(7, 5),
    "model.norm.weight": torch.randn(5).to(torch.bfloat16),
    "lm_head.weight": torch.randn(3, 5).half(),
    "f64": torch.randn(2, dtype=torch.float64),
    "ids": torch.arange(6, dtype=torch.int64).reshape(2, 3) - 3,
    "i32": torch.tensor([1, -2, 3], dtype=torch.int32),
    "u8": torch.tensor([0, 255, 7], dtype=torch.uint8),
    "mask": torch.tensor([True, False, True]),
    "scalar": torch.tensor(3.5),
    "empty": torch.zeros(0, 4),
}
save_file(tensors, os.path.join(folder, "py.safetensors"), metadata={"format": "pt", "source": "python"})
dump(tensors, folder)
print("OK")
)PY";
  ASSERT_PYTHON_OK(run_python(dir, script, {dir.path()}));
  const SafetensorsDir st = SafetensorsDir::open_file(dir / "py.safetensors");
  EXPECT_EQ(st.files()[0].metadata(), (Metadata{{"format", "pt"}, {"source", "python"}}));
  expect_matches_manifest(st, dir);
}

TEST(SafetensorsPython, TransformersShardedSaveCppReads) {
  SKIP_WITHOUT_PYTHON();
  TempDir dir;
  const std::string script = std::string(kPythonPrelude) + R"PY(
from transformers import LlamaConfig, LlamaForCausalLM
folder = sys.argv[1]
torch.manual_seed(0)
config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                     num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False,
                     max_position_embeddings=32)
model = LlamaForCausalLM(config).to(torch.bfloat16)
model.save_pretrained(os.path.join(folder, "model"), max_shard_size="4KB")
assert os.path.exists(os.path.join(folder, "model", "model.safetensors.index.json"))
dump(model.state_dict(), folder)
print("OK")
)PY";
  ASSERT_PYTHON_OK(run_python(dir, script, {dir.path()}));
  const SafetensorsDir st = SafetensorsDir::open(dir / "model");
  EXPECT_GT(st.files().size(), 1u);
  expect_matches_manifest(st, dir);
}

TEST(SafetensorsPython, CppShardedSaveMatchesHuggingfaceHub) {
  SKIP_WITHOUT_PYTHON();
  TempDir dir;
  // Sizes chosen so that the greedy split closes shards, and one tensor exceeds the limit on its own.
  NamedTensors tensors = {
      {"w0", pattern_tensor({10}, at::kFloat)},     {"w1", pattern_tensor({30}, at::kFloat)},
      {"big", pattern_tensor({100}, at::kFloat)},   {"w2", pattern_tensor({8}, at::kBFloat16)},
      {"w3", pattern_tensor({20}, at::kHalf)},      {"ids", pattern_tensor({4}, at::kLong)},
      {"w4", pattern_tensor({2, 15}, at::kFloat)},
  };
  const uint64_t max_shard_bytes = 160;
  save_safetensors_dir(dir / "model", tensors, max_shard_bytes, {{"format", "pt"}});
  write_file(dir / "spec.json", spec_of(tensors, {{"format", "pt"}}).dump());
  const std::string script = std::string(kPythonPrelude) + R"PY(
from huggingface_hub import split_torch_state_dict_into_shards
folder, spec_path, max_bytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec = json.load(open(spec_path))
index_path = os.path.join(folder, "model.safetensors.index.json")
index = json.load(open(index_path))
state_dict = {}
for shard in sorted(set(index["weight_map"].values())):
    with safe_open(os.path.join(folder, shard), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}
    for name, t in load_file(os.path.join(folder, shard)).items():
        assert index["weight_map"][name] == shard, name
        state_dict[name] = t
ordered = {}
for name, dt, shape in spec["tensors"]:
    t = state_dict[name]
    assert t.dtype == DTYPES[dt] and list(t.shape) == shape and torch.equal(t, pattern(shape, DTYPES[dt])), name
    ordered[name] = t
split = split_torch_state_dict_into_shards(ordered, filename_pattern="model{suffix}.safetensors",
                                           max_shard_size=max_bytes)
assert split.is_sharded
assert split.tensor_to_filename == index["weight_map"], (split.tensor_to_filename, index["weight_map"])
expected = {"metadata": {"total_parameters": sum(t.numel() for t in ordered.values()), **split.metadata},
            "weight_map": split.tensor_to_filename}
text = open(index_path).read()
assert text == json.dumps(expected, indent=2, sort_keys=True) + "\n", text
print("OK")
)PY";
  ASSERT_PYTHON_OK(run_python(dir, script, {dir / "model", dir / "spec.json", std::to_string(max_shard_bytes)}));
}

}  // namespace
}  // namespace aligntrain::model
