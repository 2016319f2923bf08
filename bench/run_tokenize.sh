#!/usr/bin/env bash
# Preparing a conversational SFT set (template + tokenisation + loss masks + truncation to 1024): `aligntrain
# tokenize` vs TRL's SFTTrainer._prepare_dataset with the fast tokenizer (bench/tokenize_peer.py), on the same cores.
#   bench/run_tokenize.sh [--conversations N] [--procs P]
# Both sides in both mask modes: `last` (loss on the last assistant turn; TRL's prompt-completion completion_mask)
# and `all` (every assistant turn; TRL's assistant_only_loss from {% generation %} blocks). aligntrain tokenize is
# one thread per process: with P > 1 the file is split into P parts tokenised by P processes at once (the sft stage
# encodes the same way per rank); TRL runs with dataset_num_proc = P. Needs bazel-bin/aligntrain and the .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
n=50000
procs=2
while [ $# -gt 0 ]; do
  case "$1" in
    --conversations) n="$2"; shift 2 ;;
    --procs) procs="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
py=.venv/bin/python
bin=bazel-bin/aligntrain
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TOKENIZERS_PARALLELISM=false
"$py" bench/make_tokenize_bench.py "$work" --conversations "$n" > /dev/null
split -n "l/$procs" -d "$work/sft.jsonl" "$work/part."
for mode in last all; do
  flag=""
  [ "$mode" = all ] && flag="--assistant-only-loss"
  for p in 1 "$procs"; do
    start=$(date +%s.%N)
    if [ "$p" = 1 ]; then
      "$bin" tokenize --model "$work/model" --data "$work/sft.jsonl" --max-length 1024 $flag --out "$work/out.jsonl"
    else
      for part in "$work"/part.[0-9][0-9]; do
        "$bin" tokenize --model "$work/model" --data "$part" --max-length 1024 $flag --out "$part.out" &
      done
      wait
      cat "$work"/part.[0-9][0-9].out > "$work/out.jsonl"
    fi
    end=$(date +%s.%N)
    "$py" - "$work/out.jsonl" "$start" "$end" "$mode" "$p" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
s = float(sys.argv[3]) - float(sys.argv[2])
kept = [r for r in rows if "input_ids" in r]
print(json.dumps({"side": "aligntrain", "mode": sys.argv[4], "procs": int(sys.argv[5]), "examples": len(kept),
                  "tokens": sum(len(r["input_ids"]) for r in kept), "seconds": round(s, 2),
                  "examples_per_s": round(len(rows) / s, 1)}))
PY
    "$py" bench/tokenize_peer.py "$work/model" "$work/sft.jsonl" --mode "$mode" --num-proc "$p" --max-length 1024
  done
done
