// Rows of encoded examples → one padded micro-batch, as flat row-major arrays (no tensor library here; the trainer
// wraps them). A row holds one example, or several packed ones (data.packing), each a separate document:
//   input_ids       tokens, right-padded with pad_id to the longest row of the batch
//   attention_mask  1 for tokens, 0 for padding
//   position_ids    0.. within each document (restarting at every packed document)
//   segment_ids     1, 2, ... per document of the row, 0 for padding (attention stays inside a document)
//   loss_mask       1 where the token carries loss: response tokens, or those of Encoded::loss_mask when set
//                   (every token with train_on_prompt), never a document's first token (nothing predicts it)
#pragma once

#include <cstdint>
#include <vector>

#include "data/encode.h"

namespace aligntrain::data {

struct CollateOptions {
  int32_t pad_id = 0;
  bool train_on_prompt = false;
};

struct Batch {
  int64_t rows = 0, length = 0;
  std::vector<int64_t> input_ids, attention_mask, position_ids, segment_ids, loss_mask;  // rows × length
  int64_t loss_tokens = 0;  // sum of loss_mask
  int64_t tokens = 0;       // sum of attention_mask
  bool packed = false;      // some row holds more than one document
};

Batch collate(const std::vector<std::vector<const Encoded*>>& rows, const CollateOptions& options);

// Tokens of `e` that carry loss under `options` (what collate counts for a document).
int64_t loss_tokens(const Encoded& e, bool train_on_prompt);

}  // namespace aligntrain::data
