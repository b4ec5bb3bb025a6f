"""The paper's VGG-16 experiment with accuracy, on a VGG-style network trained here (issue 26).

ImageNet and the trained VGG-16 cannot be had offline, so a VGG-style network (``VGGMini``) is
trained on Fashion-MNIST: three 3x3 conv layers (6,272 features) and VGG's wide head, FC-0
6272x1024 (6.4 M weights) and FC-1 1024x1024 (1 M). The conv stack stays dense and frozen: its
features are computed once and every step trains the head on them (as the LeNet5 frontier does).
The head is simplified with the paper's VGG-16 setting (Table 1: FC-0 magnitude-pruned to 2.99%,
FC-1 to 4.16%, k = 4, three pruning steps with retraining, k-means, codebook fine-tuning), then
encoded with retraining at the paper's t (FC-0 t = 6, FC-1 t = 8: about 2 false positives per
true weight in FC-0, as in the paper) and at the encoder's own t (the paired rule on the
validation split); the whole-model stage is off (the paper encodes FC-0 and FC-1 only). Every
error is that of the network decoded from its ``.wl`` file (conv layers and FC-2 stored as
float32) on the 10,000 test images, with a paired 95% CI against the simplified network; the
error before retraining is that of the simplified network with FC-0 read from its filter. The
frontier sweeps FC-0's sparsity and t as ``frontier`` does for the LeNets (FC-1 lossless), and
the build and decode times of FC-0 and FC-1 at this size stand next to the synthetic VGG-16
layers of ``vgg_scale``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import paper as P
from ..apps.encode_options import override_encode
from .common import Log, Progress, ReproConfig, available_constructions, env_info, read_result

__all__ = ["NAME", "MODEL", "dense_training", "run", "markdown", "verdict", "features", "head_of", "load_data"]

NAME = "vgg"
MODEL = "vggmini"
#: Layer -> the paper's VGG-16 name (its Table 1 gives nonzero fraction, k and t).
LAYERS = {"fc1.weight": "FC-0", "fc2.weight": "FC-1"}


def load_data(quick: bool) -> Any:
    """Fashion-MNIST, standardised (train 50k / val 10k / test 10k; ``quick``: the first 10k
    training and 2k validation and test images).

    Raises:
        DataError: Fashion-MNIST is not installed.
    """
    from ..data.fashion_mnist import load_fashion_mnist

    data = load_fashion_mnist(normalize=True)
    return data.subset(10_000, 2_000) if quick else data


def features(net: Any, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    """The conv stack's output (float32 (n, 6272)) of ``net`` (a :class:`~weightless_lab.models.vgg.VGGMini`)
    for images ``x``."""
    import torch

    with torch.no_grad():
        return np.concatenate([net.features(torch.from_numpy(np.ascontiguousarray(x[s:s + batch]))).numpy()
                               for s in range(0, len(x), batch)]).astype(np.float32)


def head_of(net: Any) -> Any:
    """A :class:`~weightless_lab.models.vgg.VGGHead` holding copies of ``net``'s head tensors
    (``net``: a :class:`~weightless_lab.models.vgg.VGGMini`)."""
    from ..models.vgg import VGGHead

    head = VGGHead(net.fc1.in_features, net.fc1.out_features, net.fc3.out_features)
    head.load_state_dict({n: v for n, v in net.state_dict().items() if n.startswith("fc")})
    return head


def dense_training() -> Any:
    """The dense training of :data:`MODEL` (a :class:`~weightless.training.TrainConfig`; two
    threads: it runs under the CPU lock)."""
    from weightless.training.loop import TrainConfig

    return TrainConfig(epochs=4, batch_size=128, lr=1e-3, threads=2)


def _recipe(cfg: ReproConfig) -> Any:
    from weightless.simplify.magnitude import PruneSchedule
    from weightless.simplify.recipe import LayerRecipe, Recipe
    from weightless.training.loop import TrainConfig

    layers = tuple(LayerRecipe(n, "magnitude", P.VGG_LAYERS[p][1], P.VGG_LAYERS[p][2], "density") for n, p in LAYERS.items())
    prune = PruneSchedule(steps=3, retrain=TrainConfig(epochs=1, lr=5e-4), final=TrainConfig(epochs=1, lr=2e-4))
    return Recipe(model=MODEL, layers=layers, prune=prune, finetune=TrainConfig(epochs=1, lr=1e-4), seed=cfg.seed,
                  display_names=dict(LAYERS)).scaled(cfg.simplify_scale)


def _dense(cfg: ReproConfig, data: Any, log: Log) -> tuple[Any, dict[str, Any]]:
    from weightless.training import evaluate
    from ..apps.checkpoint import train_dense

    dcfg = replace(dense_training(), seed=cfg.seed, progress=cfg.progress, desc=f"dense {MODEL}")
    if cfg.quick:
        dcfg = replace(dcfg, epochs=1.0)
    net, secs, cached = train_dense(MODEL, data, dcfg, seed=cfg.seed, cache_dir=cfg.cache_dir)
    err = evaluate(net, data.test)
    log(f"dense {MODEL}: test error {err:.2f}% ({'cached' if cached else f'trained in {secs:.0f} s'})")
    return net, {"dense_test_error": err, "dense_from_cache": cached, "dense_epochs": dcfg.epochs,
                 "dense_threads": dcfg.threads, "seconds_dense": round(secs, 2)}


def _simplified(net: Any, feats: Any, cfg: ReproConfig, info: dict[str, Any], log: Log) -> Any:
    """The head of ``net`` simplified with :func:`_recipe` on ``feats`` (from the cache when there)."""
    from weightless.simplify import simplify
    from .simplified_cache import load_simplified, save_simplified

    recipe = _recipe(cfg)
    blob = json.dumps({"model": MODEL, "seed": cfg.seed, "quick": cfg.quick, "n": [len(feats.train), len(feats.val)],
                       "recipe": repr(recipe), "dense": repr(dense_training()), "v": 1}, sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()[:12]
    cdir = None if cfg.cache_dir is None else Path(cfg.cache_dir) / "simplified" / f"{MODEL}-magnitude-{key}"
    if cdir is not None and (cdir / "meta.json").exists():
        try:
            res, meta = load_simplified(cdir, head_of(net), recipe, feats)
            log(f"simplified {MODEL} head: loaded from {cdir} (test error {res.test_error:.2f}%)")
            info.update(meta["info"], simplified_from_cache=True)
            return res
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            log(f"simplified cache {cdir} unreadable ({exc}); simplifying again")
    t0 = time.perf_counter()
    res = simplify(head_of(net), feats, recipe, progress=cfg.progress)
    info.update(seconds_simplify=round(time.perf_counter() - t0, 2), simplified_from_cache=False)
    log(f"simplified {MODEL} head in {info['seconds_simplify']:.0f} s: test error {res.test_error:.2f}%, "
        + ", ".join(f"{l.paper_name} {100 * l.nonzero_fraction:.2f}% k={l.k}" for l in res.layers.values()))
    if cdir is not None:
        save_simplified(cdir, res, {k: v for k, v in info.items() if k != "simplified_from_cache"})
    return res


def _setup(cfg: ReproConfig, log: Log) -> tuple[Any, Any, Any, Any, dict[str, Any], dict[str, Any]]:
    """Return ``(images, features, network, simplified head, fixed tensors, info)``."""
    from weightless.training.splits import Split, Splits

    data = load_data(cfg.quick)
    net, info = _dense(cfg, data, log)
    t0 = time.perf_counter()
    feats = Splits(*(Split(features(net, s.x), s.y) for s in (data.train, data.val, data.test)))
    info["seconds_features"] = round(time.perf_counter() - t0, 2)
    simp = _simplified(net, feats, cfg, info, log)
    fixed = {n: v.detach().clone() for n, v in net.state_dict().items() if not n.startswith("fc")}
    return data, feats, net, simp, fixed, info


def _with_head(net: Any, head: Any) -> Any:
    """A copy of ``net`` with the head tensors of ``head``."""
    out = copy.deepcopy(net)
    out.load_state_dict({**net.state_dict(), **head.state_dict()})
    return out


def _before_retraining(simp: Any, res: Any, net: Any, data: Any) -> np.ndarray:
    """Per-image test errors of the simplified network with FC-0 read from its filter (false
    positives included), nothing retrained."""
    from weightless.pipeline.assemble import set_clustered
    from weightless.training import per_example

    lay = simp.layers["fc1.weight"]
    head = copy.deepcopy(simp.model)
    set_clustered(head, "fc1.weight", res.tensors["fc1.weight"].filter.reconstruct_indices(lay.indices.shape), lay.codebook)
    return per_example(_with_head(net, head), data, "test")[0]


def _median_seconds(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _table_rows(simp: Any, feats: Any, data: Any, net: Any, fixed: dict[str, Any], cfg: ReproConfig, construction: str,
                ref_errs: np.ndarray, prog: Progress) -> list[dict[str, Any]]:
    """One Tables 1-3 entry per t setting (the paper's, the encoder's own)."""
    from weightless.io import files as api
    from weightless.pipeline.contract import paired_ci
    from weightless.training.task import as_task
    from .frontier import encode_to_file
    from .table123 import layer_row

    task, test_task = as_task(feats), as_task(data)
    out = []
    for label, tsel in (("paper t", {n: P.VGG_LAYERS[p][3] for n, p in LAYERS.items()}), ("automatic t", {})):
        with tempfile.TemporaryDirectory(prefix="wl-vgg-") as tmp:
            path = os.path.join(tmp, "vgg.wl")
            t0 = time.perf_counter()
            res, errs = encode_to_file(simp, tsel, task, test_task, fixed, net, cfg, construction, path)
            secs = time.perf_counter() - t0
            before = _before_retraining(simp, res, net, test_task)
            rows = [layer_row(rep, res) for rep in res.layers]
            for r in rows:
                r["paper"] = _paper_layer(r["paper_name"])
            out.append({
                "t_setting": label, "layers": rows, "file_bytes": os.path.getsize(path),
                "decoded_test_error": 100.0 * float(errs.mean()), "decoded_minus_simplified": paired_ci(errs, ref_errs),
                "fc0_filter_no_retraining_test_error": 100.0 * float(before.mean()),
                "fc0_filter_no_retraining_minus_simplified": paired_ci(before, ref_errs),
                "load_seconds": round(_median_seconds(lambda: api.load(path), cfg.decode_repeats), 4),
                "seconds": round(secs, 1),
            })
        prog.step(f"{label}: " + ", ".join(f"{r['paper_name']} t={r['t']} {r['bytes']['weightless_entropy']} B "
                                           f"({r['false_positives']} false pos.)" for r in rows)
                  + f"; decoded test error {out[-1]['decoded_test_error']:.2f}% (before retraining "
                  f"{out[-1]['fc0_filter_no_retraining_test_error']:.2f}%)")
    return out


def _paper_layer(layer: str) -> dict[str, Any]:
    t1, t2, t3 = (P.TABLE1[("vgg16", "magnitude")]["layers"][layer], P.TABLE2[("vgg16", "magnitude")][layer],
                  P.TABLE3[("vgg16", "magnitude")][layer])
    return {"nonzero_percent": t1["nonzero_percent"], "k": t1["k"], "t": t1["t"], "csr_factor": t2[0],
            "weightless_raw_factor": t2[2], "improvement_raw": t2[4], "csr_huffman_factor": t3[0],
            "weightless_entropy_factor": t3[2], "improvement_entropy": t3[4]}


def _times(simp: Any, cfg: ReproConfig, construction: str, out_dir: str | None) -> dict[str, Any]:
    """Build and decode seconds of FC-0 and FC-1 at the paper's t, next to ``vgg_scale``'s."""
    from weightless.pipeline.steps import layer_seed
    from .decode_times import time_decode

    scale = read_result(out_dir, "vgg_scale") if out_dir is not None else None
    synth = {l["layer"]: l for l in (scale or {}).get("layers", [])}
    rows = []
    for name, layer in LAYERS.items():
        lr, t = simp.layers[name], P.VGG_LAYERS[layer][3]
        r = time_decode(lr.indices, lr.codebook, lr.k, t, layer_seed(cfg.seed, name), construction, cfg.decode_repeats)
        s = synth.get(layer, {}).get("constructions", {}).get(construction, {})
        r.update(layer=layer, synthetic_vgg16=None if "seconds" not in s else {
            "shape": synth[layer]["shape"], "build_seconds": s["seconds"]["filter_build"]["encode"],
            "decode_seconds": s["seconds"]["weightless_entropy"]["decode"] + s["seconds"]["weightless_reconstruct"]["decode"],
            "weightless_entropy_bytes": s["bytes"]["weightless_entropy"]})
        rows.append(r)
    return {"layers": rows, "paper_decode_seconds": P.DECODE_SECONDS["vgg16"], "synthetic_date": (scale or {}).get("env", {}).get("date_utc")}


def run(cfg: ReproConfig, log: Log, out_dir: str | None = None) -> dict[str, Any]:
    """Train (or load) the network, simplify its head, and run the Tables 1-3 rows, the frontier
    and the times. ``out_dir``: where ``vgg_scale.json`` may be read. Returns the JSON-ready result.

    Raises:
        DataError: Fashion-MNIST missing.
    """
    from weightless.training import per_example
    from .frontier import crossovers, sweep

    cfg.validate()
    t_start = time.perf_counter()
    cfg = replace(cfg, encode=override_encode(cfg.encode, retrain_epochs=cfg.vgg_retrain_epochs))
    cons = available_constructions()
    construction = "compact" if "compact" in cons else cons[0]
    prog = Progress(NAME, [2.0, 2.0] + [1.5] * len(cfg.vgg_fractions) + [0.2], log)
    data, feats, net, simp, fixed, info = _setup(cfg, log)
    ref_errs = per_example(_with_head(net, simp.model), data, "test")[0]
    rows = _table_rows(simp, feats, data, net, fixed, cfg, construction, ref_errs, prog)
    front = sweep(MODEL, simp, feats, fixed, net, data, cfg.vgg_fractions, cfg.vgg_ts, cfg, prog)
    front["crossovers"] = crossovers(front)
    times = _times(simp, cfg, construction, out_dir)
    prog.step("build and decode times")
    return {
        "experiment": NAME,
        "description": "The paper's VGG-16 rows (Tables 1-3) and the rate-accuracy frontier of FC-0, with accuracy, "
        "on a VGG-style network with a 6272x1024 FC-0 trained on Fashion-MNIST.",
        "method": __doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
        "data": "Fashion-MNIST (train 50,000 / val 10,000 / test 10,000), standardised",
        "construction": construction, "retrain_epochs": cfg.vgg_retrain_epochs,
        "simplified": {"test_error": simp.test_error, "val_error": simp.val_error, "dense_test_error": info["dense_test_error"],
                       "pruned_test_error": simp.pruned_test_error,
                       "layers": {n: {"paper_name": l.paper_name, "shape": list(l.indices.shape), "k": l.k,
                                      "nonzero_percent": 100.0 * l.nonzero_fraction} for n, l in simp.layers.items()},
                       "network_test_error": 100.0 * float(ref_errs.mean())},
        "info": info, "rows": rows, "frontier": front, "times": times,
        "seconds": round(time.perf_counter() - t_start, 1), "env": env_info(cfg),
    }


def _ci(c: dict[str, float]) -> str:
    return f"{c['difference']:+.2f} [{c['ci95_low']:+.2f}, {c['ci95_high']:+.2f}]"


def verdict(result: dict[str, Any], slack_pp: float = 0.1) -> list[str]:
    """The issue's two questions answered from a result: is the network decoded at the paper's t
    within ``slack_pp`` of the simplified one on test, and how much smaller than FC-0's lossless
    record (same sparsity) is the smallest filter whose test error is within ``slack_pp`` of it
    (and what the next smaller filter costs)."""
    paper = next(e for e in result["rows"] if e["t_setting"] == "paper t")
    d = paper["decoded_minus_simplified"]
    fc0 = next(r for r in paper["layers"] if r["paper_name"] == "FC-0")
    out = [f"- At the paper's setting (FC-0 t = {fc0['t']}, {fc0['false_positives'] / fc0['nonzero']:.2f} false positives "
           f"per true weight) the decoded network is {_ci(d)} pp from the simplified one "
           f"({'within' if d['difference'] <= slack_pp else 'NOT within'} {slack_pp} pp); before retraining "
           f"{_ci(paper['fc0_filter_no_retraining_minus_simplified'])} pp."]
    pts = result["frontier"]["points"]
    if pts and pts[0]["t"][0]["t"] == 0:
        ll, b, dc = pts[0]["t"][0]["layer_bytes"], fc0["bytes"]["weightless_entropy"], min(fc0["bytes"]["csr_huffman"],
                                                                                               fc0["bytes"]["csr_huffman_best"])
        out.append(f"- FC-0's t = {fc0['t']} filter, {b} B, against Deep Compression (CSR + Huffman) {dc} B: {dc / b:.2f}x "
                   f"(the paper: {fc0['paper']['improvement_entropy']:.2f}x); against the best lossless record "
                   f"{ll} B: {ll / b:.2f}x.")
    for p in pts:
        lossless, filters = p["t"][0], sorted(p["t"][1:], key=lambda q: q["layer_bytes"])
        ok = [q for q in filters if q["test_minus_lossless"]["difference"] <= slack_pp]
        if not ok:
            out.append(f"- FC-0 at {100 * p['nonzero_fraction']:.2f}%: no filter within {slack_pp} pp of the lossless "
                       f"record ({lossless['layer_bytes']} B).")
            continue
        best = ok[0]
        line = (f"- FC-0 at {100 * p['nonzero_fraction']:.2f}%: the smallest filter within {slack_pp} pp of the lossless "
                f"record ({lossless['layer_bytes']} B) is t = {best['t']}, {best['layer_bytes']} B "
                f"({100 * (1 - best['layer_bytes'] / lossless['layer_bytes']):.0f}% smaller, "
                f"{_ci(best['test_minus_lossless'])} pp)")
        smaller = [q for q in filters if q["layer_bytes"] < best["layer_bytes"]]
        if smaller:
            q = smaller[-1]
            line += (f"; t = {q['t']} ({100 * (1 - q['layer_bytes'] / lossless['layer_bytes']):.0f}% smaller) costs "
                     f"{_ci(q['test_minus_lossless'])} pp")
        out.append(line + ".")
    return out


def markdown(result: dict[str, Any]) -> str:
    """Markdown: the Tables 1-3 rows (ours (paper's VGG-16)), the frontier, the times."""
    from .common import fmt_factor, fmt_kb
    from .frontier import model_markdown

    env, s = result["env"], result["simplified"]
    method = re.sub(r":class:`~?(?:\w+\.)*(\w+)`", r"\1", result["method"])
    out = ["# The paper's VGG-16 experiment on a VGG-style network (Fashion-MNIST)", "", method, "",
           f"Generated {env['date_utc']} on {env['machine']['cpu']}, {env['machine']['torch_threads']} torch threads"
           f"{' (QUICK smoke run)' if env['config']['quick'] else ''}; {result['seconds']:.0f} s; {result['data']}; "
           f"{result['construction']} construction; {result['retrain_epochs']:g} retraining epoch(s) after each encoded layer.",
           "", f"Dense network test error {s['dense_test_error']:.2f}% ({'cached' if result['info'].get('dense_from_cache') else 'trained in ' + str(result['info']['seconds_dense']) + ' s'}); "
           f"simplified {s['test_error']:.2f}% (paper's VGG-16: 35.0% top-1 simplified, ImageNet); "
           + ", ".join(f"{l['paper_name']} {'x'.join(map(str, l['shape']))} {l['nonzero_percent']:.2f}% k={l['k']}"
                       for l in s["layers"].values()) + ".", "",
           "## Tables 1-3 rows", "",
           "Each cell: ours (paper's VGG-16). Factors against float32; the improvement is against the smaller CSR + Huffman.", "",
           "| t setting | layer | t (paper) | false positives | FP per weight | CSR | Weightless raw | CSR+Huffman | "
           "Weightless entropy | improvement raw | improvement entropy | val err encoded -> retrained % |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in result["rows"]:
        for r in e["layers"]:
            p, b, f = r["paper"], r["bytes"], r["factor"]
            out.append(
                f"| {e['t_setting']} | {r['paper_name']} | {r['t']} ({p['t']}) | {r['false_positives']} | "
                f"{r['false_positives'] / max(r['nonzero'], 1):.2f} | {fmt_factor(f['csr'])} ({fmt_factor(p['csr_factor'])}) | "
                f"{fmt_factor(f['weightless_raw'])} {fmt_kb(b['weightless_raw'])} KB ({fmt_factor(p['weightless_raw_factor'])}) | "
                f"{fmt_factor(min(f['csr_huffman'], f['csr_huffman_best']))} ({fmt_factor(p['csr_huffman_factor'])}) | "
                f"{fmt_factor(f['weightless_entropy'])} {fmt_kb(b['weightless_entropy'])} KB "
                f"({fmt_factor(p['weightless_entropy_factor'])}) | {r['improvement_raw']:.2f}x ({p['improvement_raw']:.2f}x) | "
                f"{r['improvement_entropy']:.2f}x ({p['improvement_entropy']:.2f}x) | "
                f"{r['val_error_encoded']:.2f} -> {r['val_error_retrained']:.2f} |")
    out += ["", "Test error of the network decoded from its `.wl` file, against the simplified network (paired, "
            "10,000 test images, 95% CI); before retraining: FC-0 read from its filter into the simplified network "
            "(the paper: +2.0 pp top-1 at t = 6, recovered by retraining).", "",
            "| t setting | file bytes | decoded test err % | - simplified, pp | FC-0 filter, no retraining: err % | - simplified, pp | load s |",
            "|---|---|---|---|---|---|---|"]
    for e in result["rows"]:
        out.append(f"| {e['t_setting']} | {e['file_bytes']} | {e['decoded_test_error']:.2f} | {_ci(e['decoded_minus_simplified'])} | "
                   f"{e['fc0_filter_no_retraining_test_error']:.2f} | {_ci(e['fc0_filter_no_retraining_minus_simplified'])} | "
                   f"{e['load_seconds']:.3f} |")
    out += ["", "## Verdict", ""] + verdict(result)
    front = model_markdown(result["frontier"], "vgg_frontier.png")
    out += ["", "## Frontier", "", "#" + front[0]] + front[1:]
    tm = result["times"]
    out += ["## Build and decode times", "",
            f"FC-0 and FC-1 of this network at the paper's t (decode: the entropy-coded record to dense float32 weights, "
            f"median of {env['config']['decode_repeats']}), next to the synthetic VGG-16 layers of `vgg_scale.md` "
            f"({tm['synthetic_date'] or 'not run'}); the paper decodes VGG-16 FC-0 in "
            f"{tm['paper_decode_seconds']['i7-6700K']} s on an i7-6700K.", "",
            "| layer | shape | nonzero | t | build s | decode s | bytes | VGG-16 shape (synthetic) | build s | decode s | bytes |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in tm["layers"]:
        v = r["synthetic_vgg16"] or {}
        out.append(f"| {r['layer']} | {'x'.join(map(str, r['shape']))} | {r['nonzero']} | {r['t']} | {r['build_seconds']:.2f} | "
                   f"{r['decode_seconds']['weightless_entropy']:.3f} | {r['bytes']['weightless_entropy']} | "
                   + (f"{'x'.join(map(str, v['shape']))} | {v['build_seconds']:.2f} | {v['decode_seconds']:.2f} | "
                      f"{v['weightless_entropy_bytes']} |" if v else "- | - | - | - |"))
    return "\n".join(out) + "\n"
