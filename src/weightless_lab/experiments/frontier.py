"""The rate-accuracy frontier (issue 15): is lossy encoding better than pruning harder and
coding losslessly?

For LeNet-300-100 and LeNet5 (magnitude recipes), FC-0 (``fc1.weight``) is pruned harder from
the recipe's simplified model to each nonzero fraction of the sweep (magnitude, then masked
retraining of the model with distillation from the simplified one, then k-means again with the
recipe's k): that is the lossless point of the sparsity, shipped either by Deep Compression
(CSR + Huffman, best index width) or by the project's best lossless record
(:func:`weightless.save`). The same model is then encoded with FC-0 in a Bloomier filter at
each swept t (the compact construction when available), through the real pipeline
(:func:`~weightless.pipeline.encode.encode_with_retraining`: seed trials, retraining of the
later layers); the lossless point goes through the same pipeline with t = 0 (stored lossless),
so both get the same retraining. The other simplified layer (LeNet-300-100 FC-1, LeNet5 CNN-1)
is stored lossless at every point. LeNet5's convolutional layers stay as the recipe left them:
their features are computed once and the experiment trains the head (FC-0, FC-1) on them.

Every point is a real ``.wl`` file of the whole model, decoded back and scored on the 10,000
test images (never used for a choice); the byte counts are FC-0's record and the whole file.
"Automatic t" marks, per sparsity, the smallest swept t that the encoder's validation rule
accepts (the same paired 95% rule as ``weightless compress``).
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from .common import Log, Progress, ReproConfig, available_constructions, env_info
from .simplified_cache import load_data, prepare_simplified

__all__ = ["NAME", "run", "markdown", "crossovers", "sweep", "model_markdown", "encode_to_file"]

NAME = "frontier"
LAYER = "fc1.weight"
MODELS = ("lenet300", "lenet5")


def _state(model: Any) -> dict[str, Any]:
    return {n: v.detach().cpu().clone() for n, v in model.state_dict().items()}


def _setup(model: str, cfg: ReproConfig, data: Any, log: Log) -> tuple[Any, Any, dict[str, Any], Any]:
    """Return ``(simplified head result, head task data, fixed tensors, full model)``."""
    from ..data.mnist import MNIST, Split
    from weightless.io.clustered import Clustered
    from .figure4 import lenet5_features, lenet5_head

    simp, _ = prepare_simplified(model, "magnitude", cfg, data, log)
    if model != "lenet5":
        return simp, data, {}, simp.model
    net = simp.model
    feats = MNIST(*(Split(lenet5_features(net, s.x), s.y) for s in (data.train, data.val, data.test)))
    fixed: dict[str, Any] = {}
    for n, v in _state(net).items():
        if n.startswith("fc"):
            continue
        lay = simp.layers.get(n)
        fixed[n] = Clustered(lay.indices, np.asarray(lay.codebook, np.float64), "float32") if lay is not None else v
    head_layers = {n: l for n, l in simp.layers.items() if n.startswith("fc")}
    head = replace(simp, model=lenet5_head(net), layers=head_layers)
    return head, feats, fixed, net


def _prune_harder(simp: Any, frac: float, task: Any, cfg: ReproConfig) -> Any:
    """``simp`` with FC-0 pruned to ``frac`` (when lower than now), retrained under the masks,
    and every simplified layer clustered again; returns a new SimplifyResult."""
    import torch

    from weightless.pipeline.steps import recluster
    from weightless.simplify.magnitude import get_param, topk_mask
    from weightless.training import evaluate, train

    m = copy.deepcopy(simp.model)
    masks = {n: torch.from_numpy(l.mask.astype(np.float32)) for n, l in simp.layers.items()}
    w = get_param(m, LAYER)
    if max(1, round(frac * w.numel())) < int(simp.layers[LAYER].mask.sum()):  # counts: 0.02990006 is not above 2.99%
        masks[LAYER] = topk_mask(w, frac).to(w.dtype)
        with torch.no_grad():
            w.mul_(masks[LAYER])
        rc = cfg.encode_config().retraining.train
        if rc is not None and cfg.frontier_epochs > 0:
            rc = replace(rc, epochs=cfg.frontier_epochs, progress=cfg.progress, desc=f"prune {LAYER} to {100 * frac:g}%")
            train(m, task, rc, masks=masks, teacher=copy.deepcopy(simp.model).eval())
    layers = {}
    for i, (n, l) in enumerate(simp.layers.items()):
        idx, cb = recluster(m, n, masks[n].numpy() > 0, l.k, l.init, seed=cfg.seed + i)
        layers[n] = replace(l, indices=idx, codebook=cb, mask=idx >= 0, nonzero_fraction=float((idx >= 0).mean()))
    return replace(simp, model=m, layers=layers, val_error=evaluate(m, task, split="val"),
                   test_error=evaluate(m, task, split="test"))


def encode_to_file(simp: Any, tsel: dict[str, int], task: Any, data: Any, fixed: dict[str, Any], full: Any,
                   cfg: ReproConfig, construction: str, path: str) -> tuple[Any, np.ndarray]:
    """Encode ``simp`` with the t of ``tsel`` (layer -> t, 0: lossless; layers not named: the
    encoder's choice), no whole-model stage and no back-off (a measured point); write the whole
    network (``fixed`` tensors and the encoded ones, in ``full``'s order) to ``path``, decode the
    file into a copy of ``full`` and score it on ``data``'s test split.

    Returns:
        ``(result of encode_with_retraining, per-image test errors of the decoded file)``.
    """
    from weightless.io import files as api
    from weightless.pipeline.encode import encode_with_retraining
    from weightless.training import per_example

    enc = cfg.encode_config()
    ecfg = replace(enc, filters=replace(enc.filters, t=tsel, construction=construction), tail=replace(enc.tail, enabled=False))
    res = encode_with_retraining(simp, task, ecfg, confirm_fraction=0.0)  # a measured point: no back-off
    tensors = {n: {**fixed, **res.tensors}[n] for n in full.state_dict()}
    api.save(path, tensors)
    decoded = copy.deepcopy(full)
    decoded.load_state_dict(api.load(path))
    return res, per_example(decoded, data, "test")[0]


def _point(simp: Any, t: int, task: Any, data: Any, fixed: dict[str, Any], full: Any, cfg: ReproConfig,
           construction: str, tmp: str) -> tuple[dict[str, Any], np.ndarray]:
    """Encode ``simp`` with FC-0 at ``t`` (0: lossless) and the other layers lossless; write the
    whole model, decode it, score it. Returns the point and its per-image test errors."""
    from weightless.io import files as api
    from weightless.baselines.whole_model import dc_whole_model

    path = os.path.join(tmp, f"t{t}.wl")
    res, errs = encode_to_file(simp, {n: (t if n == LAYER else 0) for n in simp.layers}, task, data, fixed, full, cfg,
                               construction, path)
    summary = api.inspect(path)
    rec = next(r for r in summary["records"] if r["name"] == LAYER)
    dc = dc_whole_model({n: {**fixed, **res.tensors}[n] for n in full.state_dict()}, res.indices)
    lay = res.layers[[l.name for l in res.layers].index(LAYER)]
    return {
        "t": t, "layer_bytes": rec["payload_bytes"], "layer_encoding": rec["encoding"], "file_bytes": summary["file_bytes"],
        "dc_layer_bytes": dc["tensors"][LAYER]["bytes"], "dc_whole_bytes": dc["bytes"],
        "false_positives": lay.false_positives, "val_error": res.val_error, "test_error": 100.0 * float(errs.mean()),
        "accepted": bool(lay.decision.get("accepted", False)) if t else None, "decision": lay.decision if t else None,
    }, errs


def _sweep(model: str, cfg: ReproConfig, data: Any, log: Log, prog: Progress) -> dict[str, Any]:
    simp, head_data, fixed, full = _setup(model, cfg, data, log)
    return sweep(model, simp, head_data, fixed, full, data, cfg.frontier_fractions.get(model, ()), cfg.frontier_ts, cfg, prog)


def sweep(label: str, simp: Any, head_data: Any, fixed: dict[str, Any], full: Any, data: Any, fracs: Sequence[float],
          ts: Sequence[int], cfg: ReproConfig, prog: Progress) -> dict[str, Any]:
    """The frontier of one model's FC-0 (``fc1.weight``): at each nonzero fraction in ``fracs``
    (pruned harder from ``simp``), the lossless point and a filter at each t in ``ts``.

    Args:
        simp: the simplified model (or head, trained on ``head_data``: features computed once).
        fixed: tensors of ``full`` outside ``simp`` (stored as given in every file).
        full: the whole network; each point's file holds its tensors and is scored on ``data``'s
            test split.

    Returns:
        The JSON-ready entry of ``models`` (without ``crossovers``).
    """
    from weightless.pipeline.contract import paired_ci
    from weightless.training.task import as_task

    task, test_task = as_task(head_data), as_task(data)
    cons = available_constructions()
    construction = "compact" if "compact" in cons else cons[0]
    points = []
    with tempfile.TemporaryDirectory(prefix="wl-frontier-") as tmp:
        for frac in fracs:
            sf = _prune_harder(simp, frac, task, cfg)
            lay = sf.layers[LAYER]
            row: dict[str, Any] = {"nonzero_fraction": lay.nonzero_fraction, "nonzero": int(lay.mask.sum()), "k": lay.k,
                                   "simplified_val_error": sf.val_error, "simplified_test_error": sf.test_error, "t": []}
            base = None
            for t in (0, *ts):
                p, errs = _point(sf, t, task, test_task, fixed, full, cfg, construction, tmp)
                if base is None:
                    base = errs
                else:
                    p["test_minus_lossless"] = paired_ci(errs, base)
                row["t"].append(p)
            ok = [p["t"] for p in row["t"][1:] if p["accepted"]]
            row["auto_t"] = min(ok) if ok else None
            points.append(row)
            lossless = row["t"][0]
            prog.step(f"{label} FC-0 {100 * lay.nonzero_fraction:.2f}%: lossless {lossless['layer_bytes']} B "
                      f"(DC {lossless['dc_layer_bytes']} B) at {lossless['test_error']:.2f}%; "
                      + ", ".join(f"t={p['t']} {p['layer_bytes']} B {p['test_error']:.2f}%" for p in row["t"][1:]))
    return {"model": label, "layer": LAYER, "paper_layer": "FC-0", "construction": construction,
            "shape": list(simp.layers[LAYER].indices.shape), "recipe_nonzero_fraction": simp.layers[LAYER].nonzero_fraction,
            "points": points}


def run(cfg: ReproConfig, log: Log) -> dict[str, Any]:
    """Run the frontier sweeps of both models. Returns the JSON-ready result.

    Raises:
        DataError: MNIST missing.
    """
    cfg.validate()
    t0 = time.perf_counter()
    data = load_data(cfg.quick)
    prog = Progress(NAME, [1.0 for m in MODELS for _ in cfg.frontier_fractions.get(m, ())], log)
    models = [_sweep(m, cfg, data, log, prog) for m in MODELS if cfg.frontier_fractions.get(m)]
    for m in models:
        m["crossovers"] = crossovers(m)
    return {"experiment": NAME, "description": "Test error against bytes: Weightless (t swept) vs pruning harder and "
            "coding losslessly (Deep Compression and the project's best lossless record), per FC-0 layer and whole file.",
            "method": __doc__.split("\n\n", 1)[1].replace("\n", " ").strip(), "models": models,
            "t_rule": "error",
            "seconds": round(time.perf_counter() - t0, 1), "env": env_info(cfg)}


def _lossless_curve(m: dict[str, Any], key: str) -> list[tuple[float, float]]:
    """(bytes, test error) of the lossless points, by bytes."""
    return sorted((p["t"][0][key], p["t"][0]["test_error"]) for p in m["points"])


def _interp(curve: list[tuple[float, float]], x: float) -> float | None:
    """The lossless test error at ``x`` bytes (linear in log bytes between points; None outside)."""
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= x <= x1:
            a = 0.0 if x1 == x0 else (np.log(x) - np.log(x0)) / (np.log(x1) - np.log(x0))
            return float(y0 + a * (y1 - y0))
    return None


def crossovers(m: dict[str, Any]) -> dict[str, Any]:
    """Where the Weightless points lie against the lossless curves: for every filter point, the
    test error of the lossless curve at the same bytes (interpolated in log bytes between the
    swept sparsities) minus the point's own (positive: Weightless below the lossless curve)."""
    out: dict[str, Any] = {}
    for scope, wl_key, curves in (("layer", "layer_bytes", {"best_lossless": "layer_bytes", "deep_compression": "dc_layer_bytes"}),
                                  ("whole", "file_bytes", {"best_lossless": "file_bytes", "deep_compression": "dc_whole_bytes"})):
        for cname, ckey in curves.items():
            curve = _lossless_curve(m, ckey)
            rows = []
            for p in m["points"]:
                for q in p["t"][1:]:
                    ref = _interp(curve, q[wl_key])
                    rows.append({"nonzero_fraction": p["nonzero_fraction"], "t": q["t"], "bytes": q[wl_key],
                                 "test_error": q["test_error"],
                                 "margin_pp": None if ref is None else round(ref - q["test_error"], 3)})
            below = [r for r in rows if r["margin_pp"] is not None and r["margin_pp"] > 0]
            out[f"{scope}_vs_{cname}"] = {"points": rows, "below": len(below),
                                          "compared": sum(r["margin_pp"] is not None for r in rows)}
    return out


def markdown(result: dict[str, Any]) -> str:
    """Markdown tables of the sweeps and of where Weightless is below the lossless curves."""
    env = result["env"]
    out = ["# Frontier: Weightless against pruning harder and coding losslessly", "", result["method"], "",
           f"Generated {env['date_utc']}{' (QUICK smoke run)' if env['config']['quick'] else ''}; "
           f"{result['seconds']:.0f} s; automatic t by the '{result.get('t_rule', 'error')}' rule.", ""]
    for m in result["models"]:
        out += model_markdown(m)
    return "\n".join(out)


def model_markdown(m: dict[str, Any], figure: str | None = None) -> list[str]:
    """The Markdown lines of one model's frontier (an entry of ``models``): the table of its
    points, where the filters lie against the lossless curves, and its figure (``figure``,
    default ``frontier_<model>.png``)."""
    out = [f"## {m['model']} FC-0 ({'x'.join(map(str, m['shape']))}, {m['construction']} construction)", "",
            "| nonzero % | t | FC-0 bytes | DC FC-0 bytes | file bytes | DC file bytes | false pos. | val err % | "
            "test err % | test - lossless, pp [95% CI] |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in m["points"]:
        for q in p["t"]:
            ci = q.get("test_minus_lossless")
            tlabel = "lossless" if q["t"] == 0 else f"{q['t']}{' (auto)' if q['t'] == p['auto_t'] else ''}"
            out.append(
                f"| {100 * p['nonzero_fraction']:.2f} | {tlabel} | {q['layer_bytes']} | "
                f"{q['dc_layer_bytes'] if q['t'] == 0 else ''} | {q['file_bytes']} | {q['dc_whole_bytes'] if q['t'] == 0 else ''} | "
                f"{q['false_positives']} | {q['val_error']:.2f} | {q['test_error']:.2f} | "
                + ("" if ci is None else f"{ci['difference']:+.2f} [{ci['ci95_low']:+.2f}, {ci['ci95_high']:+.2f}]") + " |")
    out.append("")
    for key, c in m["crossovers"].items():
        good = [f"{100 * r['nonzero_fraction']:.2f}% t={r['t']} ({r['margin_pp']:+.2f} pp)"
                for r in c["points"] if r["margin_pp"] is not None and r["margin_pp"] > 0]
        out.append(f"- {key.replace('_', ' ')}: {c['below']} of {c['compared']} filter points inside the curve's "
                   f"byte range are below it" + (f": {', '.join(good)}" if good else ""))
    out += ["", f"![frontier {m['model']}]({figure or 'frontier_' + m['model'] + '.png'})", ""]
    return out
