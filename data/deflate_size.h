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

  // The same for prefix ⊕ b for many b: the part of the work that depends on the prefix alone (everything up to
  // where a match could reach past it) is done once by set_prefix and restored for every raw_size_after_prefix.
  void set_prefix(std::string_view prefix);
  std::optional<size_t> raw_size_after_prefix(std::string_view b);

  static constexpr size_t kMaxInput = 32768 - 262;

 private:
  // Where deflate_fast stands between two iterations, and the current block's symbol counts.
  struct State {
    unsigned strstart = 0, ins_h = 0, match_length = 2, match_start = 0;
    size_t block_start = 0, symbols = 0;
    uint64_t bits = 0;
    std::vector<uint32_t> lfreq, dfreq;
  };
  void reset_hash();
  void start(State& s, size_t n) const;
  // Runs deflate_fast over window_[0, n) from `s` while strstart < stop (n: to the end, with the last block).
  // kWhole: one whole input; kPrefix: the steps decided by window_[0, stop) alone (stops at the first step that
  // could depend on a later byte); kAfterPrefix: the rest after the prefix's state, logging head_ writes in undo_.
  enum class Mode { kWhole, kPrefix, kAfterPrefix };
  template <Mode kMode>
  void run(State& s, size_t n, size_t stop);
  void flush_block(State& s, size_t strstart);
  uint64_t block_bits(const State& s, size_t stored_len);

  std::vector<unsigned char> window_;
  std::vector<uint16_t> head_, prev_;
  std::vector<uint16_t> touched_;                      // head_ entries set since the last reset
  std::vector<uint32_t> undo_;  // entry << 16 | old value, for each head_ write after the prefix's state
  size_t undo_len_ = 0;
  State prefix_state_, state_;
  size_t prefix_len_ = 0;
  bool prefix_ok_ = false;
};

}  // namespace aligntrain::data
