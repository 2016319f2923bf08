#!/usr/bin/env python3
"""Checks that Bazel dependencies between the project's packages point one way, down this layer order:

    common, third_party          (error types, durable file writes; system and pip libraries)
    config, data                 (recipe schema; JSONL, tokenizers, chat templates, batching)
    runtime                      (communicators, rank layout, devices)
    model, kernels               (decoder, name table, parameter set; fused ops)
    parallel, optim, checkpoint, metrics
    objectives, generation
    stages                       (stage kinds, training loop, pipeline)
    cli                          (subcommands)
    //trainer:main, then //:aligntrain (the entry point, the binary)

A package may depend on packages of lower layers and on its own package's other targets; never on its own layer's
other packages or on a higher layer. Reads the graph with `bazel query` (kind(cc_library|cc_binary), --output=xml)
and prints each offending edge. Exit 0 when there is none, 1 otherwise. Tests, benchmarks and fuzz targets may
depend on anything and are not checked.
"""
import subprocess
import sys
import xml.etree.ElementTree as ET

LAYERS = [
    ["//common", "//third_party"],
    ["//config", "//data"],
    ["//trainer/runtime"],
    ["//trainer/model", "//kernels"],
    ["//trainer/parallel", "//trainer/optim", "//trainer/checkpoint", "//trainer/metrics"],
    ["//trainer/objectives", "//trainer/generation"],
    ["//trainer/stages"],
    ["//trainer/cli"],
    ["//trainer:"],
    ["//:"],
]


def unit_of(label):
    """The layer unit a label belongs to (the longest matching prefix), or None for external and unchecked ones."""
    best = None
    for rank, units in enumerate(LAYERS):
        for unit in units:
            if label == unit or label.startswith(unit + ":") or label.startswith(unit + "/") or (
                    unit.endswith(":") and label.startswith(unit)):
                if best is None or len(unit) > len(best[1]):
                    best = (rank, unit)
    return best


def main():
    scope = "//config/... + //data/... + //kernels/... + //trainer/... + //:all"
    query = f'kind("cc_library|cc_binary", {scope})'
    out = subprocess.run(["bazel", "query", query, "--output=xml"], check=True, capture_output=True, text=True).stdout
    root = ET.fromstring(out)
    bad = []
    edges = 0
    for rule in root.iter("rule"):
        name = rule.get("name")
        src = unit_of(name)
        if src is None:
            continue
        for lst in rule.iter("list"):
            if lst.get("name") != "deps":
                continue
            for dep in lst.iter("label"):
                d = dep.get("value")
                if d.startswith("@"):
                    continue
                if d.startswith(":"):
                    d = name.split(":")[0] + d
                dst = unit_of(d)
                if dst is None:
                    bad.append(f"{name} -> {d} (a package outside the layer table)")
                    continue
                edges += 1
                if dst[1] == src[1]:
                    continue
                if dst[0] >= src[0]:
                    what = "its own layer" if dst[0] == src[0] else "a higher layer"
                    bad.append(f"{name} -> {d} ({src[1]} may not depend on {dst[1]}: {what})")
    for b in bad:
        print("layer violation:", b)
    print(f"check_layers: {edges} dependency edges checked, {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
