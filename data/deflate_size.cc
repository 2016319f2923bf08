// See deflate_size.h. The names follow the deflate format (RFC 1951) and zlib's documented parameters; every step
// that decides a bit count is written to decide it as zlib 1.2.x does.
#include "data/deflate_size.h"

#include <array>
#include <cstring>

namespace aligntrain::data {

namespace {

constexpr unsigned kMinMatch = 3, kMaxMatch = 258, kWindow = 32768, kWMask = kWindow - 1;
constexpr unsigned kMinLookahead = kMaxMatch + kMinMatch + 1;
constexpr unsigned kMaxDist = kWindow - kMinLookahead;
constexpr unsigned kHashMask = (1u << 15) - 1, kHashShift = 5;  // memLevel 8: 15 hash bits
constexpr unsigned kMaxChain = 4, kNiceLength = 8, kMaxInsert = 4, kGoodLength = 4;  // level 1
constexpr unsigned kPrevLength = kMinMatch - 1;  // deflate_fast never raises it
constexpr size_t kSymbolsPerBlock = (1u << 14) - 1;  // lit_bufsize − 1 for memLevel 8
constexpr int kLCodes = 286, kDCodes = 30, kBLCodes = 19, kEndBlock = 256, kLiterals = 256;
constexpr int kHeapSize = 2 * kLCodes + 1;
constexpr size_t kPad = 300;  // zero bytes after the input (a fresh zlib window is zeroed past its data)

constexpr std::array<int, 29> kExtraLBits = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                             2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr std::array<int, 30> kExtraDBits = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                             6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
constexpr std::array<int, 19> kExtraBLBits = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7};
constexpr std::array<int, 19> kBLOrder = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

struct Codes {
  std::array<uint8_t, 256> length_code{};  // match length − 3 → length code − 257
  std::array<uint8_t, 512> dist_code{};    // distance − 1 → distance code (two ranges, as RFC 1951's table)
  std::array<uint8_t, 288> static_llen{};
  Codes() {
    int length = 0, code = 0;
    for (; code < 28; ++code)
      for (int n = 0; n < (1 << kExtraLBits[code]); ++n) length_code[length++] = static_cast<uint8_t>(code);
    length_code[length - 1] = static_cast<uint8_t>(code);  // length 258 has a code of its own
    int dist = 0;
    for (code = 0; code < 16; ++code)
      for (int n = 0; n < (1 << kExtraDBits[code]); ++n) dist_code[dist++] = static_cast<uint8_t>(code);
    dist >>= 7;
    for (; code < kDCodes; ++code)
      for (int n = 0; n < (1 << (kExtraDBits[code] - 7)); ++n) dist_code[256 + dist++] = static_cast<uint8_t>(code);
    for (int n = 0; n < 288; ++n) static_llen[n] = n < 144 ? 8 : n < 256 ? 9 : n < 280 ? 7 : 8;
  }
};
const Codes& codes() {
  static const Codes c;
  return c;
}

// One Huffman tree built as trees.c builds it (heap order, ties by depth, lengths limited to max_length by the same
// overflow repair), for its cost in bits: adds Σ freq·(length + extra bits) to opt_len and the same with the static
// lengths to static_len. len[n] receives each symbol's code length (0 when unused); returns max_code.
struct HuffmanCost {
  // Not zeroed: build writes every entry it reads. A heap entry (from position 1) is freq << 15 | depth << 10 | node:
  // its bits above the node order as trees.c's smaller() does (frequency, then depth; equal keys count as smaller).
  // Frequencies stay below 2^16 (a block has at most 2^14 symbols), depths below 2^5, nodes below 2^10.
  std::array<uint16_t, kHeapSize> freq, dl;  // dl: a node's parent while building, then its code length
  std::array<uint8_t, kHeapSize> depth;
  std::array<uint32_t, kLCodes + 2> heap;
  std::array<uint16_t, kHeapSize> order;  // nodes as they leave the heap, from heap_max up (trees.c's heap top)
  std::array<uint16_t, kLCodes> used;     // the symbols of nonzero frequency, in order

  static constexpr uint32_t kNodeBits = 1023, kNone = ~uint32_t{0};  // kNone: a missing right child, never smaller
  static uint32_t entry(unsigned f, unsigned d, int n) { return f << 15 | d << 10 | static_cast<uint32_t>(n); }
  // trees.c's pqdownheap: sifts v down from position k of a heap of len entries; heap[len + 1] == kNone. Key a is
  // smaller than key b (a <= b) exactly when entry a <= (entry b | kNodeBits), and v's key is smaller than b's when
  // (v without its node) <= entry b: one comparison each.
  void down(int len, int k, uint32_t v) {
    uint32_t* const hp = heap.data();
    const uint32_t v_key = v & ~kNodeBits;
    int j = k << 1;
    while (j <= len) {
      const uint32_t left = hp[j], right = hp[j + 1];
      const int take_right = right <= (left | kNodeBits);
      j += take_right;
      const uint32_t hj = take_right ? right : left;
      if (v_key <= hj) break;
      hp[k] = hj;
      k = j;
      j <<= 1;
    }
    hp[k] = v;
  }

  int build(const uint32_t* in_freq, int elems, const int* extra, int base, const uint8_t* static_len,
            int max_length, uint16_t* len, int64_t& opt_len, int64_t& static_total) {
    uint16_t* const fr = freq.data();
    uint16_t* const dlp = dl.data();
    uint8_t* const dp = depth.data();
    int used_count = 0;
    for (int n = 0; n < elems; ++n) {  // without a branch on the frequency: most are zero, in no pattern
      used[static_cast<size_t>(used_count)] = static_cast<uint16_t>(n);
      used_count += in_freq[n] != 0;
    }
    std::memset(dlp, 0, sizeof(uint16_t) * static_cast<size_t>(elems));
    int heap_len = 0, heap_max = kHeapSize;
    for (; heap_len < used_count; ++heap_len) {
      const int n = used[static_cast<size_t>(heap_len)];
      fr[n] = static_cast<uint16_t>(in_freq[n]);
      dp[n] = 0;
      heap[static_cast<size_t>(heap_len) + 1] = entry(fr[n], 0, n);
    }
    int max_code = used_count > 0 ? used[static_cast<size_t>(used_count) - 1] : -1;
    while (heap_len < 2) {  // at least two codes
      const int node = max_code < 2 ? ++max_code : 0;
      fr[node] = 1;
      dp[node] = 0;
      ++heap_len;
      heap[static_cast<size_t>(heap_len)] = entry(1, 0, node);
      --opt_len;
      if (static_len) static_total -= static_len[node];
    }
    heap[static_cast<size_t>(heap_len) + 1] = kNone;
    for (int n = heap_len / 2; n >= 1; --n) down(heap_len, n, heap[static_cast<size_t>(n)]);
    int node = elems;
    do {
      const int n = static_cast<int>(heap[1] & kNodeBits);
      const uint32_t last = heap[static_cast<size_t>(heap_len)];
      heap[static_cast<size_t>(heap_len)] = kNone;
      --heap_len;
      down(heap_len, 1, last);
      const int m = static_cast<int>(heap[1] & kNodeBits);
      order[--heap_max] = static_cast<uint16_t>(n);
      order[--heap_max] = static_cast<uint16_t>(m);
      const unsigned f = static_cast<unsigned>(fr[n]) + fr[m];
      const unsigned d = (dp[n] >= dp[m] ? dp[n] : dp[m]) + 1u;
      fr[node] = static_cast<uint16_t>(f);
      dp[node] = static_cast<uint8_t>(d);
      dlp[n] = dlp[m] = static_cast<uint16_t>(node);
      down(heap_len, 1, entry(f & 0xffff, d & 31, node));
      ++node;
    } while (heap_len >= 2);
    order[--heap_max] = static_cast<uint16_t>(heap[1] & kNodeBits);

    // Code lengths from the root down, limited to max_length.
    std::array<int, 16> bl_count{};
    dlp[order[heap_max]] = 0;
    int overflow = 0, h = heap_max + 1;
    int64_t opt = 0, stat = 0;
    for (; h < kHeapSize; ++h) {
      const int n = order[h];
      int bits = dlp[dlp[n]] + 1;
      if (bits > max_length) bits = max_length, ++overflow;
      dlp[n] = static_cast<uint16_t>(bits);
      if (n > max_code) continue;
      ++bl_count[bits];
      const int xbits = extra && n >= base ? extra[n - base] : 0;
      opt += static_cast<int64_t>(fr[n]) * (bits + xbits);
      if (static_len) stat += static_cast<int64_t>(fr[n]) * (static_len[n] + xbits);
    }
    opt_len += opt;
    static_total += stat;
    if (overflow > 0) {
      do {
        int bits = max_length - 1;
        while (bl_count[bits] == 0) --bits;
        --bl_count[bits];
        bl_count[bits + 1] += 2;
        --bl_count[max_length];
        overflow -= 2;
      } while (overflow > 0);
      for (int bits = max_length; bits != 0; --bits) {
        int n = bl_count[bits];
        while (n != 0) {
          const int m = order[--h];
          if (m > max_code) continue;
          if (dlp[m] != bits) {
            opt_len += (static_cast<int64_t>(bits) - dlp[m]) * fr[m];
            dlp[m] = static_cast<uint16_t>(bits);
          }
          --n;
        }
      }
    }
    std::memcpy(len, dlp, sizeof(uint16_t) * static_cast<size_t>(elems));
    return max_code;
  }
};

// The code-length alphabet's frequencies for one tree's lengths, run-length coded as deflate sends them.
void scan_lengths(uint16_t* len, int max_code, uint32_t* bl_freq) {
  int prevlen = -1, nextlen = len[0], count = 0, max_count = 7, min_count = 4;
  if (nextlen == 0) max_count = 138, min_count = 3;
  len[max_code + 1] = 0xffff;  // guard
  for (int n = 0; n <= max_code; ++n) {
    const int curlen = nextlen;
    nextlen = len[n + 1];
    if (++count < max_count && curlen == nextlen) continue;
    if (count < min_count) bl_freq[curlen] += static_cast<uint32_t>(count);
    else if (curlen != 0) {
      if (curlen != prevlen) ++bl_freq[curlen];
      ++bl_freq[16];
    } else if (count <= 10) ++bl_freq[17];
    else ++bl_freq[18];
    count = 0;
    prevlen = curlen;
    if (nextlen == 0) max_count = 138, min_count = 3;
    else if (curlen == nextlen) max_count = 6, min_count = 3;
    else max_count = 7, min_count = 4;
  }
}

}  // namespace

DeflateSizeModel::DeflateSizeModel() : head_(kHashMask + 1, 0), prev_(kWindow, 0), undo_(kWindow, 0) {
  touched_.reserve(kHashMask + 1);
}

// Bits of one block of `stored_len` input bytes with the state's symbol counts: the cheapest of stored, static and
// dynamic Huffman as trees.c chooses; ~0 for stored, whose size depends on the bit position (the caller counts it).
uint64_t DeflateSizeModel::block_bits(const State& st, size_t stored_len) {
  static thread_local HuffmanCost hc;
  int64_t opt_len = 0, static_len = 0;
  std::array<uint16_t, kLCodes + 2> llen;
  std::array<uint16_t, kDCodes + 2> dlen;
  std::array<uint16_t, kBLCodes + 2> bllen;
  static const std::array<uint8_t, kDCodes> kStaticDLen = [] {
    std::array<uint8_t, kDCodes> a{};
    a.fill(5);
    return a;
  }();
  const int lmax = hc.build(st.lfreq.data(), kLCodes, kExtraLBits.data(), kLiterals + 1, codes().static_llen.data(),
                            15, llen.data(), opt_len, static_len);
  const int dmax = hc.build(st.dfreq.data(), kDCodes, kExtraDBits.data(), 0, kStaticDLen.data(), 15, dlen.data(),
                            opt_len, static_len);
  std::array<uint32_t, kBLCodes> bl_freq{};
  scan_lengths(llen.data(), lmax, bl_freq.data());
  scan_lengths(dlen.data(), dmax, bl_freq.data());
  int64_t unused = 0;
  hc.build(bl_freq.data(), kBLCodes, kExtraBLBits.data(), 0, nullptr, 7, bllen.data(), opt_len, unused);
  int max_blindex = kBLCodes - 1;
  for (; max_blindex >= 3; --max_blindex)
    if (bllen[static_cast<size_t>(kBLOrder[static_cast<size_t>(max_blindex)])] != 0) break;
  opt_len += 3 * (max_blindex + 1) + 5 + 5 + 4;
  int64_t opt_lenb = (opt_len + 3 + 7) >> 3;
  const int64_t static_lenb = (static_len + 3 + 7) >> 3;
  if (static_lenb <= opt_lenb) opt_lenb = static_lenb;
  if (static_cast<int64_t>(stored_len) + 4 <= opt_lenb) return ~uint64_t{0};
  return static_cast<uint64_t>(3 + (static_lenb == opt_lenb ? static_len : opt_len));
}

void DeflateSizeModel::flush_block(State& s, size_t strstart) {
  const uint64_t b = block_bits(s, strstart - s.block_start);
  if (b == ~uint64_t{0}) {
    s.bits = (s.bits + 3 + 7) & ~uint64_t{7};  // stored: 3 header bits, then byte alignment, LEN and NLEN, the bytes
    s.bits += 32 + 8 * static_cast<uint64_t>(strstart - s.block_start);
  } else {
    s.bits += b;
  }
  s.block_start = strstart;
  std::fill(s.lfreq.begin(), s.lfreq.end(), 0u);
  std::fill(s.dfreq.begin(), s.dfreq.end(), 0u);
  s.lfreq[kEndBlock] = 1;
  s.symbols = 0;
}

void DeflateSizeModel::reset_hash() {
  for (uint16_t h : touched_) head_[h] = 0;
  touched_.clear();
  undo_len_ = 0;
}

void DeflateSizeModel::start(State& s, size_t n) const {
  s = State();
  s.lfreq.assign(kLCodes, 0);
  s.dfreq.assign(kDCodes, 0);
  s.lfreq[kEndBlock] = 1;
  s.match_length = kPrevLength;
  if (n >= kMinMatch) s.ins_h = ((static_cast<unsigned>(window_[0]) << kHashShift) ^ window_[1]) & kHashMask;
}

template <DeflateSizeModel::Mode kMode>
void DeflateSizeModel::run(State& s, size_t n, size_t stop) {
  const unsigned char* w = window_.data();
  const Codes& c = codes();
  unsigned strstart = s.strstart, ins_h = s.ins_h, match_length = s.match_length, match_start = s.match_start;
  unsigned lookahead = static_cast<unsigned>(n) - strstart;
  auto insert = [&](unsigned str) {
    ins_h = ((ins_h << kHashShift) ^ w[str + kMinMatch - 1]) & kHashMask;
    const unsigned head = head_[ins_h];
    if (kMode == Mode::kAfterPrefix) undo_[undo_len_++] = ins_h << 16 | head;
    else if (head == 0) touched_.push_back(static_cast<uint16_t>(ins_h));
    prev_[str & kWMask] = static_cast<uint16_t>(head);
    head_[ins_h] = static_cast<uint16_t>(str);
    return head;
  };
  auto longest_match = [&](unsigned cur_match, unsigned& match_at) {
    unsigned chain = kMaxChain;
    const unsigned char* scan = w + strstart;
    unsigned best_len = kPrevLength;
    const unsigned nice = kNiceLength < lookahead ? kNiceLength : lookahead;
    const unsigned limit = strstart > kMaxDist ? strstart - kMaxDist : 0;
    if (kPrevLength >= kGoodLength) chain >>= 2;
    unsigned char scan_end1 = scan[best_len - 1], scan_end = scan[best_len];
    do {
      const unsigned char* match = w + cur_match;
      if (match[best_len] != scan_end || match[best_len - 1] != scan_end1 || match[0] != scan[0] ||
          match[1] != scan[1])
        continue;
      unsigned len = 3;  // byte 2 is equal: the same hash chain and equal bytes 0 and 1
      while (len < kMaxMatch && scan[len] == match[len]) ++len;
      if (len > best_len) {
        match_at = cur_match;
        best_len = len;
        if (len >= nice) break;
        scan_end1 = scan[best_len - 1];
        scan_end = scan[best_len];
      }
    } while ((cur_match = prev_[cur_match & kWMask]) > limit && --chain != 0);
    return best_len <= lookahead ? best_len : lookahead;
  };

  while (lookahead > 0 && strstart < stop) {
    if (kMode == Mode::kPrefix) {
      // Take this step only if its outcome is the same whatever follows the prefix window_[0, stop), deciding it
      // first without changing anything. Its hash reads strstart + 2. A literal means no chain entry matched the
      // first 3 bytes. A match of length L compared bytes up to strstart + L, is followed by insertions or a hash
      // that read up to strstart + L + 1, and by a test that 3 bytes are left; then every continuation gives the
      // same L and distance, the nice length included (a shorter lookahead would only cut a match at the input's
      // end, which lies past stop).
      if (strstart + kMinMatch > stop) break;
      const unsigned head = head_[((ins_h << kHashShift) ^ w[strstart + kMinMatch - 1]) & kHashMask];
      unsigned length = match_length, at = match_start;
      if (head != 0 && strstart - head <= kMaxDist) length = longest_match(head, at);
      if (length >= kMinMatch && strstart + length + kMinMatch > stop) break;
    }
    unsigned hash_head = 0;
    if (lookahead >= kMinMatch) hash_head = insert(strstart);
    if (hash_head != 0 && strstart - hash_head <= kMaxDist) match_length = longest_match(hash_head, match_start);
    if (match_length >= kMinMatch) {
      const unsigned dist = strstart - match_start - 1;
      ++s.lfreq[c.length_code[match_length - kMinMatch] + kLiterals + 1];
      ++s.dfreq[dist < 256 ? c.dist_code[dist] : c.dist_code[256 + (dist >> 7)]];
      ++s.symbols;
      lookahead -= match_length;
      if (match_length <= kMaxInsert && lookahead >= kMinMatch) {
        --match_length;
        do {
          ++strstart;
          insert(strstart);
        } while (--match_length != 0);
        ++strstart;
      } else {
        strstart += match_length;
        match_length = 0;
        ins_h = ((static_cast<unsigned>(w[strstart]) << kHashShift) ^ w[strstart + 1]) & kHashMask;
      }
    } else {
      ++s.lfreq[w[strstart]];
      ++s.symbols;
      --lookahead;
      ++strstart;
    }
    if (s.symbols == kSymbolsPerBlock) flush_block(s, strstart);
  }
  s.strstart = strstart;
  s.ins_h = ins_h;
  s.match_length = match_length;
  s.match_start = match_start;
  if (lookahead == 0) flush_block(s, strstart);  // the last block; the stream then ends on a byte boundary
}

template void DeflateSizeModel::run<DeflateSizeModel::Mode::kWhole>(State&, size_t, size_t);
template void DeflateSizeModel::run<DeflateSizeModel::Mode::kPrefix>(State&, size_t, size_t);
template void DeflateSizeModel::run<DeflateSizeModel::Mode::kAfterPrefix>(State&, size_t, size_t);

std::optional<size_t> DeflateSizeModel::raw_size(std::string_view a, std::string_view b) {
  const size_t n = a.size() + b.size();
  prefix_ok_ = false;
  if (n >= kMaxInput) return std::nullopt;
  if (std::memchr(a.data(), 0, a.size()) || (!b.empty() && std::memchr(b.data(), 0, b.size()))) return std::nullopt;
  window_.resize(n + kPad);
  std::memcpy(window_.data(), a.data(), a.size());
  if (!b.empty()) std::memcpy(window_.data() + a.size(), b.data(), b.size());
  std::memset(window_.data() + n, 0, kPad);
  reset_hash();
  start(state_, n);
  run<Mode::kWhole>(state_, n, n);
  return static_cast<size_t>((state_.bits + 7) / 8);
}

void DeflateSizeModel::set_prefix(std::string_view prefix) {
  prefix_ok_ = prefix.size() < kMaxInput && !std::memchr(prefix.data(), 0, prefix.size());
  if (!prefix_ok_) return;
  prefix_len_ = prefix.size();
  window_.resize(kMaxInput + kPad);
  std::memcpy(window_.data(), prefix.data(), prefix.size());
  reset_hash();
  // Every step whose outcome does not depend on what follows the prefix (see run) is taken once here.
  start(prefix_state_, kMaxInput);
  run<Mode::kPrefix>(prefix_state_, kMaxInput, prefix.size());
}

std::optional<size_t> DeflateSizeModel::raw_size_after_prefix(std::string_view b) {
  if (!prefix_ok_) return std::nullopt;
  const size_t n = prefix_len_ + b.size();
  if (n >= kMaxInput || std::memchr(b.data(), 0, b.size())) return std::nullopt;
  std::memcpy(window_.data() + prefix_len_, b.data(), b.size());
  std::memset(window_.data() + n, 0, kPad);
  state_ = prefix_state_;
  if (state_.strstart == 0) start(state_, n);  // nothing shared: the first bytes may come from b
  run<Mode::kAfterPrefix>(state_, n, n);
  const size_t out = static_cast<size_t>((state_.bits + 7) / 8);
  while (undo_len_ > 0) {
    const uint32_t u = undo_[--undo_len_];
    head_[u >> 16] = static_cast<uint16_t>(u);
  }
  return out;
}

}  // namespace aligntrain::data
