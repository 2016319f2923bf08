"""Writes the demo recipe's sft stage alone (no eval split, no later stages), with absolute data paths and
output_dir `out`: the workload of the CPU data-parallel benchmarks (run_parallel_overhead.sh, run_dp_overlap.sh).

    python3 bench/demo_sft_recipe.py config/recipes/demo.yaml OUT.yaml
"""
import os
import sys

text = open(sys.argv[1]).read()
text = text[: text.index("  - name: dpo")]
text = "\n".join(l for l in text.splitlines() if "eval: data/sft_eval.jsonl" not in l and "eval: {every_steps" not in l) + "\n"
text = text.replace("data/", os.path.abspath("config/recipes/data") + "/")
text = text.replace("output_dir: ../../runs/demo", "output_dir: out")
open(sys.argv[2], "w").write(text)
