// libFuzzer target for the example reader (data/example.h): JSONL, or Parquet when built with -DFUZZ_PARQUET (the
// `parquet` target: the input is written as a .parquet file, read through Arrow's reader, data/parquet_rows.h).
// Each input is written to a file and read as each data kind (and auto-detected), strictly and with skip_invalid. The only exception allowed out of the reader is
// DataError; anything else escapes and is reported as a crash. What it returns must be consistent:
//   - skip_invalid: every non-empty line is either an example or skipped, and the strict read fails exactly when
//     something was skipped;
//   - examples are numbered 0, 1, ... in increasing line order, with the fields their kind requires, and a
//     response is never empty and has the prompt's form (text or messages).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "common/errors.h"
#include "data/example.h"

namespace {

using aligntrain::DataError;
using namespace aligntrain::data;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

const std::string& scratch_path() {
#ifdef FUZZ_PARQUET
  static const std::string path = "/tmp/examples_fuzz." + std::to_string(getpid()) + ".parquet";
#else
  static const std::string path = "/tmp/examples_fuzz." + std::to_string(getpid()) + ".jsonl";
#endif
  return path;
}

void check(const std::vector<Example>& examples, DataKind kind) {
  int64_t last_line = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    const Example& ex = examples[i];
    require(ex.index == static_cast<int64_t>(i));
    require(ex.line > last_line);
    last_line = ex.line;
    for (const auto* r : {&ex.completion, &ex.chosen, &ex.rejected}) {
      if (!*r) continue;
      require((*r)->conversational == ex.prompt.conversational);
      require((*r)->conversational ? !(*r)->messages.empty() : !(*r)->text.empty());
    }
    switch (kind) {
      case DataKind::kSft: require(ex.completion.has_value()); break;
      case DataKind::kPreference: require(ex.chosen && ex.rejected); break;
      case DataKind::kUnpaired: require(ex.completion && ex.label); break;
      case DataKind::kNegatives: require(ex.rejected.has_value()); break;
      default: break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = scratch_path();
  FILE* f = std::fopen(path.c_str(), "wb");
  require(f != nullptr);
  if (size > 0) require(std::fwrite(data, 1, size, f) == size);
  std::fclose(f);
  for (const DataKind kind :
       {DataKind::kAuto, DataKind::kSft, DataKind::kPreference, DataKind::kUnpaired, DataKind::kNegatives,
        DataKind::kPrompts}) {
    bool strict_ok = false;
    size_t strict_count = 0;
    try {
      DataKind detected = DataKind::kAuto;
      const auto examples = read_examples(path, {kind, false}, nullptr, &detected);
      strict_ok = true;
      strict_count = examples.size();
      check(examples, kind == DataKind::kAuto ? detected : kind);
    } catch (const DataError&) {
    }
    ReadReport report;
    try {
      DataKind detected = DataKind::kAuto;
      const auto examples = read_examples(path, {kind, true}, &report, &detected);
      check(examples, kind == DataKind::kAuto ? detected : kind);
      require(static_cast<int64_t>(examples.size()) + report.skipped == report.lines);
      require(strict_ok == (report.skipped == 0));
      if (strict_ok) require(strict_count == examples.size());
    } catch (const DataError&) {
      require(!strict_ok);  // nothing valid at all: the strict read failed too
    }
  }
  return 0;
}
