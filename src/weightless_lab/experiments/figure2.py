"""Figure 2: false positives and accuracy against t for one layer.

LeNet-300-100 FC-0 (``fc1.weight``), simplified with the paper's magnitude recipe, is encoded
with each t of the sweep; for each: the number of false positives of the filter (zeros that
decode to a nonzero), its record sizes, and the test accuracy of the model with the decoded
layer before and after retraining the later layers (FC-1, FC-2; FC-1 keeps its pruning mask).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from weightless.errors import InputError
from .common import Log, Progress, ReproConfig, encoded_layer_sizes, env_info
from .simplified_cache import load_data, prepare_simplified

__all__ = ["NAME", "LAYER", "run", "markdown"]

NAME = "figure2"
MODEL, PRUNING, LAYER = "lenet300", "magnitude", "fc1.weight"


def run(cfg: ReproConfig, log: Log) -> dict[str, Any]:
    """Run the t sweep. Returns the JSON-ready result (one point per t).

    Raises:
        DataError: MNIST missing.
    """
    from dataclasses import replace

    from weightless.pipeline.steps import best_filter, retrain_around
    from weightless.training import evaluate

    cfg.validate()
    enc = cfg.encode_config()
    filters = replace(enc.filters, seed_trials=1, construction="paper")
    t_start = time.perf_counter()
    data = load_data(cfg.quick)
    simp, _ = prepare_simplified(MODEL, PRUNING, cfg, data, log)
    lr = simp.layers[LAYER]
    shape = tuple(lr.indices.shape)
    flat = lr.indices.ravel()
    keys = np.flatnonzero(flat >= 0)
    later = {"fc2.bias", "fc3.weight", "fc3.bias", "fc1.bias"}
    pending = {"fc2.weight": (simp.layers["fc2.weight"].indices, simp.layers["fc2.weight"].codebook)}
    prog = Progress("figure2", [1.0] * len(cfg.figure2_ts), log)
    points = []
    for t in cfg.figure2_ts:
        # Algorithm 1's own steps: the filter of FC-0, then retraining around it (same defaults)
        net = copy.deepcopy(simp.model)
        try:
            f, _, _ = best_filter(net, LAYER, lr.indices, lr.codebook, lr.k, t, filters, data, "paper")
        except InputError as exc:
            points.append({"t": t, "skipped": str(exc)})
            prog.step(f"t={t} skipped ({exc})")
            continue
        sizes = encoded_layer_sizes(f, shape, lr.codebook)
        before_test, before_val = evaluate(net, data.test), evaluate(net, data.val)
        if enc.retraining.train is not None:
            retrain_around(net, data, enc.retraining, encoded={LAYER: (f.reconstruct_indices(shape), lr.codebook)},
                           pending=pending, trainable=later, teacher=simp.model, desc=f"retrain t={t}",
                           progress=cfg.progress)
        after_test, after_val = evaluate(net, data.test), evaluate(net, data.val)
        fp = int(f.count_false_positives())
        points.append({
            "t": t, "m": int(f.m), "false_positives": fp, "false_positive_rate": fp / max(flat.size - keys.size, 1),
            "bytes": sizes, "test_accuracy_before_retraining": 100 - before_test,
            "test_accuracy_after_retraining": 100 - after_test, "val_accuracy_before_retraining": 100 - before_val,
            "val_accuracy_after_retraining": 100 - after_val,
        })
        prog.step(f"t={t}: {fp} false positives, test accuracy {100 - before_test:.2f}% -> {100 - after_test:.2f}%")
    return {
        "experiment": NAME,
        "description": "Figure 2: false positives (log scale) and test accuracy before/after retraining "
        "against t, LeNet-300-100 FC-0 (magnitude recipe), paper construction.",
        "model": MODEL, "pruning": PRUNING, "layer": LAYER, "paper_layer": lr.paper_name,
        "shape": list(shape), "nonzero": int(keys.size), "k": int(lr.k),
        "simplified_test_accuracy": 100 - simp.test_error,
        "retrain_epochs": enc.retraining.train.epochs if enc.retraining.train is not None else 0.0,
        "paper_t": 8,
        "points": points,
        "seconds": round(time.perf_counter() - t_start, 1),
        "env": env_info(cfg),
    }


def markdown(result: dict[str, Any]) -> str:
    """A Markdown table of the sweep."""
    env = result["env"]
    out = [
        "# Figure 2: false positives and accuracy vs t",
        "",
        f"LeNet-300-100 {result['paper_layer']} ({result['layer']}, {result['shape'][0]}x{result['shape'][1]}, "
        f"{result['nonzero']} nonzeros, k={result['k']}), magnitude recipe; retraining of FC-1 and FC-2 for "
        f"{result['retrain_epochs']} epochs. Simplified model test accuracy "
        f"{result['simplified_test_accuracy']:.2f}%. The paper uses t={result['paper_t']} for this layer. "
        f"Generated {env['date_utc']}{' (QUICK smoke run)' if env['config']['quick'] else ''}.",
        "",
        "| t | false positives | FP rate | Weightless entropy-coded bytes | test acc. before retraining % | after % |",
        "|---|---|---|---|---|---|",
    ]
    for p in result["points"]:
        if "skipped" in p:
            out.append(f"| {p['t']} | skipped: {p['skipped']} | | | | |")
            continue
        out.append(
            f"| {p['t']} | {p['false_positives']} | {p['false_positive_rate']:.2e} | {p['bytes']['weightless_entropy']} | "
            f"{p['test_accuracy_before_retraining']:.2f} | {p['test_accuracy_after_retraining']:.2f} |"
        )
    out += ["", "![Figure 2](figure2.png)", ""]
    return "\n".join(out)
