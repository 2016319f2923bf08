// GPU smoke check (run by scripts/gpu/check.sh on a GPU host; exits 2 without a GPU): a CUDA forward/backward of
// small-llama at TP=1 against the CPU (logits, token log-probs, gradients), then a few bf16 AdamW steps on one batch
// whose loss must fall, with the tokens/s of each. Prints a short report; exits non-zero on any mismatch.
#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cstdio>

#include "trainer/model/checkpoint_io.h"
#include "trainer/model/logprobs.h"
#include "trainer/model/presets.h"

using namespace aligntrain;

namespace {

double max_rel(const at::Tensor& a, const at::Tensor& b) {
  const auto bb = b.to(at::kCPU).to(at::kDouble);
  return (a.to(at::kCPU).to(at::kDouble) - bb).abs().max().item<double>() / std::max(bb.abs().max().item<double>(), 1e-12);
}

at::Tensor loss_of(model::CausalLM& m, const at::Tensor& ids) {
  const auto labels = model::shift_labels(ids, at::ones_like(ids));
  return -model::token_logprobs(m, m.hidden_states({ids}), labels).sum() / static_cast<double>(ids.numel());
}

}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::printf("gpu_smoke: no CUDA GPU visible\n");
    return 2;
  }
  const auto cuda = at::Device(at::kCUDA, 0);
  const auto config = model::preset_config("small-llama");
  auto factory = model::dense_layer_factory();
  model::CausalLM cpu(config, *factory), gpu(config, *factory);
  model::init_weights(cpu, 1, 0, 1);
  model::init_weights(gpu, 1, 0, 1);
  gpu.to(cuda);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto ids = at::randint(0, config.vocab_size, {4, 128}, gen);

  // fp32 forward/backward: CUDA equals CPU.
  at::globalContext().setAllowTF32CuBLAS(false);
  const auto l_cpu = loss_of(cpu, ids);
  const auto l_gpu = loss_of(gpu, ids.to(cuda));
  l_cpu.backward();
  l_gpu.backward();
  double worst_grad = 0;
  auto gp = gpu.named_parameters(true);
  for (const auto& [name, p] : cpu.named_parameters(true).pairs()) worst_grad = std::max(worst_grad, max_rel(gp[name].grad(), p.grad()));
  const double dloss = std::abs(l_cpu.item<double>() - l_gpu.item<double>());
  std::printf("fp32 CUDA vs CPU (small-llama, 4x128 tokens): loss %.6f vs %.6f (|diff| %.1e), worst relative grad diff %.1e\n",
              l_gpu.item<double>(), l_cpu.item<double>(), dloss, worst_grad);
  bool ok = dloss < 1e-4 && worst_grad < 1e-3;

  // bf16: a few AdamW steps on one batch; the loss must fall.
  gpu.to(at::kBFloat16);
  gpu.zero_grad();
  torch::optim::AdamW opt(gpu.parameters(), torch::optim::AdamWOptions(1e-3));
  const auto batch = at::randint(0, config.vocab_size, {8, 256}, gen).to(cuda);
  double first = 0, last = 0;
  const int steps = 20;
  torch::cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    auto loss = loss_of(gpu, batch);
    loss.backward();
    opt.step();
    (s == 0 ? first : last) = loss.item<double>();
  }
  torch::cuda::synchronize();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("bf16 AdamW on CUDA: loss %.4f -> %.4f over %d steps, %.0f tokens/s (8x256 per step, eager, unfused)\n",
              first, last, steps, steps * batch.numel() / secs);
  ok = ok && last < first - 0.5;
  std::printf("gpu_smoke: %s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
