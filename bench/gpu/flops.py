"""Model FLOPs per token, as trainer/model/flops.h counts them (PaLM's convention, appendix B): a trained token costs
3 forwards; a forward costs 2·N (N: parameters in matrix products; with tied embeddings all of them) plus
4 · layers · heads · head_dim · keys for the two attention products, where keys is how many keys the token's query
sees. bench.py uses it for the workloads as they run (the documents' own lengths); test/bench/gpu_bench_test.sh
checks it against `aligntrain plan --gpu` where the two describe the same attention."""
from collections import namedtuple

Shape = namedtuple("Shape", "hidden layers heads kv_heads head_dim intermediate vocab")


def parameters(s):
    """Parameters of a Llama model with tied embeddings (trainer/model/model_config.cc parameter_count)."""
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    layer = s.hidden * q + 2 * s.hidden * kv + q * s.hidden + 3 * s.hidden * s.intermediate + 2 * s.hidden
    return s.vocab * s.hidden + s.layers * layer + s.hidden


def causal_mean_keys(length):
    return (length + 1) / 2


def forward_per_token(s, keys):
    return 2.0 * parameters(s) + 4.0 * s.layers * s.heads * s.head_dim * keys


def train_per_token(s, keys):
    return 3.0 * forward_per_token(s, keys)
