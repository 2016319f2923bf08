#!/usr/bin/env bash
# One-time (idempotent) setup for building and testing aligntrain on Debian 12 / Ubuntu:
#   1. the Debian packages the build needs (Bazel 4.2.3, OpenMPI, yaml-cpp, spdlog, fmt, ...),
#   2. the project virtual environment .venv with the pinned torch wheel (LibTorch comes from it) and the Python
#      tools the tests use (scripts/requirements.txt).
# A second run with everything in place only checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

APT_PACKAGES=(
  bazel-bootstrap g++ git python3 python3-venv
  libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libopenmpi-dev openmpi-bin zlib1g-dev libpcre2-dev libxxhash-dev
  googletest libgtest-dev clang libclang-rt-14-dev
  chromium
  slurm-wlm munge
  libsentencepiece-dev
)
# chromium: test/metrics/run_outputs_test.sh renders report.html headless into a screenshot.
# slurm-wlm (slurmctld, slurmd, the client commands and the mpi/pmix plugin) and munge: test/cluster/slurm_test.sh
# runs aligntrain under `srun --mpi=pmix` on a one-node cluster that scripts/slurm/local_cluster.sh starts with
# daemons of its own (the packages' system services are not configured or used).
# libsentencepiece-dev: a model folder with only tokenizer.model (SentencePiece protobuf) is read through it.

# --- 1. Debian packages --------------------------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "step 1 (apt): need root or sudo to install: ${missing[*]}"
    SUDO=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || die "step 1 (apt): 'apt-get update' failed; check the network or /etc/apt/sources.list"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "step 1 (apt): 'apt-get install ${missing[*]}' failed; run it by hand to see why"
fi

# --- 2. Python virtual environment with the pinned torch -------------------------------------------------------
REQ=scripts/requirements.txt
STAMP=.venv/.aligntrain-setup
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -x .venv/bin/python ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null ||
  die "step 2 (venv): need Python >= 3.9 as '$PY' (set PYTHON=/path/to/python3)"
if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PY" -m venv .venv || die "step 2 (venv): '$PY -m venv .venv' failed; install python3-venv"
fi
step "installing Python packages into .venv ($REQ; the torch wheel is large, this takes a few minutes once)"
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$REQ" ||
  die "step 2 (pip): 'pip install -r $REQ' failed; check access to PyPI"
.venv/bin/python -c 'import torch, transformers, tokenizers, safetensors, numpy, sklearn, pyarrow, tensorboard, peft, sentencepiece' ||
  die "step 2 (pip): the packages installed but do not import"
echo "$want" > "$STAMP"
step "setup complete: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
