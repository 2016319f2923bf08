// Rows of Parquet data files (the Hugging Face Hub's dataset format) as JSON objects, so that every JSONL reader
// takes Parquet unchanged: one JSON object per row, a field per column with the column's name, values converted as
// the datasets library shows them (strings, numbers, booleans; lists as arrays; structs, e.g. chat messages, as
// objects). A null top-level value leaves the field out, as a missing field; a null inside a list or struct stays
// null. Built on Apache Arrow's C++ reader from the pyarrow wheel (third_party/arrow.bzl).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace aligntrain::data {

struct ParquetRow {
  std::string file;
  int row_group = 0;         // 0-based within the file
  int64_t row_in_group = 0;  // 0-based within the row group
  int64_t row = 0;           // 1-based across all files of the source, in reading order
  std::string json;          // the row as one line of JSON
};

// "FILE: row group G, row R" (both 0-based, as pyarrow numbers them): where error messages point.
std::string parquet_location(const ParquetRow& row);

// Calls fn for every row of every file of `value` (common/data_source.h: a file, a folder or a glob), in order.
// Throws DataError naming the file (and row group and row where it applies) for a file that is not Parquet, a
// column of a type that has no JSON form (binary, dates, ...), or text that is not UTF-8.
void for_each_parquet_row(const std::string& value, const std::function<void(const ParquetRow&)>& fn);

}  // namespace aligntrain::data
