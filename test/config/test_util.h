// Helpers for the config tests: a fresh temporary folder with small data files, writing recipes into it,
// collecting the diagnostics of a recipe that must fail, and finding the repository's example recipes
// both under `bazel test` (runfiles) and in a plain build run from the repository root.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/recipe.h"

namespace aligntrain::config::testing {

namespace fs = std::filesystem;

// A file of the repository: $TEST_SRCDIR/aligntrain/REL under Bazel, else REL relative to the current
// folder or one of its parents.
inline std::string repo_file(const std::string& rel) {
  if (const char* srcdir = std::getenv("TEST_SRCDIR")) {
    fs::path p = fs::path(srcdir) / "aligntrain" / rel;
    if (fs::exists(p)) return p.string();
  }
  for (fs::path dir = fs::current_path(); !dir.empty(); dir = dir.parent_path()) {
    if (fs::exists(dir / rel)) return (dir / rel).string();
    if (dir == dir.parent_path()) break;
  }
  return rel;
}

// Scratch space: Bazel's $TEST_TMPDIR, else the system's temporary folder.
inline fs::path temp_root() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return tmp ? fs::path(tmp) : fs::temp_directory_path();
}

inline void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

class RecipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = temp_root() /
           (std::string("aligntrain_config_") + info->test_suite_name() + "_" + info->name() + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    write_file(dir_ / "data/sft.jsonl", "{\"prompt\": \"sort: 2 1\\n\", \"completion\": \"1 2\"}\n");
    write_file(dir_ / "data/pairs.jsonl", "{\"prompt\": \"sort: 2 1\\n\", \"chosen\": \"1 2\", \"rejected\": \"2 1\"}\n");
    write_file(dir_ / "data/prompts.jsonl", "{\"prompt\": \"sort: 2 1\\n\"}\n");
    write_file(dir_ / "data/empty.jsonl", "");
    fs::create_directories(dir_ / "data/folder.jsonl");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& text, const std::string& name = "recipe.yaml") {
    write_file(dir_ / name, text);
    return (dir_ / name).string();
  }

  Recipe load(const std::string& text, const std::vector<std::string>& overrides = {}) {
    return load_recipe(write(text), overrides);
  }

  // The diagnostics of a recipe that must not load.
  Diagnostics errors(const std::string& text, const std::vector<std::string>& overrides = {}) {
    try {
      load(text, overrides);
    } catch (const RecipeError& e) {
      return e.diagnostics();
    }
    ADD_FAILURE() << "the recipe loaded, but it should have failed:\n" << text;
    return {};
  }

  fs::path dir_;
};

// True when one diagnostic's formatted text contains every one of `parts`.
inline ::testing::AssertionResult HasError(const Diagnostics& ds, const std::vector<std::string>& parts) {
  for (const auto& d : ds) {
    const std::string text = format(d);
    bool all = true;
    for (const auto& part : parts) all = all && text.find(part) != std::string::npos;
    if (all) return ::testing::AssertionSuccess();
  }
  std::string wanted;
  for (const auto& part : parts) wanted += " [" + part + "]";
  return ::testing::AssertionFailure() << "no diagnostic contains" << wanted << "; got:\n" << format(ds);
}

// A valid two-stage recipe; tests edit it with std::string replace. Line numbers are fixed:
//  1 models / 2 base / 3 stages / 4 - name: sft / 5 kind / 6 policy / 7 data /
//  8 - name: dpo / 9 kind / 10 policy / 11 reference / 12 data / 13 loss
inline const char* kBase = R"(models:
  base: {init: {preset: tiny-llama}}
stages:
  - name: sft
    kind: sft
    policy: base
    data: {train: data/sft.jsonl}
  - name: dpo
    kind: preference
    policy: sft
    reference: sft
    data: {train: data/pairs.jsonl}
    loss: {type: dpo, beta: 0.1}
)";

// kBase with the first occurrence of `from` replaced by `to`.
inline std::string edit(const std::string& from, const std::string& to, std::string text = kBase) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "`" << from << "` is not in the recipe";
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

}  // namespace aligntrain::config::testing
