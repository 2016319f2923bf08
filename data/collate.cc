#include "data/collate.h"

#include <algorithm>
#include <stdexcept>

namespace aligntrain::data {

int64_t loss_tokens(const Encoded& e, bool train_on_prompt) {
  const auto n = static_cast<int64_t>(e.ids.size());
  if (!train_on_prompt && !e.loss_mask.empty()) {
    int64_t count = 0;
    for (int64_t t = 1; t < n; ++t) count += e.loss_mask[static_cast<size_t>(t)];
    return count;
  }
  return train_on_prompt ? n - 1 : n - std::max<int64_t>(1, e.prompt_len);
}

Batch collate(const std::vector<std::vector<const Encoded*>>& rows, const CollateOptions& options) {
  Batch b;
  b.rows = static_cast<int64_t>(rows.size());
  for (const auto& row : rows) {
    int64_t n = 0;
    for (const Encoded* e : row) n += static_cast<int64_t>(e->ids.size());
    b.length = std::max(b.length, n);
    b.packed = b.packed || row.size() > 1;
  }
  if (b.rows == 0 || b.length == 0) throw std::invalid_argument("collate: empty batch");
  const auto cells = static_cast<size_t>(b.rows * b.length);
  b.input_ids.assign(cells, options.pad_id);
  b.attention_mask.assign(cells, 0);
  b.position_ids.assign(cells, 0);
  b.segment_ids.assign(cells, 0);
  b.loss_mask.assign(cells, 0);
  for (int64_t r = 0; r < b.rows; ++r) {
    int64_t col = 0, segment = 0;
    for (const Encoded* e : rows[r]) {
      ++segment;
      const auto n = static_cast<int64_t>(e->ids.size());
      const int64_t first_loss = options.train_on_prompt ? 1 : std::max<int64_t>(1, e->prompt_len);
      for (int64_t t = 0; t < n; ++t, ++col) {
        const size_t i = static_cast<size_t>(r * b.length + col);
        b.input_ids[i] = e->ids[t];
        b.attention_mask[i] = 1;
        b.position_ids[i] = t;
        b.segment_ids[i] = segment;
        const bool masked = !options.train_on_prompt && !e->loss_mask.empty();
        b.loss_mask[i] = masked ? (t >= 1 && e->loss_mask[static_cast<size_t>(t)] ? 1 : 0) : (t >= first_loss ? 1 : 0);
        b.loss_tokens += b.loss_mask[i];
        ++b.tokens;
      }
    }
  }
  return b;
}

}  // namespace aligntrain::data
