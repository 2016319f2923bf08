// Parquet data (data/parquet_rows.h through data/example.h): files written by pyarrow — plain text, conversations
// (list<struct<role, content>> columns), preference pairs in Hub-style shards read by folder and by glob, nulls —
// give exactly the examples of the equivalent JSONL; wrong column types, unsupported types, files that are not
// Parquet, a footer that declares more rows than its columns hold (found by the fuzzer: Arrow would allocate for
// them) and sources with no files give a DataError naming the file, row group and row.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "common/data_source.h"
#include "common/errors.h"
#include "data/example.h"
#include "test/util/test_env.h"

namespace aligntrain::data {
namespace {

namespace fs = std::filesystem;

// Writes every file next to its JSONL twin (the same records, in the same order).
const char* kMakeData = R"PY(
import json, os, sys
import pyarrow as pa, pyarrow.parquet as pq
out = sys.argv[1]

def write(name, rows, schema=None, row_group_size=None, shards=None):
    with open(os.path.join(out, name + ".jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n")
    table = pa.Table.from_pylist(rows, schema=schema)
    if shards:
        os.makedirs(os.path.join(out, name), exist_ok=True)
        step = (len(rows) + shards - 1) // shards
        for s in range(shards):
            pq.write_table(table.slice(s * step, step),
                           os.path.join(out, name, "train-%05d-of-%05d.parquet" % (s, shards)))
    else:
        pq.write_table(table, os.path.join(out, name + ".parquet"), row_group_size=row_group_size)

texts = ["sort these digits: 3 1 2\n", "héllo wörld", "世界 😀", "  leading spaces", "tabs\tand\nnewlines", "x" * 300]
plain = [{"prompt": texts[i % 6] + str(i), "completion": texts[(i + 1) % 6], "chosen": None if i % 3 else "ref " + str(i)}
         for i in range(23)]
write("plain", plain, row_group_size=5)
conv = [{"messages": [{"role": "system", "content": "be brief"}] * (i % 2) +
                     [{"role": "user", "content": texts[i % 6]}, {"role": "assistant", "content": texts[(i + 2) % 6]}]}
        for i in range(12)]
write("conv", conv, row_group_size=4)
pairs = [{"prompt": texts[i % 6], "chosen": "good " + str(i), "rejected": "bad " + str(i)} for i in range(17)]
write("pairs", pairs, shards=3)
unpaired = [{"prompt": texts[i % 6], "completion": "c" + str(i), "label": bool(i % 2)} for i in range(9)]
write("unpaired", unpaired, row_group_size=4)

# Errors: a missing prompt (null) in the second row group; a prompt column of integers; a binary column; not Parquet.
bad = [{"prompt": "p" + str(i), "completion": "c"} for i in range(7)]
bad[5]["prompt"] = None
pq.write_table(pa.Table.from_pylist(bad), os.path.join(out, "null_prompt.parquet"), row_group_size=3)
pq.write_table(pa.table({"prompt": [1, 2], "completion": ["a", "b"]}), os.path.join(out, "int_prompt.parquet"))
pq.write_table(pa.table({"prompt": ["a"], "completion": ["b"], "blob": pa.array([b"\x00\x01"], pa.binary())}),
               os.path.join(out, "binary.parquet"))
with open(os.path.join(out, "garbage.parquet"), "wb") as f:
    f.write(b"PAR1 this is not a parquet file at all PAR1")
os.makedirs(os.path.join(out, "empty_folder"), exist_ok=True)
# Found by the parquet fuzz target: 906 bytes whose footer declares 9,103,668,863 rows in one row group (Arrow would
# allocate 32 GiB for them).
import base64
with open(os.path.join(out, "footer_rows.parquet"), "wb") as f:
    f.write(base64.b64decode(
        "UEFSMRUEFSoVKkwVBBUAEgAABAAAAHVzZXIJAAAAYXNzAAAAAG50FQAVHhUeLBUEFRAVBhUGHDYAKAR1c2VyGAlhc3Npc3RhbnQR"
        "EQAAAAIAAAADAgIAAAAEBAEDAhUEFRQVFEwVBBUAEgAAAQAAAHgBAAAAeRUAFR4VHiwVBBUQFQYVBhw2ACgBeRgBeBERAAAAAgAA"
        "AAMCAgAAAAQEAQMCFQQZbDUAGAZzY2hlbWEVAgA1AhgIbWVzM2FnZXMVAhUGTDwAAAA1BBgEbGlzdBUCADUCGAdlbGVtZW50FQQA"
        "FQwlAhgEcm9sZSUATBwAAAAVDCUCGAdjb250ZW50JQBMHAAAABYCGRwZLCYAHBUMGTUABhAZSAhwZXNzYWdlcwRsaXN0B2VsZW1l"
        "bnQEcm9sZRUAFgQWtAEWtAEmTiYIHDYAKAR1c2VyGAlhc3Npc3RhbnQREQAZLBUEFQAVAgAVABUQFQIAPBYaGSYCAhlWAAAAAAQA"
        "AAAmABwVDBk1AAYQGUgIbWVzc2FnZXMEbGlzdAdlbGVtZW50B2NvbnRlbnQVABYEFogBFogBJuwBJrwBHDYAKAF5GAF4EREAGSwV"
        "BBUAFQIAFQAVEBUCADwWBBkmAgIZVgAAAAAEAAAAFrwCFv7Z9+lD/f/gHBgMQVJST1c6c2NoZW1hGNgCLy8vLy8vZ0FBQUFRQUFB"
        "QUFBQUtBQXdBQmdBRkFBZ0FDZ0FBQUFBQkJBQU1BQUFBQ0FBSUFBQUFCQUFJQUFBQUJBQUFBQUVBQUFBRUFBQUFlUC8vL3dBQUFR"
        "d1VBQUFBSUFBQUFBUUFBQUFCQUFBQUdBQUFBQWdBQUFCdFpYTnpZV2RsY3dBQUFBQncvLy8vcVAvLy93QUFBUTBZQUFBQUlBQUFB"
        "QVFBQUFBQ0FBQUFVQUFBQUJRQUFBQUVBQUFBYVhSbGJRQUFBQUNnLy8vLzJQLy8vd0FBQVFVUUFBQUFHQUFBQUFRQUFBQUFBQUFB"
        "QndBQUFHTnZiblJsYm5RQXlQLy8veEFBRkFBSUFBWUFCd0FNQUFBQUVBQVFBQUFBQUFBQkJSQUFBQUFjQUFBQUJBQUFBQUFBQUFB"
        "RUFBQUFjbTlzWlFBQUFBQUVBQVFBQkFBQUFBPT0AGCBwYXJxdWV0LWNwcC1hcnJvdyB2ZXJzaW9uIDI2LjAuMRksHAAAHAAAAOAC"
        "AABQQVIx"
    ))
)PY";

class ParquetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = aligntrain::testing::scratch_dir("parquet_test");
    const fs::path script = dir_ / "make_data.py";
    std::ofstream(script) << kMakeData;
    aligntrain::testing::run_or_throw(aligntrain::testing::python() + " " + script.string() + " " + dir_.string());
  }
  static std::string at(const std::string& name) { return (dir_ / name).string(); }
  static fs::path dir_;
};
fs::path ParquetTest::dir_;

void expect_same_text(const std::optional<Text>& a, const std::optional<Text>& b, const std::string& what) {
  ASSERT_EQ(a.has_value(), b.has_value()) << what;
  if (!a) return;
  EXPECT_EQ(a->conversational, b->conversational) << what;
  EXPECT_EQ(a->text, b->text) << what;
  ASSERT_EQ(a->messages.size(), b->messages.size()) << what;
  for (size_t i = 0; i < a->messages.size(); ++i) {
    EXPECT_EQ(a->messages[i].role, b->messages[i].role) << what;
    EXPECT_EQ(a->messages[i].content, b->messages[i].content) << what;
  }
}

void expect_same_examples(const std::string& parquet, const std::string& jsonl, DataKind kind) {
  DataKind kp = DataKind::kAuto, kj = DataKind::kAuto;
  const auto p = read_examples(parquet, {kind, false}, nullptr, &kp);
  const auto j = read_examples(jsonl, {kind, false}, nullptr, &kj);
  EXPECT_EQ(kp, kj) << parquet;
  ASSERT_EQ(p.size(), j.size()) << parquet;
  for (size_t i = 0; i < p.size(); ++i) {
    const std::string what = parquet + " example " + std::to_string(i);
    EXPECT_EQ(p[i].line, j[i].line) << what << ": rows are numbered from 1 across files, as lines";
    EXPECT_EQ(p[i].index, j[i].index) << what;
    expect_same_text(p[i].prompt, j[i].prompt, what + " prompt");
    expect_same_text(p[i].completion, j[i].completion, what + " completion");
    expect_same_text(p[i].chosen, j[i].chosen, what + " chosen");
    expect_same_text(p[i].rejected, j[i].rejected, what + " rejected");
    EXPECT_EQ(p[i].label, j[i].label) << what;
  }
}

std::string data_error(const std::string& path, DataKind kind = DataKind::kAuto) {
  try {
    read_examples(path, {kind, false});
  } catch (const DataError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_F(ParquetTest, GivesTheExamplesOfTheEquivalentJsonl) {
  expect_same_examples(at("plain.parquet"), at("plain.jsonl"), DataKind::kSft);
  expect_same_examples(at("plain.parquet"), at("plain.jsonl"), DataKind::kAuto);
  expect_same_examples(at("conv.parquet"), at("conv.jsonl"), DataKind::kSft);
  expect_same_examples(at("unpaired.parquet"), at("unpaired.jsonl"), DataKind::kUnpaired);
}

TEST_F(ParquetTest, ReadsShardsByFolderAndByGlobInNameOrder) {
  EXPECT_EQ(data_source_files(at("pairs")).size(), 3u);
  EXPECT_EQ(data_source_files(at("pairs/train-*.parquet")), data_source_files(at("pairs")));
  expect_same_examples(at("pairs"), at("pairs.jsonl"), DataKind::kPreference);
  expect_same_examples(at("pairs/train-*-of-00003.parquet"), at("pairs.jsonl"), DataKind::kAuto);
}

TEST_F(ParquetTest, ANullOptionalFieldIsAbsentAndANullRequiredOneNamesItsRow) {
  const auto ex = read_examples(at("plain.parquet"), {DataKind::kSft, false});
  EXPECT_TRUE(ex[0].chosen.has_value());
  EXPECT_FALSE(ex[1].chosen.has_value());
  const std::string e = data_error(at("null_prompt.parquet"), DataKind::kSft);
  EXPECT_NE(e.find("null_prompt.parquet: row group 1, row 2: prompt: missing field"), std::string::npos) << e;
}

TEST_F(ParquetTest, WrongAndUnsupportedTypesAndBadFilesAreDataErrors) {
  std::string e = data_error(at("int_prompt.parquet"), DataKind::kSft);
  EXPECT_NE(e.find("int_prompt.parquet: row group 0, row 0: prompt: expected a string"), std::string::npos) << e;
  e = data_error(at("binary.parquet"), DataKind::kSft);
  EXPECT_NE(e.find("binary.parquet: row group 0, row 0: blob: a column of type binary"), std::string::npos) << e;
  e = data_error(at("garbage.parquet"));
  EXPECT_NE(e.find("garbage.parquet: not a Parquet file"), std::string::npos) << e;
  e = data_error(at("footer_rows.parquet"));
  EXPECT_NE(e.find("footer_rows.parquet: row group 0: column "), std::string::npos) << e;
  EXPECT_NE(e.find("for 9103668863 declared row(s) (a corrupt footer)"), std::string::npos) << e;
  e = data_error(at("empty_folder"));
  EXPECT_NE(e.find("empty_folder: no Parquet files"), std::string::npos) << e;
  e = data_error(at("nothing-*.parquet"));
  EXPECT_NE(e.find("nothing-*.parquet: no Parquet files"), std::string::npos) << e;
}

}  // namespace
}  // namespace aligntrain::data
