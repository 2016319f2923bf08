"""Checks a run folder's TensorBoard files and report.html against its metrics.jsonl (test/metrics/run_outputs_test.sh).

  check_run_outputs.py RUN_DIR TB_STAGE[,TB_STAGE...]

TensorBoard (read back with tensorboard's EventAccumulator, which checks every record's CRCs): for each stage with
log.tensorboard, the scalar tags are exactly the numeric fields of the stage's metrics lines, each tag's steps are
exactly the steps at which metrics.jsonl has it (no duplicates after a resume), and each value equals the JSON value
rounded to float32; the text summary "recipe" is logged once, at step 0, and holds recipe.resolved.yaml. Stages
without log.tensorboard have no folder.

report.html: in each stage's section, one <polyline> per plotted metric (every numeric field but the bookkeeping
ones) of stages with more than one logged step, whose points map back through the plot's axes to exactly the logged
steps and, within 1e-4 of the axis range, the logged values; the resolved recipe, unescaped, equals the file; the
summary lists every stage as done.
Prints one line per check and exits 1 if any failed.
"""
import html
import html.parser
import json
import math
import os
import sys

import numpy as np
from tensorboard.backend.event_processing import event_accumulator

NOT_PLOTTED = {"epoch", "data_position", "elapsed_sec", "tokens", "eval/tokens", "eval/examples",
               "eval/exact_match_count"}
failures = 0


def check(ok, what):
    global failures
    print(("ok   - " if ok else "FAIL - ") + what)
    if not ok:
        failures += 1


def numeric(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


run_dir, tb_stages = sys.argv[1], [s for s in sys.argv[2].split(",") if s]
lines = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl")) if l.strip()]
recipe = open(os.path.join(run_dir, "recipe.resolved.yaml")).read()
stages = []
for l in lines:
    if l["stage"] not in stages:
        stages.append(l["stage"])

# --- TensorBoard -------------------------------------------------------------------------------------------
for stage in stages:
    folder = os.path.join(run_dir, "tensorboard", stage)
    if stage not in tb_stages:
        check(not os.path.exists(folder), f"{stage}: no TensorBoard folder (log.tensorboard is off)")
        continue
    acc = event_accumulator.EventAccumulator(folder, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    want = {}
    for l in lines:
        if l["stage"] != stage:
            continue
        for k, v in l.items():
            if k not in ("stage", "step") and numeric(v):
                want.setdefault(k, []).append((l["step"], v))
    tags = set(acc.Tags()["scalars"])
    check(tags == set(want), f"{stage}: scalar tags are the metrics' numeric fields ({len(want)}; "
                             f"missing {sorted(set(want) - tags)}, extra {sorted(tags - set(want))})")
    bad = []
    for k, pts in want.items():
        if k not in tags:
            continue
        got = [(e.step, e.value) for e in acc.Scalars(k)]
        if [s for s, _ in got] != [s for s, _ in pts]:
            bad.append(f"{k}: steps {[s for s, _ in got]} != {[s for s, _ in pts]}")
            continue
        for (s, g), (_, v) in zip(got, pts):
            if np.float32(g) != np.float32(v):
                bad.append(f"{k} at step {s}: {g!r} != float32({v!r}) = {np.float32(v)!r}")
    check(not bad, f"{stage}: every scalar at the same steps as metrics.jsonl with float32-equal values "
                   f"({sum(len(p) for p in want.values())} points){': ' + '; '.join(bad[:5]) if bad else ''}")
    texts = acc.Tensors("recipe") if "recipe" in acc.Tags()["tensors"] else []
    check(len(texts) == 1 and texts[0].step == 0, f"{stage}: one text summary 'recipe' at step 0 "
                                                  f"(got {[t.step for t in texts]})")
    if texts:
        text = texts[0].tensor_proto.string_val[0].decode()
        check(recipe in text and acc.SummaryMetadata("recipe").plugin_data.plugin_name == "text",
              f"{stage}: the text summary (text plugin) holds recipe.resolved.yaml")

# --- report.html -------------------------------------------------------------------------------------------


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.stage = None
        self.axes = None
        self.polylines = []  # (stage, series, [(x, y)])
        self.in_pre = False
        self.pre = ""
        self.summary_rows = []
        self.row = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.stage = a.get("data-stage")
        elif tag == "g" and a.get("class") == "plot":
            self.axes = {k: float(a["data-" + k]) for k in
                         ("x-min", "x-max", "y-min", "y-max", "left", "top", "width", "height")}
        elif tag == "polyline":
            ax = self.axes
            pts = []
            for xy in a["points"].split():
                px, py = map(float, xy.split(","))
                x = ax["x-min"] + (px - ax["left"]) / ax["width"] * (ax["x-max"] - ax["x-min"])
                y = ax["y-min"] + (ax["top"] + ax["height"] - py) / ax["height"] * (ax["y-max"] - ax["y-min"])
                pts.append((x, y, ax["y-max"] - ax["y-min"]))
            self.polylines.append((self.stage, a["data-series"], pts))
        elif tag == "pre" and a.get("class") == "recipe":
            self.in_pre = True
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.row.append("")

    def handle_endtag(self, tag):
        if tag == "pre":
            self.in_pre = False
        elif tag == "tr" and self.row is not None:
            self.summary_rows.append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.in_pre:
            self.pre += data
        if self.row:
            self.row[-1] += data


page = Page()
page.convert_charrefs = True
page.feed(open(os.path.join(run_dir, "report.html")).read())
want_lines = {}
for stage in stages:
    stage_lines = [l for l in lines if l["stage"] == stage]
    if len({l["step"] for l in stage_lines}) < 2:
        continue
    for l in stage_lines:
        for k, v in l.items():
            if k not in ("stage", "step") and numeric(v) and k not in NOT_PLOTTED:
                want_lines.setdefault((stage, k), []).append((l["step"], v))
got_keys = [(s, k) for s, k, _ in page.polylines]
check(len(got_keys) == len(set(got_keys)) and set(got_keys) == set(want_lines),
      f"report: one polyline per plotted metric ({len(want_lines)}; missing "
      f"{sorted(set(want_lines) - set(got_keys))}, extra {sorted(set(got_keys) - set(want_lines))})")
bad = []
for stage, k, pts in page.polylines:
    want = want_lines.get((stage, k))
    if want is None:
        continue
    if len(pts) != len(want):
        bad.append(f"{stage}:{k}: {len(pts)} points, logged {len(want)}")
        continue
    for (x, y, yrange), (s, v) in zip(pts, want):
        if round(x) != s or abs(x - s) > 1e-3 or abs(y - v) > 1e-4 * yrange:
            bad.append(f"{stage}:{k}: point ({x:.4f}, {y:.6g}) is not ({s}, {v:.6g})")
check(not bad, f"report: every polyline's points map back to the logged steps and values "
               f"({sum(len(p) for p in want_lines.values())} points){': ' + '; '.join(bad[:5]) if bad else ''}")
check(page.pre == recipe, "report: the resolved recipe, unescaped, equals recipe.resolved.yaml")
done = [r[0] for r in page.summary_rows if len(r) > 2 and r[2] == "done"]
check(done == [s for s in stages if os.path.exists(os.path.join(run_dir, s, "DONE"))] and len(done) == len(stages),
      f"report: the summary table lists every stage as done ({done})")
sys.exit(1 if failures else 0)
