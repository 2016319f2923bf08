// Cross-field checks on a resolved recipe, all collected: model and stage references, what each stage kind
// needs, loss types against stage kinds, batch arithmetic, data files. Plus the checks that need the world
// size or the model's dimensions, which the trainer calls at run time with plain integers.
#pragma once

#include "config/diagnostic.h"
#include "config/schema.h"

namespace aligntrain::config {

// Everything that can be checked without the world size or a model. Uses recipe.sources for locations.
Diagnostics validate(const Recipe& recipe);

// parallel.tensor divides world_size, and each stage's batch.global is divisible by
// batch.micro × data-parallel degree (world_size / tensor).
Diagnostics check_world(const Recipe& recipe, int world_size);

// Tensor parallelism of degree `tp` splits attention heads, key/value heads, the MLP and the vocabulary:
// each must be divisible by tp.
Diagnostics check_model_dims(int tp, int heads, int kv_heads, int intermediate, int vocab);

}  // namespace aligntrain::config
