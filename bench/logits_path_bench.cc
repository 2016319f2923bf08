// The logits path's own peak memory: bytes the CPU allocator holds at once, beyond the inputs and the gradients
// that any implementation returns, while token log-probs of N positions go forward and backward through an LM head
// of V rows, against the naive size N·V·4 (fp32 logits). Every CPU tensor allocation is counted by a wrapper around
// LibTorch's CPU allocator.
//
//   bazel run //bench:logits_path_bench -- [--rows 1480] [--hidden 256] [--vocab 32000,128256,256000] [--budget-mb 128]
//
// Paths: `kernel` (kernels::token_logprobs: per-token log-probs for preference losses; logits formed again in the
// backward when the rows do not fit one chunk), `sum` (objectives::token_logprob_sum: SFT and distillation NLL, the
// gradient taken during the forward) and `naive` (log_softmax of the full [N, V] logits under autograd). The peak does
// not depend on the hidden size, which is kept small so that a run takes seconds; results in bench/RESULTS.md.
#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/token_logprobs.h"
#include "trainer/model/projection.h"
#include "trainer/objectives/distill.h"
#include "trainer/runtime/communicator_self.h"

namespace {

std::atomic<int64_t> g_current{0}, g_peak{0};

struct Counted {
  c10::DataPtr inner;
  size_t bytes;
};

void release(void* ctx) {
  auto* c = static_cast<Counted*>(ctx);
  g_current -= static_cast<int64_t>(c->bytes);
  delete c;
}

class CountingAllocator : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) {}
  c10::DataPtr allocate(size_t n) override {
    auto inner = base_->allocate(n);
    void* data = inner.get();
    const int64_t now = g_current += static_cast<int64_t>(n);
    int64_t peak = g_peak.load();
    while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
    }
    return {data, new Counted{std::move(inner), n}, &release, c10::Device(c10::DeviceType::CPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }

 private:
  c10::Allocator* base_;
};

class Head : public aligntrain::model::LmHead {
 public:
  explicit Head(at::Tensor w) : w_(std::move(w)) {}
  at::Tensor forward(const at::Tensor& h) override { return at::mm(h, w_.t()); }
  at::Tensor weight() const override { return w_; }

 private:
  at::Tensor w_;
};

// Peak bytes held during fn() beyond what was held before it and what it returns (the gradients).
template <class F>
int64_t path_peak(F&& fn) {
  const int64_t before = g_current.load();
  g_peak = before;
  const int64_t kept = fn();
  return g_peak.load() - before - kept;
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 1480, hidden = 256, budget_mb = 128;
  std::vector<int64_t> vocabs = {32000, 128256, 256000};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--rows") rows = std::stoll(v);
    else if (a == "--hidden") hidden = std::stoll(v);
    else if (a == "--vocab") vocabs = parse_list(v);
    else if (a == "--budget-mb") budget_mb = std::stoll(v);
    else {
      std::fprintf(stderr, "usage: %s [--rows N] [--hidden H] [--vocab V1,V2,...] [--budget-mb MB]\n", argv[0]);
      return 2;
    }
  }
  static CountingAllocator counting(c10::GetCPUAllocator());
  c10::SetCPUAllocator(&counting, /*priority=*/100);
  aligntrain::kernels::set_logits_budget_bytes(budget_mb << 20);
  aligntrain::runtime::SelfCommunicator one;
  std::printf("rows %lld, hidden %lld, logits budget %lld MiB; MiB held by the logits path at its peak (beyond inputs "
              "and returned gradients)\n",
              static_cast<long long>(rows), static_cast<long long>(hidden), static_cast<long long>(budget_mb));
  std::printf("%8s %14s %10s %10s %10s %14s %14s\n", "vocab", "naive N*V*4", "naive", "kernel", "sum", "kernel/naive",
              "sum/naive");
  for (int64_t v : vocabs) {
    at::manual_seed(0);
    const auto h0 = at::randn({rows, hidden});
    const auto w0 = at::randn({v, hidden}) * 0.05;
    const auto labels = at::randint(0, v, {rows}, at::kLong);
    const int64_t grads = (rows * hidden + v * hidden) * 4;
    auto run = [&](auto&& loss) {
      return path_peak([&] {
        auto h = h0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
        const int64_t inputs = (rows * hidden + v * hidden) * 4;
        loss(h, w).backward();
        return grads + inputs;  // held at the end: the inputs' copies and their gradients
      });
    };
    const int64_t naive = run([&](const at::Tensor& h, const at::Tensor& w) {
      return at::log_softmax(at::mm(h, w.t()), 1).gather(1, labels.unsqueeze(1)).sum();
    });
    const int64_t kernel = run([&](const at::Tensor& h, const at::Tensor& w) {
      return aligntrain::kernels::token_logprobs(h, w, labels, 0, {}).sum();
    });
    const int64_t sum = run([&](const at::Tensor& h, const at::Tensor& w) {
      Head head(w);
      return aligntrain::objectives::token_logprob_sum(h, head, labels, one);
    });
    const double mib = 1 << 20, full = static_cast<double>(rows * v * 4);
    std::printf("%8lld %14.0f %10.0f %10.0f %10.0f %14.3f %14.3f\n", static_cast<long long>(v), full / mib, naive / mib,
                kernel / mib, sum / mib, kernel / full, sum / full);
  }
  return 0;
}
