// Where a stage's data comes from (DESIGN.md §4): a JSONL file, or Parquet as the Hugging Face Hub stores datasets:
// one .parquet file, a folder of them (its *.parquet files, not its subfolders), or a glob of shards such as
// data/train-*.parquet. Shared by the recipe checks, the readers and the fingerprints, so that all three see the
// same files in the same order.
#pragma once

#include <string>
#include <vector>

namespace aligntrain {

// True for a value naming Parquet data: a path ending in ".parquet" (a file or a glob), or an existing folder.
bool is_parquet_source(const std::string& value);

// The files of a data value, in the order they are read: {value} for a file; a folder's *.parquet files or a
// glob's matches sorted by name. Empty when a folder or glob matches nothing (or a file does not exist).
std::vector<std::string> data_source_files(const std::string& value);

}  // namespace aligntrain
