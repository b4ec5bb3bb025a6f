"""Decode times of the largest layer of each model, next to the paper's (Intel i7-6700K).

Largest layers: LeNet-300-100 FC-0 (784x300) and LeNet5 FC-0 (800x500), simplified with the
magnitude recipes, and the synthetic VGG-16 FC-0 (25088x4096, see ``vgg_scale``). Each is
encoded (t from this run's Table 1 result when there, else the paper's t), and the time to
turn the entropy-coded record into the dense float32 weight matrix (parse + query every
position) is measured (median of ``decode_repeats``); the raw record and the CSR + Huffman
decode are timed the same way for comparison.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np

from weightless.errors import WeightlessError
from .. import paper as P
from .common import Log, Progress, ReproConfig, available_constructions, env_info, read_result
from .simplified_cache import load_data, prepare_simplified

__all__ = ["NAME", "run", "markdown", "time_decode"]

NAME = "decode_times"
LAYERS = (("lenet300", "fc1.weight"), ("lenet5", "fc1.weight"))


def _layers(cfg: ReproConfig) -> list[tuple[str, str, str]]:
    """(model, pruning, layer) for each model in ``cfg.recipes`` (magnitude pruning when listed)."""
    out = []
    for model, name in LAYERS:
        prunings = [p for m, p in cfg.recipes if m == model]
        if prunings:
            out.append((model, "magnitude" if "magnitude" in prunings else prunings[0], name))
    return out


def _median_seconds(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def time_decode(indices: np.ndarray, codebook: np.ndarray, k: int, t: int, seed: int, construction: str,
                repeats: int) -> dict[str, Any]:
    """Encode one layer and time its decoding to dense weights. Returns sizes and seconds.

    Raises:
        WeightlessError: a decoded layer differs from the encoded one (a bug).
    """
    from weightless.accounting import weightless_layer_bytes, weightless_layer_decode
    from weightless.baselines import dc_decode, dc_encode
    from weightless.filters import build

    shape = tuple(indices.shape)
    flat = indices.ravel()
    keys = np.flatnonzero(flat >= 0).astype(np.int64)
    t0 = time.perf_counter()
    f = build(keys, flat[keys].astype(np.int64), k=k, t=t, size=int(flat.size), seed=seed, construction=construction)
    build_s = time.perf_counter() - t0
    out: dict[str, Any] = {"shape": list(shape), "nonzero": int(keys.size), "k": k, "t": t,
                           "construction": construction, "build_seconds": build_s, "bytes": {}, "decode_seconds": {}}
    ref = f.reconstruct(shape, codebook)
    for key, ent in (("weightless_entropy", True), ("weightless_raw", False)):
        data = weightless_layer_bytes(f, shape, codebook, entropy=ent)

        def dec(data: bytes = data, ent: bool = ent) -> np.ndarray:
            g, s, cb = weightless_layer_decode(data, entropy=ent)
            return g.reconstruct(s, cb)

        secs, w = _median_seconds(dec, repeats)
        if not np.array_equal(w, ref):
            raise WeightlessError(f"internal error: {key} decoded to different weights")
        out["bytes"][key] = len(data)
        out["decode_seconds"][key] = secs
    t0 = time.perf_counter()
    f.reconstruct(shape, codebook)
    out["decode_seconds"]["weightless_query_only"] = time.perf_counter() - t0
    data = dc_encode(indices, shape, codebook, index_bits="auto")

    def dc() -> np.ndarray:
        idx, _, cb = dc_decode(data)
        idx = np.asarray(idx).reshape(shape)
        w = np.zeros(shape, dtype=np.float32)
        nz = idx >= 0
        w[nz] = cb[idx[nz]]
        return w

    secs, w = _median_seconds(dc, repeats)
    expect = np.zeros(shape, dtype=np.float32)
    expect[indices >= 0] = codebook[indices[indices >= 0]]
    if not np.array_equal(w, expect):
        raise WeightlessError("internal error: CSR + Huffman decoded to different weights")
    out["bytes"]["csr_huffman_best"] = len(data)
    out["decode_seconds"]["csr_huffman_best"] = secs
    return out


def run(cfg: ReproConfig, log: Log, out_dir: str | None = None) -> dict[str, Any]:
    """Time the decoding of the largest layers. ``out_dir``: where a ``table123.json`` of the same
    run may give the chosen t. Returns the JSON-ready result.

    Raises:
        DataError: MNIST missing.
    """
    from weightless.pipeline.steps import layer_seed
    from ..apps.run import PAPER_T
    from .vgg_scale import layer_shape, synthetic_layer

    cfg.validate()
    t_start = time.perf_counter()
    cons = available_constructions()
    layers = _layers(cfg)
    prog = Progress("decode_times", [1.0] * (len(layers) * len(cons)) + [8.0] * len(cons), log)
    table = read_result(out_dir, "table123") if out_dir is not None else None
    data = load_data(cfg.quick)
    rows = []
    for model, pruning, name in layers:
        simp, _ = prepare_simplified(model, pruning, cfg, data, log)
        lr = simp.layers[name]
        for con in cons:
            t, t_src = PAPER_T[(model, pruning)][name], "paper Table 1"
            for e in (table or {}).get("recipes", []):
                if e["model"] == model and e["pruning"] == pruning:
                    for r in e["constructions"].get(con, {}).get("layers", []):
                        if r["name"] == name:
                            t, t_src = r["t"], "this run's Table 1"
            try:
                res = time_decode(lr.indices, lr.codebook, lr.k, t, layer_seed(cfg.seed, name), con, cfg.decode_repeats)
            except WeightlessError as exc:
                rows.append({"model": model, "layer": lr.paper_name, "construction": con, "error": f"{type(exc).__name__}: {exc}"})
                prog.step(f"{model} {lr.paper_name} {con} FAILED: {exc}")
                continue
            res.update(model=model, pruning=pruning, layer=lr.paper_name, t_source=t_src,
                       paper_seconds=P.DECODE_SECONDS[model])
            rows.append(res)
            prog.step(f"{model} {lr.paper_name} {con}: decode {res['decode_seconds']['weightless_entropy']:.3f} s "
                      f"(paper {P.DECODE_SECONDS[model]['i7-6700K']} s)")
    shape = layer_shape("FC-0", cfg.vgg_row_scale)
    _, frac, k, t = P.VGG_LAYERS["FC-0"]
    idx, cb = synthetic_layer(shape, frac, k, cfg.seed)
    for con in cons:
        try:
            res = time_decode(idx, cb, k, t, layer_seed(cfg.seed, "vgg16.FC-0"), con, cfg.decode_repeats)
        except WeightlessError as exc:
            rows.append({"model": "vgg16", "layer": "FC-0", "construction": con, "error": f"{type(exc).__name__}: {exc}"})
            prog.step(f"vgg16 FC-0 {con} FAILED: {exc}")
            continue
        res.update(model="vgg16", pruning="magnitude (synthetic weights)", layer="FC-0", t_source="paper Table 1",
                   paper_seconds=P.DECODE_SECONDS["vgg16"])
        rows.append(res)
        prog.step(f"vgg16 FC-0 {con}: decode {res['decode_seconds']['weightless_entropy']:.2f} s "
                  f"(paper {P.DECODE_SECONDS['vgg16']['i7-6700K']} s)")
    return {
        "experiment": NAME,
        "description": "Seconds to decode the largest layer of each model into dense float32 weights.",
        "method": __doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
        "paper_machine": P.DECODE_MACHINE,
        "row_scale": cfg.vgg_row_scale,
        "layers": rows,
        "seconds": round(time.perf_counter() - t_start, 1),
        "env": env_info(cfg),
    }


def markdown(result: dict[str, Any]) -> str:
    """A Markdown table of decode times next to the paper's."""
    env = result["env"]
    out = [
        "# Decode times of the largest layers",
        "",
        result["method"],
        "",
        f"Ours: {env['machine']['cpu']} ({env['machine']['logical_cpus']} logical CPUs, shared with other jobs, "
        f"load average {', '.join(f'{x:.1f}' for x in env['machine']['load_average'] or [])}); paper: "
        f"{result['paper_machine']}. Generated {env['date_utc']}"
        f"{' (QUICK smoke run: VGG rows scaled by ' + str(result['row_scale']) + ')' if env['config']['quick'] else ''}.",
        "",
        "| model | layer | shape | t | construction | build s | decode s: entropy-coded (paper i7 / A53) | raw record | query only | CSR+Huffman |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["layers"]:
        if "error" in r:
            out.append(f"| {r['model']} | {r['layer']} | | | {r['construction']} | failed: {r['error']} | | | | |")
            continue
        d, p = r["decode_seconds"], r["paper_seconds"]
        out.append(
            f"| {r['model']} | {r['layer']} | {r['shape'][0]}x{r['shape'][1]} | {r['t']} | {r['construction']} | "
            f"{r['build_seconds']:.3f} | {d['weightless_entropy']:.3f} ({p['i7-6700K']} / {p['ARM A53']}) | "
            f"{d['weightless_raw']:.3f} | {d['weightless_query_only']:.3f} | {d['csr_huffman_best']:.3f} |"
        )
    out.append("")
    return "\n".join(out)
