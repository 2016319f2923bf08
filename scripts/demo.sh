#!/usr/bin/env bash
# The README's demo command: set up (Debian packages, .venv with torch), build aligntrain, and run the demo recipe
# (config/recipes/demo.yaml) on the embedded tiny model and the synthetic task data in config/recipes/data/.
set -euo pipefail
cd "$(dirname "$0")/.."

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }

bold "1/4 setup (packages and .venv; seconds when already done)"
./scripts/setup.sh

bold "2/4 build (bazel build //:aligntrain; a few minutes the first time)"
bazel build //:aligntrain
BIN=bazel-bin/aligntrain
$BIN --version

bold "3/4 validate the demo recipe (every error at once, with file:line)"
$BIN validate config/recipes/demo.yaml > /dev/null
echo "config/recipes/demo.yaml is valid; the resolved recipe: bazel-bin/aligntrain validate config/recipes/demo.yaml"

bold "4/4 plan: how the ranks are laid out and what each stage does"
$BIN plan config/recipes/demo.yaml --world-size 2

cat <<'MSG'

What you just saw: aligntrain read the demo recipe, checked every field, model and stage reference and data file,
and planned the stages for 2 ranks (tensor x data parallel). The training engine is being built in stages:
  - Llama-family models, HF checkpoints and tokenizers (init-model, logprobs)     next
  - MPI/NCCL tensor and data parallelism                                        after that
  - SFT training with checkpoints and exact resume (`aligntrain run`)            then
  - DPO family, KTO/BCO/D2O, distillation (DCKD, ADPA, AlignDistil)              then
Until `aligntrain run` trains, this demo stops here.
MSG
