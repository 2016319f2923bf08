// Generation takes the last position's logits a logits budget's rows at a time (kernels::logits_chunk_rows): the
// tokens, greedy and sampled, are the same whatever the budget, since every row samples on its own stream.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "kernels/token_logprobs.h"
#include "trainer/generation/generator.h"
#include "trainer/model/checkpoint_io.h"
#include "trainer/model/presets.h"
#include "trainer/model/transformer.h"
#include "trainer/runtime/communicator_self.h"

namespace aligntrain::generation {
namespace {

std::vector<Generated> run(model::CausalLM& lm, double temperature, int64_t budget) {
  const int64_t saved = kernels::logits_budget_bytes();
  kernels::set_logits_budget_bytes(budget);
  runtime::SelfCommunicator one;
  std::vector<Request> requests;
  for (int i = 0; i < 7; ++i) requests.push_back({{static_cast<int32_t>(3 + i), 40, static_cast<int32_t>(50 + 2 * i)}, static_cast<uint64_t>(i)});
  GenerateOptions o;
  o.sampling.temperature = temperature;
  o.sampling.top_k = temperature > 0 ? 20 : 0;
  o.max_new_tokens = 6;
  o.batch_size = 7;
  o.seed = 3;
  auto out = generate(lm, one, requests, o, at::Device(at::kCPU));
  kernels::set_logits_budget_bytes(saved);
  return out;
}

TEST(Generation, TokensDoNotDependOnTheLogitsBudget) {
  auto factory = model::dense_layer_factory();
  model::CausalLM lm(model::preset_config("tiny-llama"), *factory);
  model::init_weights(lm, 1, 0, 1);
  const int64_t row = lm.config().vocab_size * 4;
  ASSERT_EQ(kernels::logits_chunk_rows(lm.config().vocab_size, 2 * row), 2);
  for (double temperature : {0.0, 0.9}) {
    const auto whole = run(lm, temperature, int64_t{128} << 20);
    for (int64_t budget : {row, 2 * row, 3 * row}) {  // chunks of 1, 2 and 3 of the 7 rows
      const auto chunked = run(lm, temperature, budget);
      ASSERT_EQ(chunked.size(), whole.size());
      for (size_t i = 0; i < whole.size(); ++i)
        EXPECT_EQ(chunked[i].tokens, whole[i].tokens) << "temperature " << temperature << ", request " << i;
    }
  }
}

}  // namespace
}  // namespace aligntrain::generation
