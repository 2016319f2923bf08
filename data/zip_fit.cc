// See zip_fit.h.
#include "data/zip_fit.h"

#include "data/deflate_size.h"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <numeric>
#include <string>
#include <vector>
#include <stdexcept>
#include <thread>

namespace aligntrain::data {

struct GzipSizer::Impl {
  z_stream zs{};
  DeflateSizeModel model;
  std::string prefix;
  std::string joined;
  std::vector<unsigned char> out = std::vector<unsigned char>(1 << 16);
};

GzipSizer::GzipSizer() : impl_(new Impl) {
  // Python's gzip.compress(data, compresslevel=1): deflate level 1, a 32 KiB window, memLevel 8, the default
  // strategy, with the gzip wrapper (windowBits 15 + 16).
  if (deflateInit2(&impl_->zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    delete impl_;
    throw std::runtime_error("zlib: deflateInit2 failed");
  }
}

GzipSizer::~GzipSizer() {
  deflateEnd(&impl_->zs);
  delete impl_;
}

namespace {

constexpr size_t kGzipWrapper = 10 + 8;  // header and trailer (CRC-32, length)

// Whether DeflateSizeModel gives this zlib's sizes: checked once per process on strings that exercise literals,
// short and long matches, lazy inserts, chains and every block type, so that another zlib build falls back to zlib.
bool model_agrees_with_zlib(GzipSizer& gz) {
  DeflateSizeModel model;
  std::vector<std::string> probes = {"", "a", "ab", "abc", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "The quick brown fox jumps "
                                     "over the lazy dog.", "def add(a, b):\n    return a + b\n"};
  uint64_t state = 0x2545F4914F6CDD1Dull;
  for (size_t len : {5u, 40u, 300u, 700u, 2000u, 9000u, 20000u}) {
    for (int alphabet : {2, 4, 26, 95}) {
      std::string s;
      for (size_t i = 0; i < len; ++i) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        s += static_cast<char>(' ' + static_cast<int>(state % static_cast<uint64_t>(alphabet)));
      }
      probes.push_back(s);
    }
  }
  for (const auto& p : probes) {
    const auto m = model.raw_size(p, p.substr(0, p.size() / 3));
    if (m && *m + kGzipWrapper != gz.zlib_size(p, p.substr(0, p.size() / 3))) return false;
  }
  for (const auto& p : probes) {
    model.set_prefix(p);
    for (const auto& q : {probes[5], probes[6], probes.back()}) {
      const auto m = model.raw_size_after_prefix(q);
      if (m && *m + kGzipWrapper != gz.zlib_size(p, q)) return false;
    }
  }
  return true;
}

bool use_model(GzipSizer& gz) {
  static const bool agrees = model_agrees_with_zlib(gz);
  return agrees;
}

}  // namespace

size_t GzipSizer::size(std::string_view a, std::string_view b) {
  if (use_model(*this)) {
    if (const auto raw = impl_->model.raw_size(a, b)) return *raw + kGzipWrapper;
  }
  return zlib_size(a, b);
}

void GzipSizer::set_prefix(std::string_view prefix) {
  impl_->prefix.assign(prefix);
  if (use_model(*this)) impl_->model.set_prefix(prefix);
}

size_t GzipSizer::size_after_prefix(std::string_view b) {
  if (use_model(*this)) {
    if (const auto raw = impl_->model.raw_size_after_prefix(b)) return *raw + kGzipWrapper;
  }
  return zlib_size(impl_->prefix, b);
}

size_t GzipSizer::zlib_size(std::string_view a, std::string_view b) {
  std::string_view input = a;
  if (!b.empty()) {
    impl_->joined.assign(a);
    impl_->joined.append(b);
    input = impl_->joined;
  }
  z_stream& zs = impl_->zs;
  deflateReset(&zs);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  zs.avail_in = static_cast<uInt>(input.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = impl_->out.data();
    zs.avail_out = static_cast<uInt>(impl_->out.size());
    rc = deflate(&zs, Z_FINISH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) throw std::runtime_error("zlib: deflate failed");
  }
  return static_cast<size_t>(zs.total_out);
}

double normalized_compression_distance(size_t c_x, size_t c_t, size_t c_xt) {
  const double lo = static_cast<double>(std::min(c_x, c_t)), hi = static_cast<double>(std::max(c_x, c_t));
  return (static_cast<double>(c_xt) - lo) / hi;
}

namespace {

// body(gz, i) for i in [0, count) on up to `threads` workers, each with its own GzipSizer. The calling thread calls
// tick() about once a second until the workers finish; the first exception of a worker stops the rest and is rethrown.
template <class Body>
void parallel_for(size_t count, int threads, Body&& body, const std::function<void()>& tick) {
  std::atomic<size_t> next{0};
  std::atomic<int> running{0};
  std::atomic<bool> failed{false};
  std::exception_ptr failure;
  std::vector<std::thread> pool;
  const size_t workers = std::min(count, static_cast<size_t>(std::max(1, threads)));
  running = static_cast<int>(workers);
  for (size_t w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      try {
        GzipSizer gz;
        for (size_t i; !failed && (i = next.fetch_add(1)) < count;) body(gz, i);
      } catch (...) {
        if (!failed.exchange(true)) failure = std::current_exception();
      }
      --running;
    });
  }
  auto last = std::chrono::steady_clock::now();
  while (tick && running > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (std::chrono::steady_clock::now() - last >= std::chrono::seconds(1)) {
      last = std::chrono::steady_clock::now();
      tick();
    }
  }
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

std::vector<double> zip_fit_align(const std::vector<std::string>& candidates, const std::vector<std::string>& targets,
                                  const std::vector<int64_t>& rows, int threads,
                                  const std::function<void(size_t done)>& progress) {
  std::vector<double> out(rows.size(), 0.0);
  if (targets.empty() || out.empty()) return out;
  std::vector<size_t> target_size(targets.size());
  parallel_for(targets.size(), threads, [&](GzipSizer& gz, size_t j) { target_size[j] = gz.size(targets[j]); }, {});
  const double n = static_cast<double>(targets.size());
  std::atomic<size_t> done{0};
  parallel_for(
      out.size(), threads,
      [&](GzipSizer& gz, size_t i) {
        const std::string& x = candidates.at(static_cast<size_t>(rows[i]));
        const size_t c_x = gz.size(x);
        gz.set_prefix(x);
        double sum = 0;
        for (size_t j = 0; j < targets.size(); ++j)
          sum += normalized_compression_distance(c_x, target_size[j], gz.size_after_prefix(targets[j]));
        out[i] = 1.0 - sum / n;
        done.fetch_add(1);
      },
      progress ? std::function<void()>([&] { progress(done.load()); }) : std::function<void()>());
  return out;
}

std::vector<int64_t> top_k(const std::vector<double>& scores, size_t k, bool highest) {
  std::vector<int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  k = std::min(k, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), [&](int64_t a, int64_t b) {
    const double sa = scores[static_cast<size_t>(a)], sb = scores[static_cast<size_t>(b)];
    if (sa != sb) return highest ? sa > sb : sa < sb;
    return a < b;
  });
  order.resize(k);
  std::sort(order.begin(), order.end());
  return order;
}

}  // namespace aligntrain::data
