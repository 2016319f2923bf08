// The size of zlib's level-1 deflate output, computed without producing it: a model of zlib 1.2.x's deflate_fast
// (level 1: max chain 4, nice length 8, insert length 4; a 32 KiB window; memLevel 8 hash of 15 bits) and of the
// block and Huffman-tree choices of its trees.c, counting bits instead of writing them. ZIP-FIT compresses every
// (candidate, target) pair only to measure it, and this is several times cheaper than running zlib for it: no
// 64 KiB hash clear per string, no bit output.
//
// It must give exactly zlib's sizes (test/data/selection_test checks it against zlib on thousands of strings, and
// GzipSizer checks it against zlib at start-up on a set of strings of its own). Inputs it does not model — 32 KiB and
// longer (window sliding), or holding a NUL byte — return nullopt, and the caller uses zlib.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace aligntrain::data {

class DeflateSizeModel {
 public:
  DeflateSizeModel();

  // Bytes of the raw deflate stream (no wrapper) of a ⊕ b at level 1, or nullopt when the input is not modelled.
  std::optional<size_t> raw_size(std::string_view a, std::string_view b = {});

  static constexpr size_t kMaxInput = 32768 - 262;

 private:
  struct Tree;
  void tally_lit(unsigned c);
  void tally_dist(unsigned dist, unsigned len_minus_3);
  uint64_t block_bits(size_t stored_len);

  std::vector<unsigned char> window_;
  std::vector<uint16_t> head_, prev_;
  std::vector<uint16_t> touched_;  // head_ entries written, reset after each string
  std::vector<uint32_t> lfreq_, dfreq_;
  size_t symbols_ = 0;
};

}  // namespace aligntrain::data
