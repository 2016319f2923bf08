// The TFRecord framing that TensorBoard's event files use, written without TensorFlow: each record is
//   uint64 length (little-endian) | uint32 masked CRC32C of those 8 bytes | data | uint32 masked CRC32C of data,
// where CRC32C is the Castagnoli CRC (polynomial 0x82F63B78, reflected; crc32c("123456789") = 0xE3069283) and
// masking is ((crc >> 15) | (crc << 17)) + 0xA282EAD8, as in TensorFlow's lib/hash/crc32c.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace aligntrain::metrics {

uint32_t crc32c(std::string_view data);
uint32_t masked_crc32c(std::string_view data);

// One record: header, its CRC, `data`, data's CRC.
std::string tfrecord(std::string_view data);

}  // namespace aligntrain::metrics
