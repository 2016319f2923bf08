// ZIP-FIT (METHODS.md E.1): how well a candidate example aligns with a target set, by gzip compression.
//   C(s)        = bytes of gzip level 1 of s, header and trailer included (Python's gzip.compress(s, 1))
//   NCD(x, t)   = (C(x ⊕ t) − min(C(x), C(t))) / max(C(x), C(t))     x ⊕ t: x then t, no separator
//   Align(x)    = 1 − mean over the targets t of NCD(x, t)
// The O(candidates × targets) compressions run on a pool of threads; single-string sizes are computed once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace aligntrain::data {

// Compressed sizes with one reusable zlib stream (not thread-safe: one per thread).
class GzipSizer {
 public:
  GzipSizer();
  ~GzipSizer();
  GzipSizer(const GzipSizer&) = delete;
  GzipSizer& operator=(const GzipSizer&) = delete;

  // C(a ⊕ b): from DeflateSizeModel where it models the input (checked against zlib once per process), else by
  // compressing with zlib.
  size_t size(std::string_view a, std::string_view b = {});
  // The same by zlib alone.
  size_t zlib_size(std::string_view a, std::string_view b = {});
  // C(prefix ⊕ b) for many b: set the prefix once, then size_after_prefix(b) shares the prefix's work.
  void set_prefix(std::string_view prefix);
  size_t size_after_prefix(std::string_view b);

 private:
  struct Impl;
  Impl* impl_;
};

double normalized_compression_distance(size_t c_x, size_t c_t, size_t c_xt);

// Align(candidates[r]) for each r of `rows`, against every target. `threads` ≥ 1 workers; `progress(done)` is called
// from the calling thread about once a second with the number of rows finished so far.
std::vector<double> zip_fit_align(const std::vector<std::string>& candidates, const std::vector<std::string>& targets,
                                  const std::vector<int64_t>& rows, int threads,
                                  const std::function<void(size_t done)>& progress = {});

// The indices of the k best scores, in increasing index order: highest scores when `highest`, else lowest; among
// equal scores the earlier index wins.
std::vector<int64_t> top_k(const std::vector<double>& scores, size_t k, bool highest);

}  // namespace aligntrain::data
