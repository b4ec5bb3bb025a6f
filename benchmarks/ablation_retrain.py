"""Ablation of the retraining levers of Algorithm 1 (issue 10): each lever on and off, at the
paper's t (so retraining quality is compared at equal bytes) and with the automatic t.

For each (model, pruning) setting the simplified model comes from the reproduction's cache (the
paper recipe at full scale). Each row encodes both layers with one EncodeConfig variant and
reports the chosen t, the whole-file bytes, the validation error on the decision half, the test
error of the model decoded from the file, and the paired test difference to the simplified model
with its 95% confidence interval (the test split is only reported, never used for a choice).

    .venv/bin/python benchmarks/ablation_retrain.py [--only lenet300:dns] [--rows base,masked,...]

Writes results/ablation_retrain.{json,md} after every row (partial results survive).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from weightless.io import files as api
from weightless_lab.apps.mnist import PAPER_T
from weightless_lab.apps.run import baseline_sizes, paired_ci
from weightless_lab.experiments.common import ReproConfig, env_info, load_data, prepare_simplified
from weightless_lab.models import get_model
from weightless.pipeline.encode import encode_with_retraining
from weightless.pipeline.config import EncodeConfig
from weightless.training import per_example, set_threads

OUT = Path(__file__).resolve().parents[1] / "results"


def variants(base: EncodeConfig) -> dict[str, EncodeConfig]:
    """The rows: the old pipeline, then one lever added at a time, then the t rule variants."""
    rt = base.retrain
    old = replace(base, retrain_mode="centroid", train_encoded=False, retrain=replace(rt, epochs=2.0, distill=0.0))
    masked = replace(old, retrain_mode="masked")
    trained = replace(masked, train_encoded=True)
    distill = replace(trained, retrain=replace(trained.retrain, distill=0.5))
    longer = replace(distill, retrain=replace(distill.retrain, epochs=6.0))
    return {
        "old (centroid, frozen codebook/bias, no distill, 2 ep)": old,
        "+ masked free retraining, re-cluster": masked,
        "+ trainable codebook and bias": trained,
        "+ distillation 0.5": distill,
        "default (3 ep)": replace(distill, retrain=replace(distill.retrain, epochs=base.retrain.epochs)),
        "+ 6 epochs": longer,
        "distillation 0.9 (3 ep)": replace(distill, retrain=replace(distill.retrain, epochs=base.retrain.epochs, distill=0.9)),
        "lr 1e-3 (3 ep)": replace(distill, retrain=replace(distill.retrain, epochs=base.retrain.epochs, lr=1e-3)),
        "literal Figure 3: pending dense, re-pruned (3 ep + 2 ep)": replace(
            distill, retrain_mode="dense", retrain=replace(distill.retrain, epochs=base.retrain.epochs)),
    }


def run_row(key: tuple[str, str], name: str, cfg: EncodeConfig, simp, data, log) -> dict:
    t0 = time.perf_counter()
    res = encode_with_retraining(simp, data, cfg, log=log)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.wl")
        nbytes = api.save(path, res.tensors)
        rec = {r["name"]: r["payload_bytes"] for r in api.inspect(path)["records"]}
        model = get_model(key[0])
        model.load_state_dict(api.load(path))
    errs = per_example(model, data, "test")[0]
    ci = paired_ci(errs, per_example(simp.model, data, "test")[0])
    return {
        "row": name, "model": key[0], "pruning": key[1],
        "t": {r.name: r.t for r in res.layers},
        "t_auto": not cfg.t,
        "layer_bytes": {r.name: rec[r.name] for r in res.layers},
        # Deep Compression (CSR + Huffman, best index width) of the same encoded layers, lossless
        "dc_best_bytes": {r.name: baseline_sizes(res.indices[r.name], res.tensors[r.name].codebook,
                                                 conv=len(r.shape) > 2)["csr_huffman_best"] for r in res.layers},
        "file_bytes": nbytes,
        "val_decide_error": {r.name: r.val_error_retrained for r in res.layers},
        "val_reference_error": res.reference_val_error,
        "simplified_test_error": simp.test_error,
        "test_error": 100 * float(errs.mean()),
        "test_vs_simplified": ci,
        "monotone": all(r.monotone for r in res.layers),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def markdown(rows: list[dict], env: dict) -> str:
    lines = ["# Ablation of the retraining levers (issue 10)", "",
             "Each row encodes both layers of the simplified model with one configuration. Errors in %; "
             "'test - simplified' is the paired difference on the 10,000 test images with its 95% CI. "
             "'val (decide)' is the validation error after each layer's encoding and retraining, on the images that "
             "decided t (all 10,000 validation images; filter seeds are ranked on 5,000 training images). "
             "Rows at the paper's t show what retraining absorbs at equal bytes; 'automatic t' rows run the t rule.", "",
             f"Machine: {env['machine']['cpu']} ({env['machine']['logical_cpus']} CPUs, shared), load average "
             f"{[round(x, 1) for x in env['machine']['load_average']]}; commit {env['git']['commit'][:10]}; one thread.", "",
             "| setting | row | t | layer bytes | file bytes | val (decide) | test | test - simplified [95% CI] | s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = r["test_vs_simplified"]
        lines.append(
            f"| {r['model']} {r['pruning']} {'auto t' if r['t_auto'] else 'paper t'} | {r['row']} | "
            f"{'/'.join(map(str, r['t'].values()))} | {'/'.join(map(str, r['layer_bytes'].values()))} | {r['file_bytes']} | "
            f"{'/'.join(f'{v:.2f}' for v in r['val_decide_error'].values())} (ref {r['val_reference_error']:.2f}) | "
            f"{r['test_error']:.2f} | {ci['difference']:+.2f} [{ci['ci95_low']:+.2f}, {ci['ci95_high']:+.2f}] | {r['seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="model:pruning (repeatable); default lenet300:dns and lenet5:dns")
    ap.add_argument("--rows", default=None, help="comma-separated row numbers (0-based) to run, or 'none'")
    ap.add_argument("--auto", action="store_true", help="also run the default config with automatic t")
    ap.add_argument("--out", default=str(OUT / "ablation_retrain"))
    args = ap.parse_args(argv)
    set_threads(1)
    keys = [tuple(s.split(":")) for s in (args.only or ["lenet300:dns", "lenet5:dns"])]
    rc = ReproConfig(progress=False)
    data = load_data(False)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    rows: list[dict] = []
    out = Path(args.out)
    prev = json.loads(out.with_suffix(".json").read_text())["rows"] if out.with_suffix(".json").exists() else []
    for key in keys:
        simp, _ = prepare_simplified(key[0], key[1], rc, data, log)
        base = rc.encode_config(t=PAPER_T[key])
        todo = list(variants(base).items())
        if args.rows:
            todo = [] if args.rows == "none" else [todo[int(i)] for i in args.rows.split(",")]
        if args.auto:
            todo.append((f"default, automatic t (z = {base.confidence_z})", replace(base, t={})))
        for name, cfg in todo:
            log(f"== {key} {name}")
            row = run_row(key, name, cfg, simp, data, log)
            log(json.dumps(row))
            rows.append(row)
            keep = [r for r in prev if (r["model"], r["pruning"], r["row"], r["t_auto"]) not in
                    {(x["model"], x["pruning"], x["row"], x["t_auto"]) for x in rows}]
            env = env_info()
            out.with_suffix(".json").write_text(json.dumps({"env": env, "rows": keep + rows}, indent=1))
            out.with_suffix(".md").write_text(markdown(keep + rows, env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
