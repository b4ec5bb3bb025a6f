"""VGG-16 scale: layers of the shape, sparsity, k and t of VGG-16 FC-0 and FC-1 (Table 1).

ImageNet and the VGG-16 weights cannot be had offline, so the layers are synthetic and **no
accuracy is measured**: the experiment shows sizes of every encoding and the build and decode
times at the real scale. Weight model: a magnitude-pruned Gaussian layer -- the nonzero
positions are uniform at random, and their values are the tails of N(0, 2/fan_in) beyond the
magnitude threshold that keeps the given fraction (drawn by inverse CDF), clustered with
k-means (density init) to k shared values.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from weightless.errors import WeightlessError
from .. import paper as P
from .common import Log, Progress, ReproConfig, available_constructions, env_info, fmt_factor, fmt_kb

__all__ = ["NAME", "synthetic_layer", "layer_shape", "run", "markdown"]

NAME = "vgg_scale"
ACCURACY_NOTE = ("accuracy is NOT measured here: ImageNet and the trained VGG-16 weights are not available "
                 "offline, so these layers are synthetic (magnitude-pruned Gaussian weights) and only sizes "
                 "and times are reported")


def layer_shape(layer: str, row_scale: float) -> tuple[int, int]:
    """The (possibly row-scaled) shape of VGG-16 ``layer`` ("FC-0" or "FC-1")."""
    rows, cols = P.VGG_LAYERS[layer][0]
    return (max(1, int(round(rows * row_scale))), cols)


@functools.lru_cache(maxsize=2)
def synthetic_layer(shape: tuple[int, int], fraction: float, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(indices, codebook)`` of a synthetic pruned + clustered layer (see the module
    docstring): int16 indices of ``shape`` (-1 = zero) and the k float32 centroids.
    Deterministic in its arguments."""
    from scipy.special import ndtri

    from weightless.simplify.cluster import kmeans_1d

    rng = np.random.default_rng([seed, shape[0], shape[1], k])
    n_pos = shape[0] * shape[1]
    n = max(k, int(round(fraction * n_pos)))
    pos = np.sort(rng.choice(n_pos, size=n, replace=False))
    sigma = np.sqrt(2.0 / shape[0])
    u = rng.random(n)
    mag = -ndtri(0.5 * fraction * (1.0 - u))  # |z| beyond the threshold keeping `fraction`
    w = sigma * mag * np.where(rng.random(n) < 0.5, -1.0, 1.0)
    codebook, assign = kmeans_1d(w, k, "density", seed)
    idx = np.full(n_pos, -1, dtype=np.int16)
    idx[pos] = assign.astype(np.int16)
    return idx.reshape(shape), codebook


def run(cfg: ReproConfig, log: Log) -> dict[str, Any]:
    """Size and time both VGG-16 layers with every construction. Returns the JSON-ready result."""
    from weightless.accounting import layer_sizes
    from weightless.pipeline.steps import layer_seed

    cfg.validate()
    t_start = time.perf_counter()
    cons = available_constructions()
    prog = Progress("vgg_scale", [6.0] * len(cons) + [1.0] * len(cons), log)
    layers = []
    for layer, (full_shape, frac, k, t) in P.VGG_LAYERS.items():
        shape = layer_shape(layer, cfg.vgg_row_scale)
        t0 = time.perf_counter()
        idx, codebook = synthetic_layer(shape, frac, k, cfg.seed)
        gen = time.perf_counter() - t0
        per: dict[str, Any] = {}
        for con in cons:
            try:
                s = layer_sizes(idx, codebook, k=k, t=t, conv=False, seed=layer_seed(cfg.seed, f"vgg16.{layer}"),
                                construction=con)
            except WeightlessError as exc:  # e.g. a construction that is still being finished
                per[con] = {"error": f"{type(exc).__name__}: {exc}"}
                prog.step(f"VGG-16 {layer} {con} FAILED: {exc}")
                continue
            s.pop("cells", None)
            per[con] = s
            prog.step(f"VGG-16 {layer} {shape[0]}x{shape[1]} {con}: "
                      f"Weightless {s['factor']['weightless_entropy']:.0f}x, CSR+Huffman {s['factor']['csr_huffman']:.0f}x, "
                      f"build {s['seconds']['filter_build']['encode']:.1f} s")
        t2 = P.TABLE2[("vgg16", "magnitude")][layer]
        t3 = P.TABLE3[("vgg16", "magnitude")][layer]
        layers.append({
            "layer": layer, "shape": list(shape), "paper_shape": list(full_shape), "nonzero_fraction": frac,
            "nonzero": int((idx >= 0).sum()), "k": k, "t": t, "codebook": [float(c) for c in codebook],
            "seconds_generate": round(gen, 2), "constructions": per,
            "paper": {"csr_factor": t2[0], "csr_kb": t2[1], "weightless_raw_factor": t2[2], "weightless_raw_kb": t2[3],
                      "csr_huffman_factor": t3[0], "csr_huffman_kb": t3[1], "weightless_entropy_factor": t3[2],
                      "weightless_entropy_kb": t3[3], "improvement_raw": t2[4], "improvement_entropy": t3[4]},
        })
    return {
        "experiment": NAME,
        "description": "VGG-16 FC-0 / FC-1 scale layers: sizes of every encoding, build and decode times.",
        "accuracy_note": ACCURACY_NOTE,
        "weight_model": __doc__.split("\n\n")[1].replace("\n", " ").strip(),
        "row_scale": cfg.vgg_row_scale,
        "layers": layers,
        "seconds": round(time.perf_counter() - t_start, 1),
        "env": env_info(cfg),
    }


def markdown(result: dict[str, Any]) -> str:
    """A Markdown table of sizes and times (each cell: ours (paper))."""
    env = result["env"]
    out = [
        "# VGG-16 scale layers (synthetic)",
        "",
        f"**Note: {result['accuracy_note']}.**",
        "",
        result["weight_model"],
        "",
        f"Row scale {result['row_scale']} (1 = the real VGG-16 shapes). Generated {env['date_utc']} on "
        f"{env['machine']['cpu']}{' (QUICK smoke run)' if env['config']['quick'] else ''}. Each cell: ours (paper).",
        "",
        "| layer | shape | nonzero % | k | t | construction | CSR | Weightless raw | CSR+Huffman | CSR+Huffman best | "
        "Weightless entropy | improvement raw | improvement entropy | build s | decode s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for l in result["layers"]:
        p = l["paper"]
        for con, s in l["constructions"].items():
            if "error" in s:
                out.append(f"| {l['layer']} | {l['shape'][0]}x{l['shape'][1]} | | | | {con} | failed: {s['error']} |"
                           + " |" * 8)
                continue
            b, f, sec = s["bytes"], s["factor"], s["seconds"]
            dc = min(b["csr_huffman"], b["csr_huffman_auto"])
            dec = sec["weightless_entropy"]["decode"] + sec["weightless_reconstruct"]["decode"]
            out.append(
                f"| {l['layer']} | {l['shape'][0]}x{l['shape'][1]} | {100 * l['nonzero_fraction']:.2f} | {l['k']} | {l['t']} | {con} | "
                f"{fmt_factor(f['csr'])} {fmt_kb(b['csr'])} KB ({fmt_factor(p['csr_factor'])} {p['csr_kb']}) | "
                f"{fmt_factor(f['weightless_raw'])} {fmt_kb(b['weightless_raw'])} KB "
                f"({fmt_factor(p['weightless_raw_factor'])} {p['weightless_raw_kb']}) | "
                f"{fmt_factor(f['csr_huffman'])} {fmt_kb(b['csr_huffman'])} KB "
                f"({fmt_factor(p['csr_huffman_factor'])} {p['csr_huffman_kb']}) | "
                f"{fmt_factor(f['csr_huffman_auto'])} | "
                f"{fmt_factor(f['weightless_entropy'])} {fmt_kb(b['weightless_entropy'])} KB "
                f"({fmt_factor(p['weightless_entropy_factor'])} {p['weightless_entropy_kb']}) | "
                f"{b['csr'] / b['weightless_raw']:.2f}x ({p['improvement_raw']:.2f}x) | "
                f"{dc / b['weightless_entropy']:.2f}x ({p['improvement_entropy']:.2f}x) | "
                f"{sec['filter_build']['encode']:.2f} | {dec:.2f} |"
            )
    out += ["", "Decode s = parsing the entropy-coded record + querying every position.", ""]
    return "\n".join(out)
