#!/usr/bin/env python3
"""aligntrain vs PyTorch + transformers / TRL on one GPU, side by side in one run (bench/gpu/README.md).

  bench.py --device cuda [--bin aligntrain] [--python python3] [--out DIR] [--work DIR] [--budget-s 420]
           [--mfu 0.4] [--only sft,sft_ckpt,dpo,dpo_precompute,kd]
  bench.py --device cpu --tiny ...       the same code path with a tiny model on the CPU (hidden 64, 2 layers,
                                          vocabulary 512, sequences of 128), to test the script before GPU time

Workloads (bench/gpu/{sft,dpo,kd}.yaml; a Llama-3.2-1B-shaped model, random init, bf16 with fp32 master weights):
  sft             SFT, sequence length 2048, packing (4 documents of 512 tokens per row), 8 rows per step
  sft_ckpt        the same with activation checkpointing (the peer: transformers' gradient checkpointing)
  dpo             DPO with a live reference, chosen and rejected of 1024 tokens, 8 pairs per step (peer: TRL)
  dpo_precompute  DPO with precomputed reference log-probs (peer: TRL, precompute_ref_log_probs)
  kd              KD (forward KL, full vocabulary) from a live teacher twice as deep, 1024 tokens, 8 rows per step
Each is run by aligntrain (`aligntrain run`, the resolved recipe) and by its Python peer (bench/*_peer.py reading
the same resolved recipe, --device/--dtype as aligntrain's), one fresh process each, warm-up steps then timed steps.

Measured: tokens/s over the timed steps (non-padding tokens / summed step time; each side times the same span of a
step), MFU = tokens/s × model FLOPs per token / the chip's dense bf16 peak (FLOPs per token as trainer/model/flops.h
counts them, with the attention of the actual documents), peak memory (CUDA: the caching allocator's peak
allocated bytes; CPU: the process's peak RSS), and the step losses. Next to them, `aligntrain plan --gpu CHIP`'s
prediction (tokens/s at --mfu, memory). The model folders and data are made on the host, never packed.

The model folders are made by make_model.py (torch only). aligntrain is stopped once its last step is logged: the
end-of-stage checkpoint of a 1B model (~20 GB with AdamW state) is not part of a training step.

Time budget: a workload starts only while --budget-s has not run out, and every process is stopped at it; the
results so far are written after every workload, so a cut-short run still leaves its table: $OUT/gpu_bench.json,
$OUT/gpu_bench.md and $OUT/gpu_bench_logs.txt (the tail of every process's log). Exit 0 when every workload ran
on both sides, 1 otherwise (the results are written either way).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import flops  # noqa: E402
import workdata  # noqa: E402

# Shapes and batches: gpu = the issue's workload; tiny = the same code path in seconds on a CPU.
MODES = {
    "gpu": {"hidden": 2048, "layers": 16, "heads": 32, "kv_heads": 8, "head_dim": 64, "intermediate": 8192,
            "vocab": 128256, "teacher_layers": 32, "sft_doc": 512, "sft_len": 2048, "sft_global": 8, "sft_micro": 4,
            "dpo_len": 1024, "dpo_global": 8, "dpo_micro": 4, "kd_len": 1024, "kd_global": 8, "kd_micro": 2,
            "warmup": 2, "timed": 4, "threads": 4, "min_run_s": 30},
    "tiny": {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "head_dim": 16, "intermediate": 128,
             "vocab": 512, "teacher_layers": 4, "sft_doc": 32, "sft_len": 128, "sft_global": 4, "sft_micro": 2,
             "dpo_len": 64, "dpo_global": 4, "dpo_micro": 2, "kd_len": 64, "kd_global": 4, "kd_micro": 2,
             "warmup": 1, "timed": 2, "threads": 1, "min_run_s": 0},
}

WORKLOADS = ["sft", "sft_ckpt", "dpo", "dpo_precompute", "kd"]


class Budget:
    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds

    def left(self):
        return self.deadline - time.monotonic()


def log_tail(path, lines=25):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def run_process(cmd, log, timeout, env=None, stop_when=None):
    """Runs `cmd` with its output in `log`, at most `timeout` seconds; stop_when() true (polled every 0.1 s) ends it
    early with SIGKILL. Returns (status, exit code, peak RSS MiB, wall seconds); status: ok | stopped | timeout | failed."""
    t0 = time.monotonic()
    with open(log, "w") as lf:
        lf.write("$ " + " ".join(cmd) + "\n")
        lf.flush()
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    status = None
    while True:
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if status is None:
            if stop_when is not None and stop_when():
                status = "stopped"
            elif time.monotonic() - t0 > timeout:
                status = "timeout"
            if status is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:  # it ended on its own meanwhile
                    pass
        time.sleep(0.1)
    rc = os.waitstatus_to_exitcode(st)
    if status is None:
        status = "ok" if rc == 0 else "failed"
    return status, rc, ru.ru_maxrss / 1024, time.monotonic() - t0


def read_jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError):
        return []


def timed_stats(rows, warmup):
    """tokens/s over the steps after `warmup` (tokens / summed step seconds), and the step losses."""
    rows = [r for r in rows if "tokens_per_sec" in r]
    timed = [r for r in rows if r["step"] > warmup]
    if not timed:
        return None
    secs = sum(r["tokens"] / r["tokens_per_sec"] for r in timed)
    return {"tokens_per_s": sum(r["tokens"] for r in timed) / secs, "timed_steps": len(timed),
            "step_s": secs / len(timed), "tokens_per_step": timed[-1]["tokens"],
            "losses": [r.get("loss") for r in rows]}


def detect_chip(device):
    if device != "cuda":
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30).stdout.strip().splitlines()
        if out:
            return out[0].strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    import torch  # the host's own torch
    return torch.cuda.get_device_name(0)


def parse_plan(text, stage):
    """(peak TFLOP/s, chip, {GFLOP/token, tokens/s, ... GiB}) from `aligntrain plan --gpu`'s estimate section."""
    head = re.search(r"GPU estimate: (.*), dense bf16 peak ([0-9.]+) TFLOP/s, assumed MFU ([0-9.]+)%", text)
    num = r"\s+([0-9.eE+-]+)"
    row = re.search(r"^" + re.escape(stage) + r"\s+\S+" + num * 6 + r"\s+(yes|no)\s*$", text, re.M)
    if not head or not row:
        return None
    g = [float(x) for x in row.groups()[:6]]
    return {"chip": head.group(1), "peak_tflops": float(head.group(2)), "mfu": float(head.group(3)) / 100,
            "gflop_per_token": g[0], "tokens_per_s": g[1], "state_gib": g[2], "frozen_gib": g[3],
            "act_gib": g[4], "total_gib": g[5]}


class Bench:
    def __init__(self, a):
        self.a = a
        self.m = MODES["tiny" if a.tiny else "gpu"]
        self.budget = Budget(a.budget_s)
        self.work = os.path.abspath(a.work)
        self.out = os.path.abspath(a.out)
        os.makedirs(self.work, exist_ok=True)
        os.makedirs(self.out, exist_ok=True)
        self.logs = os.path.join(self.work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.env = dict(os.environ)
        # The same CUDA allocator setting on both sides: aligntrain's default (trainer/runtime/cuda_alloc_conf.h).
        if "PYTORCH_ALLOC_CONF" not in self.env:
            self.env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
        self.env.setdefault("HF_HUB_OFFLINE", "1")
        self.env.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.results = {"mode": "tiny" if a.tiny else "gpu", "device": a.device, "chip": None, "workloads": {},
                        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "budget_s": a.budget_s}
        self.model = os.path.join(self.work, "model")
        self.teacher = os.path.join(self.work, "teacher")

    # ---- setup ----------------------------------------------------------------------------------------------
    def sh(self, name, cmd, timeout=None):
        """Runs a setup command; returns (its stdout, wall seconds); its stdout and stderr go to logs/NAME.log."""
        log = os.path.join(self.logs, name + ".log")
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=self.env,
                               timeout=timeout or max(1.0, self.budget.left()))
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name} timed out: {' '.join(cmd)}")
        with open(log, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n" + p.stdout + p.stderr)
        if p.returncode != 0:
            raise RuntimeError(f"{name} failed (exit {p.returncode}):\n{log_tail(log)}")
        return p.stdout, time.monotonic() - t0

    def versions(self):
        code = ("import json, torch\nv = {'torch': torch.__version__, 'cuda': torch.version.cuda}\n"
                "for m in ('transformers', 'trl', 'datasets', 'accelerate'):\n"
                "    try:\n        v[m] = __import__(m).__version__\n"
                "    except Exception as e:\n        v[m] = 'missing: ' + type(e).__name__ + ': ' + str(e)[:200]\n"
                "print('VERSIONS ' + json.dumps(v))\n")
        text, _ = self.sh("versions", [self.a.python, "-c", code], timeout=120)
        m = re.search(r"VERSIONS (.*)", text)
        return json.loads(m.group(1)) if m else {}

    def make_model(self, path, layers, seed):
        if os.path.exists(os.path.join(path, "model.safetensors")):
            return 0.0
        m = self.m
        _, wall = self.sh("make_" + os.path.basename(path), [
            self.a.python, os.path.join(HERE, "make_model.py"), "--base", os.path.join(self.work, "base"), "--out", path,
            "--hidden", str(m["hidden"]), "--layers", str(layers), "--heads", str(m["heads"]),
            "--kv-heads", str(m["kv_heads"]), "--head-dim", str(m["head_dim"]),
            "--intermediate", str(m["intermediate"]), "--vocab", str(m["vocab"]), "--seed", str(seed),
            "--device", self.a.device])
        return wall

    def setup(self):
        r = self.results
        r["chip"] = detect_chip(self.a.device)
        r["plan_gpu"] = r["chip"] or self.a.assume_gpu
        text, _ = self.sh("version", [self.a.bin, "--version"], timeout=60)
        r["aligntrain"] = text.splitlines()[-1].strip() if text.strip() else "?"
        r["versions"] = self.versions()
        print(f"device {self.a.device} ({r['chip'] or 'no GPU; plan assumes ' + r['plan_gpu']}); aligntrain "
              f"{r['aligntrain']}; {json.dumps(r['versions'])}", flush=True)
        base = os.path.join(self.work, "base")
        if not os.path.exists(os.path.join(base, "config.json")):
            self.sh("base", [self.a.bin, "init-model", "--preset", "tiny-llama", "--seed", "1", "--out", base], 300)
        r["model_s"] = self.make_model(self.model, self.m["layers"], 1)
        m, steps = self.m, self.m["warmup"] + self.m["timed"]
        data = os.path.join(self.work, "data")
        os.makedirs(data, exist_ok=True)
        # enough documents that no step repeats one; DPO: exactly the pairs the steps use (TRL's peer: one epoch)
        docs_per_step = m["sft_global"] * (m["sft_len"] // m["sft_doc"])
        workdata.write_docs(os.path.join(data, "sft.jsonl"), docs_per_step * steps, m["sft_doc"], seed=1)
        workdata.write_pairs(os.path.join(data, "dpo.jsonl"), m["dpo_global"] * steps, m["dpo_len"], seed=2)
        workdata.write_docs(os.path.join(data, "kd.jsonl"), m["kd_global"] * steps, m["kd_len"], seed=3)

    # ---- one workload ---------------------------------------------------------------------------------------
    def recipe_sets(self, name):
        m, steps, data = self.m, self.m["warmup"] + self.m["timed"], os.path.join(self.work, "data")
        out = os.path.join(self.work, "run-" + name)
        common = [f"run.output_dir={out}", f"run.device={self.a.device}", f"run.threads={m['threads']}"]
        if name.startswith("sft"):
            sets = common + [f"models.policy.path={self.model}", f"stages.sft.data.train={data}/sft.jsonl",
                             f"stages.sft.train.steps={steps}", f"stages.sft.batch.global={m['sft_global']}",
                             f"stages.sft.batch.micro={m['sft_micro']}", f"stages.sft.batch.max_length={m['sft_len']}"]
            if name == "sft_ckpt":
                sets.append("stages.sft.activation_checkpointing=true")
            return "sft.yaml", "sft", sets
        if name.startswith("dpo"):
            sets = common + [f"models.policy.path={self.model}", f"stages.dpo.data.train={data}/dpo.jsonl",
                             f"stages.dpo.train.steps={steps}", f"stages.dpo.batch.global={m['dpo_global']}",
                             f"stages.dpo.batch.micro={m['dpo_micro']}", f"stages.dpo.batch.max_length={m['dpo_len']}"]
            if name == "dpo_precompute":
                sets.append("stages.dpo.reference.precompute=true")
            return "dpo.yaml", "dpo", sets
        sets = common + [f"models.student.path={self.model}", f"models.teacher.path={self.teacher}",
                         f"stages.kd.data.train={data}/kd.jsonl", f"stages.kd.train.steps={steps}",
                         f"stages.kd.batch.global={m['kd_global']}", f"stages.kd.batch.micro={m['kd_micro']}",
                         f"stages.kd.batch.max_length={m['kd_len']}"]
        return "kd.yaml", "kd", sets

    def model_flops(self, name):
        """Model FLOPs per trained token of the workload as run (flops.py; the documents' own attention spans)."""
        m = self.m
        policy = flops.Shape(m["hidden"], m["layers"], m["heads"], m["kv_heads"], m["head_dim"], m["intermediate"],
                             m["vocab"])
        if name.startswith("sft"):
            return flops.train_per_token(policy, flops.causal_mean_keys(m["sft_doc"]))
        if name.startswith("dpo"):
            keys = flops.causal_mean_keys(m["dpo_len"])
            f = flops.train_per_token(policy, keys)
            return f + (flops.forward_per_token(policy, keys) if name == "dpo" else 0.0)
        teacher = policy._replace(layers=m["teacher_layers"])
        keys = flops.causal_mean_keys(m["kd_len"])
        return flops.train_per_token(policy, keys) + flops.forward_per_token(teacher, keys)

    def run_ours(self, name, recipe, stage, total):
        out_dir = os.path.join(self.work, "run-" + name)
        shutil.rmtree(out_dir, ignore_errors=True)
        metrics = os.path.join(out_dir, "metrics.jsonl")

        def done():
            return sum(1 for r in read_jsonl(metrics) if r.get("stage") == stage and "tokens_per_sec" in r) >= total

        log = os.path.join(self.logs, name + "-aligntrain.log")
        status, rc, rss, wall = run_process([self.a.bin, "run", recipe, "--fresh"], log, self.budget.left(),
                                            env=self.env, stop_when=done)
        rows = [r for r in read_jsonl(metrics) if r.get("stage") == stage]
        res = {"status": "ok" if status == "stopped" or (status == "ok" and done()) else status, "wall_s": wall,
               "log": log}
        st = timed_stats(rows, self.m["warmup"])
        if st:
            res.update(st)
        if rows and "cuda_peak_allocated_mib" in rows[-1]:
            res["peak_mib"] = rows[-1]["cuda_peak_allocated_mib"]
            res["reserved_mib"] = rows[-1]["cuda_peak_reserved_mib"]
            res["memory"] = "cuda allocated"
        else:
            res["peak_mib"], res["memory"] = rss, "peak RSS"
        shutil.rmtree(out_dir, ignore_errors=True)  # checkpoints of a killed run, the cache of reference log-probs
        return res

    def run_peer(self, name, recipe, total):
        log = os.path.join(self.logs, name + "-peer.log")
        jsonl = log + ".jsonl"
        dev = ["--device", self.a.device, "--dtype", "bf16", "--threads", str(self.m["threads"]),
               "--steps", str(total), "--out", jsonl]
        data = os.path.join(self.work, "data")
        if name.startswith("sft"):
            cmd = [os.path.join(BENCH, "sft_step_peer.py"), "--recipe", recipe, "--model-dir", self.model,
                   "--data", f"{data}/sft.jsonl"]
        elif name.startswith("dpo"):
            cmd = [os.path.join(BENCH, "dpo_step_peer.py"), "--recipe", recipe, "--model-dir", self.model,
                   "--data", f"{data}/dpo.jsonl"] + (["--precompute"] if name == "dpo_precompute" else [])
        else:
            cmd = [os.path.join(BENCH, "distill_step_peer.py"), "--recipe", recipe, "--teacher-dir", self.teacher,
                   "--student-dir", self.model, "--data", f"{data}/kd.jsonl"]
        status, rc, rss, wall = run_process([self.a.python] + cmd + dev, log, self.budget.left(), env=self.env)
        res = {"status": status, "wall_s": wall, "log": log}
        st = timed_stats(read_jsonl(jsonl), self.m["warmup"])
        if st:
            res.update(st)
        m = re.search(r"^RESULT (.*)$", open(log, errors="replace").read(), re.M)
        result = json.loads(m.group(1)) if m else {}
        if "cuda_peak_allocated_mib" in result:
            res["peak_mib"], res["reserved_mib"] = result["cuda_peak_allocated_mib"], result["cuda_peak_reserved_mib"]
            res["memory"] = "cuda allocated"
        else:
            res["peak_mib"], res["memory"] = result.get("peak_rss_mib", rss), "peak RSS"
        res["impl"] = result.get("impl")
        return res

    def workload(self, name):
        w = {"name": name}
        self.results["workloads"][name] = w
        left = self.budget.left()
        if left < self.m["min_run_s"]:
            w["status"] = f"skipped: {max(0.0, left):.0f} s of the time budget left"
            return
        if name == "kd":
            w["teacher_model_s"] = self.make_model(self.teacher, self.m["teacher_layers"], 2)
        template, stage, sets = self.recipe_sets(name)
        args = [a for s in sets for a in ("--set", s)]
        text, _ = self.sh(f"{name}-resolve", [self.a.bin, "validate", os.path.join(HERE, template)] + args, 120)
        recipe = os.path.join(self.work, name + ".yaml")
        with open(recipe, "w") as f:  # the resolved recipe: validate's stdout (its log lines go to stderr)
            f.write(text)
        plan_text, _ = self.sh(f"{name}-plan", [self.a.bin, "plan", recipe, "--gpu", self.results["plan_gpu"],
                                               "--mfu", str(self.a.mfu)], 120)
        w["plan"] = parse_plan(plan_text, stage)
        w["flops_per_token"] = self.model_flops(name)
        total = self.m["warmup"] + self.m["timed"]
        print(f"== {name}: aligntrain ({self.budget.left():.0f} s of the budget left)", flush=True)
        w["aligntrain"] = self.run_ours(name, recipe, stage, total)
        print(f"== {name}: peer ({self.budget.left():.0f} s left)", flush=True)
        w["peer"] = self.run_peer(name, recipe, total)
        peak = (w["plan"] or {}).get("peak_tflops")
        for side in ("aligntrain", "peer"):
            s = w[side]
            if "tokens_per_s" in s and peak:
                s["mfu"] = s["tokens_per_s"] * w["flops_per_token"] / (peak * 1e12)
        a, p = w["aligntrain"], w["peer"]
        if "tokens_per_s" in a and "tokens_per_s" in p:
            w["speed_ratio"] = a["tokens_per_s"] / p["tokens_per_s"]
        if a.get("peak_mib") and p.get("peak_mib") and a.get("memory") == p.get("memory"):
            w["memory_ratio"] = a["peak_mib"] / p["peak_mib"]
        w["status"] = "ok" if a["status"] == "ok" and p["status"] == "ok" else f"aligntrain {a['status']}, peer {p['status']}"

    # ---- report ---------------------------------------------------------------------------------------------
    def table(self):
        r = self.results
        unit = "GiB" if self.a.device == "cuda" else "GiB RSS"
        lines = [f"# aligntrain vs PyTorch + transformers / TRL ({r['mode']} mode, {r['device']}"
                 f"{', ' + r['chip'] if r['chip'] else ''})", "",
                 f"aligntrain {r.get('aligntrain')}; {json.dumps(r.get('versions', {}))}; started {r['started']}; "
                 f"budget {r['budget_s']} s", "",
                 f"| workload | aligntrain tok/s | peer tok/s | speed ratio | aligntrain MFU | peer MFU | plan tok/s "
                 f"(MFU) | aligntrain {unit} | peer {unit} | memory ratio | plan GiB | step-1 loss (ours / peer) | status |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

        def f(x, fmt):
            return format(x, fmt) if isinstance(x, (int, float)) else "-"

        def pct(x):
            return f"{100 * x:.3g}%" if isinstance(x, (int, float)) else "-"
        for name in WORKLOADS:
            w = r["workloads"].get(name)
            if w is None:
                continue
            a, p, pl = w.get("aligntrain", {}), w.get("peer", {}), w.get("plan") or {}
            la, lp = (a.get("losses") or [None])[0], (p.get("losses") or [None])[0]
            lines.append(
                f"| {name} | {f(a.get('tokens_per_s'), ',.0f')} | {f(p.get('tokens_per_s'), ',.0f')} | "
                f"{f(w.get('speed_ratio'), '.2f')}x | {pct(a.get('mfu'))} | {pct(p.get('mfu'))} | "
                f"{f(pl.get('tokens_per_s'), ',.0f')} ({f(pl.get('mfu'), '.0%')}) | "
                f"{f(a.get('peak_mib', 0) / 1024 if a.get('peak_mib') else None, '.2f')} | "
                f"{f(p.get('peak_mib', 0) / 1024 if p.get('peak_mib') else None, '.2f')} | "
                f"{f(w.get('memory_ratio'), '.2f')}x | {f(pl.get('total_gib'), '.2f')} | "
                f"{f(la, '.4f')} / {f(lp, '.4f')} | {w.get('status')} |")
        lines += ["", "tokens/s: non-padding tokens of the timed steps / their summed step time (warm-up steps left out). "
                  "MFU: tokens/s × model FLOPs per token (6·N + attention of the actual documents, plus the forwards "
                  "of a live reference or teacher; recomputation not counted) / the chip's dense bf16 peak "
                  f"({(next((w['plan'] for w in r['workloads'].values() if w.get('plan')), {}) or {}).get('peak_tflops', '-')} "
                  f"TFLOP/s for {r.get('plan_gpu')}). Memory: the CUDA caching allocator's peak allocated bytes "
                  "(CPU: the process's peak RSS). plan: `aligntrain plan --gpu` at the stated MFU, every row one "
                  f"causal sequence of max_length (packed SFT attends within {self.m['sft_doc']}-token documents, so "
                  "its attention is smaller than plan's)."]
        if r["mode"] == "tiny":
            lines.append("Tiny mode on the CPU: a test of the script; its MFU and plan columns use the assumed GPU's "
                         "peak and mean nothing for a CPU.")
        return "\n".join(lines) + "\n"

    def write(self):
        with open(os.path.join(self.out, "gpu_bench.json"), "w") as f:
            json.dump(self.results, f, indent=1)
        with open(os.path.join(self.out, "gpu_bench.md"), "w") as f:
            f.write(self.table())
        with open(os.path.join(self.out, "gpu_bench_logs.txt"), "w") as f:
            for name in sorted(os.listdir(self.logs)):
                if name.endswith(".log"):
                    f.write(f"===== {name}\n{log_tail(os.path.join(self.logs, name), 40)}\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], required=True)
    p.add_argument("--tiny", action="store_true", help="the tiny model and batches (for --device cpu)")
    p.add_argument("--bin", default="aligntrain", help="the aligntrain binary")
    p.add_argument("--python", default=sys.executable, help="the Python of the peers (torch, transformers, trl)")
    p.add_argument("--out", default=os.environ.get("OUT", "runs/gpu_bench/out"), help="results (default $OUT)")
    p.add_argument("--work", default="/tmp/aligntrain_gpu_bench", help="models, data, runs, logs")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="no workload starts and every process stops after this many seconds (default 420)")
    p.add_argument("--mfu", type=float, default=0.4, help="the MFU plan's prediction assumes (default 0.4)")
    p.add_argument("--assume-gpu", default="NVIDIA H100 80GB HBM3",
                   help="the chip plan predicts for when the run has no GPU (--device cpu)")
    p.add_argument("--only", help="comma-separated workloads (default: all, in the order " + ",".join(WORKLOADS) + ")")
    a = p.parse_args()
    if a.device == "cuda" and a.tiny:
        p.error("--tiny is the CPU test mode")
    if a.device == "cpu" and not a.tiny:
        p.error("--device cpu runs the --tiny shapes only (a 1B model on a CPU takes hours)")
    names = a.only.split(",") if a.only else WORKLOADS
    for n in names:
        if n not in WORKLOADS:
            p.error(f"unknown workload {n!r}; known: {', '.join(WORKLOADS)}")

    b = Bench(a)
    code = 0
    try:
        b.setup()
        for name in names:
            try:
                b.workload(name)
            except Exception as e:  # one workload's failure leaves the others' results
                b.results["workloads"].setdefault(name, {})["status"] = f"error: {e}"
                print(f"{name}: {e}", file=sys.stderr, flush=True)
                code = 1
            b.write()
    except Exception as e:
        b.results["error"] = str(e)
        print(f"setup failed: {e}", file=sys.stderr, flush=True)
        code = 1
    b.write()
    print(b.table(), flush=True)
    bad = [n for n in names if b.results["workloads"].get(n, {}).get("status") != "ok"]
    if bad:
        print(f"not ok: {', '.join(bad)}", flush=True)
    print(f"results: {b.out}/gpu_bench.md, gpu_bench.json, gpu_bench_logs.txt", flush=True)
    return code or (1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main())
