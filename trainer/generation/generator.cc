// See generator.h.
#include "trainer/generation/generator.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "data/dealing.h"
#include "kernels/token_logprobs.h"
#include "trainer/parallel/data_parallel.h"

namespace aligntrain::generation {

namespace {

// One batch of requests (indices into `requests`), decoded together.
void decode_batch(model::CausalLM& lm, runtime::Communicator& tp, const std::vector<Request>& requests,
                  const std::vector<size_t>& batch, const GenerateOptions& o, const at::Device& device,
                  std::vector<Generated>& out) {
  const int64_t b = static_cast<int64_t>(batch.size());
  int64_t prompt_len = 0;
  for (size_t i : batch) prompt_len = std::max<int64_t>(prompt_len, requests[i].prompt.size());
  const int64_t capacity = prompt_len + o.max_new_tokens;

  // Rows with the same prompt (the samples of one prompt) share its prefill: `distinct` holds the first row of each
  // prompt, `source` [B] each row's index in it.
  std::vector<int64_t> distinct, source(static_cast<size_t>(b));
  {
    std::map<std::vector<int32_t>, int64_t> seen;
    for (int64_t r = 0; r < b; ++r) {
      const auto [it, fresh] = seen.emplace(requests[batch[static_cast<size_t>(r)]].prompt, static_cast<int64_t>(distinct.size()));
      if (fresh) distinct.push_back(r);
      source[static_cast<size_t>(r)] = it->second;
    }
  }
  const int64_t u = static_cast<int64_t>(distinct.size());

  // Left-padded prompts (one row per distinct prompt); key_valid marks real tokens over all slots the batch will use.
  auto ids = at::full({u, prompt_len}, o.pad_id, at::kLong);
  auto valid = at::zeros({u, capacity}, at::kBool);
  valid.narrow(1, prompt_len, o.max_new_tokens).fill_(true);
  for (int64_t r = 0; r < u; ++r) {
    const auto& p = requests[batch[static_cast<size_t>(distinct[static_cast<size_t>(r)])]].prompt;
    const int64_t n = static_cast<int64_t>(p.size());
    ids[r].narrow(0, prompt_len - n, n).copy_(at::tensor(std::vector<int64_t>(p.begin(), p.end()), at::kLong));
    valid[r].narrow(0, prompt_len - n, n).fill_(true);
  }
  const auto rows = at::tensor(source, at::kLong);
  auto positions = (valid.narrow(1, 0, prompt_len).to(at::kLong).cumsum(1) - 1).clamp_min(0);
  auto next_pos = positions.select(1, prompt_len - 1).index_select(0, rows).unsqueeze(1) + 1;  // [B, 1]
  valid = valid.to(device);

  const bool sampled = o.sampling.temperature > 0;
  const int64_t vocab = lm.config().vocab_size;
  std::vector<at::Generator> gens;
  if (sampled) {
    for (size_t i : batch) gens.push_back(at::make_generator<at::CPUGeneratorImpl>(data::splitmix64_of(o.seed ^ data::splitmix64_of(requests[i].stream))));
  }
  // Uniform draws of rows [start, start + n), each from its own row's stream.
  auto draw = [&](int64_t start, int64_t n) {
    if (!sampled) return at::Tensor();
    std::vector<at::Tensor> rows;
    for (int64_t r = start; r < start + n; ++r) rows.push_back(at::rand({vocab}, gens[static_cast<size_t>(r)], at::kFloat));
    return at::stack(rows);
  };
  // The last position's logits (and the draws) of at most a logits budget's rows at a time (kernels::logits_chunk_rows):
  // every row samples independently, so the tokens do not depend on the chunking.
  const int64_t chunk = kernels::logits_chunk_rows(lm.lm_head->weight().size(0));
  auto next_tokens = [&](const at::Tensor& last) {
    if (b <= chunk) return parallel::sample_tokens(lm.lm_head_forward(last), o.sampling, draw(0, b), o.vocab_limit, tp);
    std::vector<at::Tensor> parts;
    for (int64_t start = 0; start < b; start += chunk) {
      const int64_t n = std::min(chunk, b - start);
      parts.push_back(parallel::sample_tokens(lm.lm_head_forward(last.narrow(0, start, n)), o.sampling,
                                              draw(start, n), o.vocab_limit, tp));
    }
    return at::cat(parts);
  };

  at::NoGradGuard no_grad;
  auto cache = lm.new_cache(u, capacity);
  auto hidden = lm.hidden_states_cached(ids.to(device), positions.to(device), valid.narrow(1, 0, prompt_len), cache);
  if (u < b) {  // every row takes its prompt's cache, hidden state and key mask
    const auto on_device = rows.to(device);
    for (auto& layer : cache.layers) {
      layer.k = layer.k.index_select(0, on_device);
      layer.v = layer.v.index_select(0, on_device);
    }
    hidden = hidden.index_select(0, on_device);
    valid = valid.index_select(0, on_device);
  }
  std::vector<bool> done(static_cast<size_t>(b), false);
  int64_t open = b;
  for (int64_t step = 0; step < o.max_new_tokens && open > 0; ++step) {
    const auto next = next_tokens(hidden.select(1, hidden.size(1) - 1)).contiguous();  // [B]
    const auto* t = next.data_ptr<int64_t>();
    for (int64_t r = 0; r < b; ++r) {
      if (done[static_cast<size_t>(r)]) continue;
      auto& g = out[batch[static_cast<size_t>(r)]];
      if (std::find(o.eos_ids.begin(), o.eos_ids.end(), t[r]) != o.eos_ids.end()) {
        g.stopped = true;
        done[static_cast<size_t>(r)] = true;
        --open;
      } else {
        g.tokens.push_back(static_cast<int32_t>(t[r]));
      }
    }
    if (open == 0 || step + 1 == o.max_new_tokens) break;
    hidden = lm.hidden_states_cached(next.view({b, 1}).to(device), next_pos.to(device),
                                     valid.narrow(1, 0, cache.length + 1), cache);
    next_pos += 1;
  }
}

}  // namespace

std::vector<Generated> generate(model::CausalLM& lm, runtime::Communicator& tp, const std::vector<Request>& requests,
                                const GenerateOptions& o, const at::Device& device, const Progress& progress) {
  std::vector<Generated> out(requests.size());
  // Longest prompts first, so that a batch's rows need little padding; results go back to request order.
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return requests[a].prompt.size() > requests[b].prompt.size(); });
  const size_t bs = static_cast<size_t>(std::max<int64_t>(o.batch_size, 1));
  for (size_t start = 0; start < order.size(); start += bs) {
    const std::vector<size_t> batch(order.begin() + start, order.begin() + std::min(order.size(), start + bs));
    if (o.max_new_tokens > 0) decode_batch(lm, tp, requests, batch, o, device, out);
    if (progress) progress(std::min(order.size(), start + bs), order.size());
  }
  return out;
}

std::vector<Generated> generate_sharded(model::CausalLM& lm, runtime::Groups& groups,
                                        const std::vector<Request>& requests, const GenerateOptions& o,
                                        const at::Device& device, const Progress& progress) {
  const auto dp = static_cast<size_t>(groups.layout.dp), me = static_cast<size_t>(groups.layout.dp_rank);
  if (dp == 1) return generate(lm, *groups.tp, requests, o, device, progress);
  std::vector<Request> mine;
  for (int64_t i : data::rank_share(static_cast<int64_t>(requests.size()), static_cast<int>(me), static_cast<int>(dp)))
    mine.push_back(requests[static_cast<size_t>(i)]);
  const auto local = generate(lm, *groups.tp, mine, o, device, [&](size_t done, size_t) {
    if (progress) progress(std::min(requests.size(), done * dp), requests.size());
  });
  // Every request's row comes from exactly one replica: [n, 1 + max_new_tokens] = (stopped, tokens + 1), 0 = none.
  const int64_t n = static_cast<int64_t>(requests.size()), w = 1 + o.max_new_tokens;
  auto table = at::zeros({n, w}, at::kLong);
  for (size_t j = 0; j < local.size(); ++j) {
    auto row = table[static_cast<int64_t>(me + j * dp)];
    row[0] = local[j].stopped ? 2 : 1;
    for (size_t k = 0; k < local[j].tokens.size(); ++k) row[static_cast<int64_t>(k) + 1] = local[j].tokens[k] + 1;
  }
  table = parallel::sum_dealt_rows(table, *groups.dp, device).contiguous();
  std::vector<Generated> out(requests.size());
  const auto* t = table.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    out[static_cast<size_t>(i)].stopped = t[i * w] == 2;
    for (int64_t k = 1; k < w && t[i * w + k] > 0; ++k) out[static_cast<size_t>(i)].tokens.push_back(static_cast<int32_t>(t[i * w + k] - 1));
  }
  return out;
}

}  // namespace aligntrain::generation
