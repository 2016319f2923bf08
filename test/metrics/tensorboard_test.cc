// CRC32C against published vectors, the TFRecord framing byte by byte, and the hand-encoded Event protos against
// byte strings derived by hand from the protobuf wire format (key = field << 3 | wire type).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "test/util/test_env.h"
#include "trainer/metrics/tensorboard.h"
#include "trainer/metrics/tfrecord.h"

namespace aligntrain::metrics {
namespace {

uint64_t le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);                  // the CRC catalogue's check value
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);        // RFC 3720 B.4: 32 bytes of zeros
  EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);      // 32 bytes of 0xFF
  std::string inc;
  for (int i = 0; i < 32; ++i) inc.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(inc), 0x46DD794Eu);                          // 0x00, 0x01, ..., 0x1F
}

TEST(Crc32c, Masked) {
  // ((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xA282EAD8 mod 2^32
  EXPECT_EQ(masked_crc32c("123456789"), 0xC78AB0E5u);
}

TEST(TfRecord, Framing) {
  const std::string data = "hello, event";
  const std::string r = tfrecord(data);
  ASSERT_EQ(r.size(), 8 + 4 + data.size() + 4);
  EXPECT_EQ(le(r, 0, 8), data.size());
  EXPECT_EQ(le(r, 8, 4), masked_crc32c(r.substr(0, 8)));
  EXPECT_EQ(r.substr(12, data.size()), data);
  EXPECT_EQ(le(r, 12 + data.size(), 4), masked_crc32c(data));
  const std::string empty = tfrecord("");
  ASSERT_EQ(empty.size(), 16u);
  EXPECT_EQ(le(empty, 0, 8), 0u);
  EXPECT_EQ(le(empty, 12, 4), masked_crc32c(""));
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int v : b) s.push_back(static_cast<char>(v));
  return s;
}

TEST(EventProto, Scalars) {
  // Event{wall_time: 0.0 (field 1, fixed64), step: 5 (field 2, varint), summary (field 5): Summary{value (1):
  // Value{tag (1): "a", simple_value (2, fixed32): 1.0f = 0x3F800000}}}
  const std::string want = bytes({0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x05, 0x2A, 0x0A, 0x0A, 0x08, 0x0A, 0x01, 'a',
                                  0x15, 0x00, 0x00, 0x80, 0x3F});
  EXPECT_EQ(scalars_event(0.0, 5, {{"a", 1.0f}}), want);
}

TEST(EventProto, StepVarintAndFileVersion) {
  // step 300 = varint AC 02; file_version (3) "brain.Event:2"
  const std::string e = file_version_event(0.0);
  EXPECT_EQ(e.substr(9), bytes({0x10, 0x00, 0x1A, 13}) + "brain.Event:2");
  EXPECT_EQ(scalars_event(0.0, 300, {}).substr(9), bytes({0x10, 0xAC, 0x02, 0x2A, 0x00}));
  // SessionLog{status (1): START = 1} in field 7 (field 6 is the deprecated LogMessage)
  EXPECT_EQ(session_start_event(0.0, 7).substr(9), bytes({0x10, 0x07, 0x3A, 0x02, 0x08, 0x01}));
}

TEST(EventProto, Text) {
  // Value{tag "t"; tensor (8): TensorProto{dtype: 7, tensor_shape: {}, string_val (8): "x"};
  //       metadata (9): {plugin_data (1): {plugin_name (1): "text"}}}
  const std::string tensor = bytes({0x08, 0x07, 0x12, 0x00, 0x42, 0x01, 'x'});
  const std::string metadata = bytes({0x0A, 0x06, 0x0A, 0x04}) + "text";
  const std::string value = bytes({0x0A, 0x01, 't', 0x42, static_cast<int>(tensor.size())}) + tensor +
                            bytes({0x4A, static_cast<int>(metadata.size())}) + metadata;
  const std::string summary = bytes({0x0A, static_cast<int>(value.size())}) + value;
  EXPECT_EQ(text_event(0.0, 0, "t", "x").substr(9), bytes({0x10, 0x00, 0x2A, static_cast<int>(summary.size())}) + summary);
}

TEST(EventFileWriter, RecordsAreInTheFileAndNamesSortAfterEarlierFiles) {
  const auto dir = testing::scratch_dir("tensorboard_writer");
  std::string first_path, second_path;
  {
    EventFileWriter w(dir.string());
    w.add_scalars(1, {{"loss", 2.5f}});
    first_path = w.path();
    // Before the writer closes: every record is already in the file.
    std::ifstream in(first_path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string content = ss.str();
    const std::string e1 = tfrecord(file_version_event(0.0)), e2 = tfrecord(scalars_event(0.0, 1, {{"loss", 2.5f}}));
    ASSERT_EQ(content.size(), e1.size() + e2.size());
    // Walk the records: each length and CRC checks out.
    size_t at = 0;
    int records = 0;
    while (at < content.size()) {
      const uint64_t n = le(content, at, 8);
      EXPECT_EQ(le(content, at + 8, 4), masked_crc32c(content.substr(at, 8)));
      EXPECT_EQ(le(content, at + 12 + n, 4), masked_crc32c(content.substr(at + 12, n)));
      at += 16 + n;
      ++records;
    }
    EXPECT_EQ(at, content.size());
    EXPECT_EQ(records, 2);
  }
  {
    EventFileWriter w(dir.string());  // in the same second: the name's time is raised past the first file's
    second_path = w.path();
  }
  EXPECT_NE(first_path, second_path);
  EXPECT_LT(std::filesystem::path(first_path).filename().string(), std::filesystem::path(second_path).filename().string());
}

}  // namespace
}  // namespace aligntrain::metrics
