// std::filesystem in a binary linked against LibTorch as aligntrain is (//third_party:torch). The torch 2.11 wheel's
// libtorch.so and libtorch_cpu.so export their own copies of std::filesystem functions, built against another
// libstdc++; a binary whose calls bind to them crashes (remove_all on a non-empty folder segfaulted).
// third_party/torch.bzl lists libstdc++ first in DT_NEEDED so that the dynamic linker binds those calls to the system
// libstdc++. This test checks both the symptom (remove_all, create_directories, copy_file and rename on a nested,
// non-empty tree) and the cause (which library the dynamic linker resolves the symbols to), with LibTorch loaded.
#include <dlfcn.h>
#include <link.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <ATen/ops/ones.h>

namespace {

namespace fs = std::filesystem;

// Whether a shared object whose path contains `name` is loaded into this process.
bool loaded(const std::string& name) {
  struct Query {
    std::string name;
    bool found = false;
  } query{name};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* q = static_cast<Query*>(data);
        if (info->dlpi_name != nullptr && std::string(info->dlpi_name).find(q->name) != std::string::npos) q->found = true;
        return 0;
      },
      &query);
  return query.found;
}

// The file of the shared object that the global symbol lookup (the dynamic linker's order) finds `symbol` in.
std::string defining_object(const char* symbol) {
  void* address = dlsym(RTLD_DEFAULT, symbol);
  if (address == nullptr) return "(not found)";
  Dl_info info{};
  if (dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "(unknown)";
  return info.dli_fname;
}

fs::path scratch(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  const fs::path dir = fs::path(base != nullptr && *base ? base : "/tmp") / name;
  std::error_code ignored;
  fs::remove_all(dir, ignored);
  return dir;
}

// A non-empty tree: dir/a/b/c/file, dir/a/file, dir/x/file, dir/file.
void make_tree(const fs::path& dir) {
  fs::create_directories(dir / "a" / "b" / "c");
  fs::create_directories(dir / "x");
  for (const fs::path& f : {dir / "a" / "b" / "c" / "f", dir / "a" / "f", dir / "x" / "f", dir / "f"}) {
    std::ofstream(f) << "some bytes\n";
  }
}

TEST(FilesystemWithLibTorch, LibTorchIsLoaded) {
  // Use LibTorch so that the linker keeps it, as in aligntrain; otherwise this test would prove nothing.
  EXPECT_EQ(at::ones({2, 3}).numel(), 6);
  EXPECT_TRUE(loaded("libtorch_cpu.so"));
}

TEST(FilesystemWithLibTorch, RemoveAllRemovesANonEmptyNestedFolder) {
  const fs::path dir = scratch("remove_all_tree");
  make_tree(dir);
  ASSERT_TRUE(fs::exists(dir / "a" / "b" / "c" / "f"));
  EXPECT_EQ(fs::remove_all(dir), 9u);  // 4 files and 5 folders, dir included
  EXPECT_FALSE(fs::exists(dir));

  make_tree(dir);
  std::error_code ec;
  EXPECT_EQ(fs::remove_all(dir, ec), 9u);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_EQ(fs::remove_all(dir, ec), 0u);  // already gone: nothing to do, no error
  EXPECT_FALSE(ec) << ec.message();
}

TEST(FilesystemWithLibTorch, CopyAndRenameANestedFolder) {
  const fs::path dir = scratch("copy_rename_tree");
  make_tree(dir / "src");
  fs::copy_file(dir / "src" / "f", dir / "src" / "g", fs::copy_options::overwrite_existing);
  fs::rename(dir / "src", dir / "dst");
  EXPECT_TRUE(fs::exists(dir / "dst" / "a" / "b" / "c" / "f"));
  EXPECT_TRUE(fs::exists(dir / "dst" / "g"));
  EXPECT_FALSE(fs::exists(dir / "src"));
  EXPECT_EQ(fs::remove_all(dir), 11u);  // dir, the 9 entries of the tree, g
}

// The cause: the functions aligntrain calls resolve to the system libstdc++, not to LibTorch's copies.
TEST(FilesystemWithLibTorch, SymbolsBindToTheSystemLibstdcxx) {
  ASSERT_TRUE(loaded("libtorch_cpu.so"));
  const std::vector<const char*> symbols = {
      "_ZNSt10filesystem10remove_allERKNS_7__cxx114pathE",
      "_ZNSt10filesystem10remove_allERKNS_7__cxx114pathERSt10error_code",
      "_ZNSt10filesystem18create_directoriesERKNS_7__cxx114pathE",
      "_ZNSt10filesystem6removeERKNS_7__cxx114pathE",
      "_ZNSt10filesystem6renameERKNS_7__cxx114pathES3_",
      "_ZNSt10filesystem6statusERKNS_7__cxx114pathE",
  };
  for (const char* symbol : symbols) {
    EXPECT_NE(defining_object(symbol).find("libstdc++"), std::string::npos)
        << symbol << " resolves to " << defining_object(symbol);
  }
}

}  // namespace
