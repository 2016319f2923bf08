// See parquet_rows.h. Compiled as C++20 (Arrow's headers need it); nothing of Arrow leaks through the header.
#include "data/parquet_rows.h"

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <parquet/arrow/reader.h>
#include <parquet/exception.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>

#include <nlohmann/json.hpp>

#include "common/data_source.h"
#include "common/errors.h"

namespace aligntrain::data {

namespace {

using nlohmann::json;

struct Unsupported {
  std::string what;
};

json value_at(const arrow::Array& array, int64_t i);

template <typename ListArray>
json list_at(const ListArray& list, int64_t i) {
  json out = json::array();
  const auto values = list.values();
  for (int64_t k = list.value_offset(i); k < list.value_offset(i) + list.value_length(i); ++k)
    out.push_back(value_at(*values, k));
  return out;
}

json value_at(const arrow::Array& array, int64_t i) {
  if (array.IsNull(i)) return nullptr;
  switch (array.type_id()) {
    case arrow::Type::STRING: return std::string(static_cast<const arrow::StringArray&>(array).GetView(i));
    case arrow::Type::LARGE_STRING: return std::string(static_cast<const arrow::LargeStringArray&>(array).GetView(i));
    case arrow::Type::STRING_VIEW: return std::string(static_cast<const arrow::StringViewArray&>(array).GetView(i));
    case arrow::Type::BOOL: return static_cast<const arrow::BooleanArray&>(array).Value(i);
    case arrow::Type::INT8: return static_cast<const arrow::Int8Array&>(array).Value(i);
    case arrow::Type::INT16: return static_cast<const arrow::Int16Array&>(array).Value(i);
    case arrow::Type::INT32: return static_cast<const arrow::Int32Array&>(array).Value(i);
    case arrow::Type::INT64: return static_cast<const arrow::Int64Array&>(array).Value(i);
    case arrow::Type::UINT8: return static_cast<const arrow::UInt8Array&>(array).Value(i);
    case arrow::Type::UINT16: return static_cast<const arrow::UInt16Array&>(array).Value(i);
    case arrow::Type::UINT32: return static_cast<const arrow::UInt32Array&>(array).Value(i);
    case arrow::Type::UINT64: return static_cast<const arrow::UInt64Array&>(array).Value(i);
    case arrow::Type::FLOAT: return static_cast<const arrow::FloatArray&>(array).Value(i);
    case arrow::Type::DOUBLE: return static_cast<const arrow::DoubleArray&>(array).Value(i);
    case arrow::Type::LIST: return list_at(static_cast<const arrow::ListArray&>(array), i);
    case arrow::Type::LARGE_LIST: return list_at(static_cast<const arrow::LargeListArray&>(array), i);
    case arrow::Type::STRUCT: {
      const auto& s = static_cast<const arrow::StructArray&>(array);
      json out = json::object();
      for (int f = 0; f < s.num_fields(); ++f) out[s.struct_type()->field(f)->name()] = value_at(*s.field(f), i);
      return out;
    }
    case arrow::Type::DICTIONARY: {  // categorical columns: the dictionary's value
      const auto& d = static_cast<const arrow::DictionaryArray&>(array);
      return value_at(*d.dictionary(), d.GetValueIndex(i));
    }
    default:
      throw Unsupported{array.type()->ToString()};
  }
}

template <typename T>
T ok_or_throw(arrow::Result<T> result, const std::string& where) {
  if (!result.ok()) throw DataError(where + ": " + result.status().message());
  return std::move(result).ValueUnsafe();
}

// Arrow sizes its buffers by the row and value counts the footer declares, so a corrupt footer (a few bytes claiming
// billions of rows) would allocate gigabytes before any page is read. The counts must agree with each other: the row
// groups' rows add up to the file's, and each column chunk holds at least one value (or null) per row.
void check_declared_counts(const parquet::FileMetaData& md, const std::string& file) {
  int64_t rows = 0;
  for (int g = 0; g < md.num_row_groups(); ++g) {
    const auto rg = md.RowGroup(g);
    const std::string where = file + ": row group " + std::to_string(g);
    if (rg->num_rows() < 0) throw DataError(where + ": a negative row count (a corrupt footer)");
    for (int c = 0; c < rg->num_columns(); ++c) {
      const auto chunk = rg->ColumnChunk(c);
      if (chunk->num_values() < rg->num_rows()) {
        throw DataError(where + ": column " + chunk->path_in_schema()->ToDotString() + " holds " +
                        std::to_string(chunk->num_values()) + " value(s) for " + std::to_string(rg->num_rows()) +
                        " declared row(s) (a corrupt footer)");
      }
    }
    rows += rg->num_rows();
  }
  if (rows != md.num_rows()) {
    throw DataError(file + ": the row groups declare " + std::to_string(rows) + " row(s), the file " +
                    std::to_string(md.num_rows()) + " (a corrupt footer)");
  }
}

}  // namespace

std::string parquet_location(const ParquetRow& row) {
  return row.file + ": row group " + std::to_string(row.row_group) + ", row " + std::to_string(row.row_in_group);
}

void for_each_parquet_row(const std::string& value, const std::function<void(const ParquetRow&)>& fn) {
  const auto files = data_source_files(value);
  if (files.empty()) throw DataError(value + ": no Parquet files (a .parquet file, a folder of them or a glob)");
  ParquetRow row;
  for (const std::string& file : files) {
    row.file = file;
    std::unique_ptr<parquet::arrow::FileReader> reader;
    try {
      auto input = ok_or_throw(arrow::io::ReadableFile::Open(file), file);
      reader =
          ok_or_throw(parquet::arrow::OpenFile(input, arrow::default_memory_pool()), file + ": not a Parquet file");
    } catch (const parquet::ParquetException& e) {
      throw DataError(file + ": not a Parquet file: " + e.what());
    }
    try {
      check_declared_counts(*reader->parquet_reader()->metadata(), file);
    } catch (const parquet::ParquetException& e) {
      throw DataError(file + ": unreadable Parquet metadata: " + e.what());
    }
    for (int g = 0; g < reader->num_row_groups(); ++g) {
      row.row_group = g;
      std::shared_ptr<arrow::Table> table;
      const std::string where = file + ": row group " + std::to_string(g);
      try {
        table = ok_or_throw(reader->ReadRowGroup(g), where);
        table = ok_or_throw(table->CombineChunks(), where);
      } catch (const parquet::ParquetException& e) {
        throw DataError(where + ": " + e.what());
      }
      const auto& schema = *table->schema();
      std::vector<std::shared_ptr<arrow::Array>> columns;
      for (int c = 0; c < table->num_columns(); ++c) {
        const auto& chunks = table->column(c)->chunks();
        columns.push_back(chunks.empty() ? nullptr : chunks.front());
      }
      for (int64_t r = 0; r < table->num_rows(); ++r) {
        row.row_in_group = r;
        ++row.row;
        json obj = json::object();
        for (int c = 0; c < table->num_columns(); ++c) {
          if (!columns[static_cast<size_t>(c)] || columns[static_cast<size_t>(c)]->IsNull(r)) continue;
          try {
            obj[schema.field(c)->name()] = value_at(*columns[static_cast<size_t>(c)], r);
          } catch (const Unsupported& u) {
            throw DataError(parquet_location(row) + ": " + schema.field(c)->name() + ": a column of type " + u.what +
                            ", which has no JSON form (expected strings, numbers, booleans, lists or structs)");
          }
        }
        try {
          row.json = obj.dump();
        } catch (const json::exception&) {
          throw DataError(parquet_location(row) + ": text that is not valid UTF-8");
        }
        fn(row);
      }
    }
  }
}

}  // namespace aligntrain::data
