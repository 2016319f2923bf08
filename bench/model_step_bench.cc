// Forward + backward step throughput of aligntrain's CausalLM on CPU (the C++ half of the comparison with
// transformers; bench/model_step_peer.py is the Python half, bench/run_model_step.sh runs both).
//
// One step = hidden_states → mean token cross-entropy over all shifted positions (fp32 log-softmax) → backward →
// zero_grad(set_to_none). The model and the token batch come from an HF folder written by model_step_peer.py
// (config.json, model.safetensors, input_ids.bin), so both sides use identical weights and tokens and the first-step
// losses must agree.
//
// Prints human-readable lines and one machine-readable line starting with "RESULT " (JSON).
//
//   model_step_bench --model-dir DIR [--threads 2] [--batch 4] [--seq 256] [--warmup 2] [--steps 5]
//                    [--loss token_logprobs|log_softmax|cross_entropy|fused] [--chunk 1024]
//                    [--malloc default|tuned|nommap] [--phases] [--check-grad] [--label NAME]
//
// --malloc (applied with mallopt before anything is allocated):
//   default  glibc's defaults (dynamic mmap threshold, trim at 128 KiB of free top).
//   tuned    M_MMAP_THRESHOLD = 32 MiB (glibc's maximum) and M_TRIM_THRESHOLD = 2 GiB: blocks below 32 MiB come
//            from the heap and free memory is kept; blocks above (e.g. full-vocabulary logits) are still mmapped.
//   nommap   M_MMAP_MAX = 0 and M_TRIM_THRESHOLD = 2 GiB: nothing is mmapped, nothing is returned to the OS, so
//            steady-state steps reuse the same pages and take no page faults.
// --loss: token_logprobs = model::token_logprobs (the trainer's path; --chunk positions per LM-head chunk);
//   cross_entropy = at::cross_entropy_loss (what transformers does); log_softmax = log_softmax + gather;
//   fused = model::fused_token_logprobs called directly (one log-softmax block per chunk, gradient formed in place).
// --check-grad first compares every parameter gradient under --loss with model::token_logprobs (exit 1 on mismatch).
// --phases splits the step at the final hidden states (detach + requires_grad) and times body forward, head forward
// (LM head + loss), head backward, body backward and zero_grad separately.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "trainer/model/checkpoint_io.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/model_config.h"
#include "trainer/model/projection.h"
#include "trainer/model/transformer.h"

namespace m = aligntrain::model;

namespace {

struct Options {
  std::string model_dir;
  int threads = 2;
  int64_t batch = 4, seq = 256;
  int warmup = 2, steps = 5;
  std::string loss = "token_logprobs";
  int64_t chunk = 1024;
  std::string malloc_mode = "default";
  bool phases = false;
  bool check_grad = false;
  std::string label = "aligntrain";
  uint64_t seed = 0;
};

[[noreturn]] void usage(const std::string& msg) {
  std::cerr << "model_step_bench: " << msg << "\n"
            << "usage: model_step_bench --model-dir DIR [--threads N] [--batch B] [--seq T] [--warmup N] [--steps N]\n"
               "       [--loss token_logprobs|log_softmax|cross_entropy|fused] [--chunk N] [--malloc default|tuned|nommap]\n"
               "       [--phases] [--check-grad] [--label NAME] [--seed N]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value for " + a);
      return argv[++i];
    };
    if (a == "--model-dir") o.model_dir = val();
    else if (a == "--threads") o.threads = std::stoi(val());
    else if (a == "--batch") o.batch = std::stoll(val());
    else if (a == "--seq") o.seq = std::stoll(val());
    else if (a == "--warmup") o.warmup = std::stoi(val());
    else if (a == "--steps") o.steps = std::stoi(val());
    else if (a == "--loss") o.loss = val();
    else if (a == "--chunk") o.chunk = std::stoll(val());
    else if (a == "--malloc") o.malloc_mode = val();
    else if (a == "--phases") o.phases = true;
    else if (a == "--check-grad") o.check_grad = true;
    else if (a == "--label") o.label = val();
    else if (a == "--seed") o.seed = std::stoull(val());
    else usage("unknown flag " + a);
  }
  if (o.model_dir.empty()) usage("--model-dir is required");
  if (o.loss != "token_logprobs" && o.loss != "log_softmax" && o.loss != "cross_entropy" && o.loss != "fused") usage("bad --loss");
  if (o.malloc_mode != "default" && o.malloc_mode != "tuned" && o.malloc_mode != "nommap") usage("bad --malloc");
  if (o.steps < 1 || o.chunk < 1) usage("--steps and --chunk must be positive");
  return o;
}

void apply_malloc(const std::string& mode) {
  if (mode == "default") return;
  bool ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(2047u << 20)) == 1;  // ~2 GiB (int): never trim in practice
  ok = ok && mallopt(M_TOP_PAD, 64 << 20) == 1;                              // grow the heap in 64 MiB steps
  if (mode == "tuned") ok = ok && mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;  // glibc's maximum on 64-bit
  if (mode == "nommap") ok = ok && mallopt(M_MMAP_MAX, 0) == 1;
  if (!ok) {
    std::cerr << "mallopt failed for --malloc " << mode << "\n";
    std::exit(1);
  }
}

// Resident-set numbers from /proc/self/status (kB).
long status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, n, key) == 0) return std::atol(line.c_str() + n + 1);
  }
  return -1;
}

// Resets VmHWM (peak RSS) to the current RSS so the next VmHWM read is the peak of the timed steps.
void reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
}

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Busy CPU time of the whole machine (all processes, all cores) from /proc/stat, in ms.
double machine_busy_ms() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double v[10] = {0}, total = 0;
  in >> cpu;
  for (double& x : v) {
    in >> x;
    total += x;
  }
  return (total - v[3] - v[4]) * 1000.0 / sysconf(_SC_CLK_TCK);  // minus idle and iowait
}

// CPU time of the whole process (all threads), user and system, in ms.
std::pair<double, double> cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return {u.ru_utime.tv_sec * 1e3 + u.ru_utime.tv_usec / 1e3, u.ru_stime.tv_sec * 1e3 + u.ru_stime.tv_usec / 1e3};
}

at::Tensor load_or_make_ids(const Options& o, int64_t vocab) {
  const std::string path = o.model_dir + "/input_ids.bin";
  std::ifstream in(path, std::ios::binary);
  const int64_t n = o.batch * o.seq;
  if (in) {
    in.seekg(0, std::ios::end);
    if (static_cast<int64_t>(in.tellg()) == n * 8) {
      in.seekg(0);
      auto ids = at::empty({o.batch, o.seq}, at::kLong);
      in.read(reinterpret_cast<char*>(ids.data_ptr<int64_t>()), n * 8);
      return ids;
    }
    std::cerr << "note: " << path << " does not hold " << o.batch << "x" << o.seq << " int64 ids; using random ids\n";
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  return at::randint(0, vocab, {o.batch, o.seq}, gen, at::kLong);
}

// `token_logprobs` is the trainer's path (model::token_logprobs: the fused function with the given chunk);
// `fused` calls model::fused_token_logprobs on the flattened tensors directly. The fused function keeps one fp32
// log-softmax block per chunk and forms the gradient in place; the chain it replaced (logsumexp + gather) made five
// fresh [chunk, V] tensors per step in backward (see bench/RESULTS.md).

// Mean negative log-likelihood over the non-ignored positions of `labels` (already shifted).
at::Tensor step_loss(m::CausalLM& model, const at::Tensor& hidden, const at::Tensor& labels, const Options& o) {
  if (o.loss == "token_logprobs") {
    const auto lp = m::token_logprobs(model, hidden, labels, o.chunk);
    return -lp.sum() / labels.ne(m::kIgnoreIndex).sum();
  }
  const auto flat_h = hidden.reshape({-1, hidden.size(-1)});
  const auto flat_l = labels.reshape({-1});
  if (o.loss == "fused") {
    const auto lp = m::fused_token_logprobs(flat_h, model.lm_head->weight(), flat_l, o.chunk);
    return -lp.sum() / flat_l.ne(m::kIgnoreIndex).sum();
  }
  const auto logits = model.lm_head_forward(flat_h).to(at::kFloat);
  if (o.loss == "cross_entropy") {
    // What transformers' ForCausalLMLoss does: log_softmax + nll_loss with ignore_index, mean over valid labels.
    return at::cross_entropy_loss(logits, flat_l, {}, at::Reduction::Mean, m::kIgnoreIndex);
  }
  // log_softmax + gather: the fused log-softmax backward instead of logsumexp's (x - lse).exp() chain.
  const auto valid = flat_l.ne(m::kIgnoreIndex);
  const auto safe = at::where(valid, flat_l, at::zeros_like(flat_l));
  const auto lp = at::log_softmax(logits, 1).gather(1, safe.unsqueeze(1)).squeeze(1);
  return -at::where(valid, lp, at::zeros_like(lp)).sum() / valid.sum();
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  apply_malloc(o.malloc_mode);  // before any sizeable allocation
  at::set_num_threads(o.threads);

  const auto config = m::load_model_config(o.model_dir + "/config.json");
  auto factory = m::dense_layer_factory();
  m::CausalLM model(config, *factory);
  m::load_hf_weights(model, o.model_dir, 0, 1);

  const auto ids = load_or_make_ids(o, config.vocab_size);
  const auto labels = m::shift_labels(ids, at::ones_like(ids));
  m::ForwardInput in;
  in.input_ids = ids;

  if (o.check_grad) {
    // Gradients of every parameter under --loss vs model::token_logprobs: the variants must agree.
    auto grads = [&](const Options& opt) {
      model.zero_grad(true);
      step_loss(model, model.hidden_states(in), labels, opt).backward();
      std::vector<at::Tensor> g;
      for (const auto& p : model.parameters()) g.push_back(p.grad().clone());
      model.zero_grad(true);
      return g;
    };
    Options ref = o;
    ref.loss = "token_logprobs";
    const auto a = grads(ref), b = grads(o);
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      worst = std::max(worst, ((a[i] - b[i]).abs().max() / (a[i].abs().max() + 1e-30)).item<double>());
    }
    std::printf("check-grad: --loss %s vs token_logprobs: max relative gradient difference %.3g\n", o.loss.c_str(),
                worst);
    if (worst > 1e-4) return 1;
  }

  const long rss_before_kb = status_kb("VmRSS");
  std::vector<double> step_ms;
  std::vector<std::vector<double>> phase_ms(5);  // body fwd, head fwd, head bwd, body bwd, zero_grad
  double first_loss = 0;
  long faults_timed = 0;
  std::pair<double, double> cpu0{0, 0};
  double busy0 = 0;
  auto timed_start = std::chrono::steady_clock::now();
  for (int s = 0; s < o.warmup + o.steps; ++s) {
    const bool timed = s >= o.warmup;
    if (s == o.warmup) {
      reset_peak_rss();
      faults_timed = minor_faults();
      cpu0 = cpu_ms();
      busy0 = machine_busy_ms();
      timed_start = std::chrono::steady_clock::now();
    }
    const auto t0 = std::chrono::steady_clock::now();
    at::Tensor loss;
    if (!o.phases) {
      const auto hidden = model.hidden_states(in);
      loss = step_loss(model, hidden, labels, o);
      loss.backward();
      model.zero_grad(/*set_to_none=*/true);
    } else {
      auto t = std::chrono::steady_clock::now();
      std::vector<double> ph;
      auto lap = [&] {
        ph.push_back(ms_since(t));
        t = std::chrono::steady_clock::now();
      };
      const auto hidden = model.hidden_states(in);
      lap();
      const auto h = hidden.detach().requires_grad_(true);
      loss = step_loss(model, h, labels, o);
      lap();
      loss.backward();
      lap();
      hidden.backward(h.grad());
      lap();
      model.zero_grad(/*set_to_none=*/true);
      lap();
      if (timed) {
        for (size_t i = 0; i < ph.size(); ++i) phase_ms[i].push_back(ph[i]);
      }
    }
    const double ms = ms_since(t0);
    if (s == 0) first_loss = loss.item<double>();
    if (timed) step_ms.push_back(ms);
  }
  faults_timed = minor_faults() - faults_timed;
  const auto cpu1 = cpu_ms();
  const double user_ms = (cpu1.first - cpu0.first) / o.steps, sys_ms = (cpu1.second - cpu0.second) / o.steps;
  // Cores' worth of CPU that other processes used while the steps ran (a contended run is not a measurement).
  const double foreign = std::max(0.0, (machine_busy_ms() - busy0 - (user_ms + sys_ms) * o.steps) / ms_since(timed_start));

  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const double med = median(step_ms);
  const double best = *std::min_element(step_ms.begin(), step_ms.end());
  const double tokens = static_cast<double>(o.batch * o.seq);
  const double tps = tokens / (med / 1000.0);
  const long peak_kb = u.ru_maxrss;
  const long step_peak_kb = status_kb("VmHWM");

  std::printf("%s: threads=%d loss=%s chunk=%ld malloc=%s  first-step loss %.6f\n", o.label.c_str(), o.threads,
              o.loss.c_str(), static_cast<long>(o.chunk), o.malloc_mode.c_str(), first_loss);
  std::printf("  step median %.1f ms (best %.1f)  %.0f tokens/s  peak RSS %.0f MiB (during steps %.0f, before %.0f)"
              "  minor faults/step %ld  cpu/step user %.0f sys %.0f ms  other processes %.2f cores\n",
              med, best, tps, peak_kb / 1024.0, step_peak_kb / 1024.0, rss_before_kb / 1024.0,
              faults_timed / o.steps, user_ms, sys_ms, foreign);
  std::ostringstream js;
  js << "{\"impl\":\"" << o.label << "\",\"threads\":" << o.threads << ",\"loss\":\"" << o.loss
     << "\",\"chunk\":" << o.chunk << ",\"malloc\":\"" << o.malloc_mode << "\",\"batch\":" << o.batch
     << ",\"seq\":" << o.seq << ",\"steps\":" << o.steps << ",\"step_ms_median\":" << med << ",\"step_ms_best\":" << best
     << ",\"tokens_per_s\":" << tps << ",\"peak_rss_mib\":" << peak_kb / 1024.0
     << ",\"step_peak_rss_mib\":" << step_peak_kb / 1024.0 << ",\"rss_before_mib\":" << rss_before_kb / 1024.0
     << ",\"minor_faults_per_step\":" << faults_timed / o.steps << ",\"cpu_user_ms\":" << user_ms
     << ",\"cpu_sys_ms\":" << sys_ms << ",\"foreign_cores\":" << foreign << ",\"first_loss\":" << first_loss;
  if (o.phases) {
    static const char* names[] = {"body_fwd", "head_fwd", "head_bwd", "body_bwd", "zero_grad"};
    js << ",\"phases_ms\":{";
    for (int i = 0; i < 5; ++i) {
      js << (i ? "," : "") << "\"" << names[i] << "\":" << median(phase_ms[i]);
      std::printf("  %-9s %7.1f ms\n", names[i], median(phase_ms[i]));
    }
    js << "}";
  }
  js << "}";
  std::printf("RESULT %s\n", js.str().c_str());
  return 0;
}
