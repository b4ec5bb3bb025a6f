"""Figure 4: compression of LeNet5 FC-0 against sparsity, Weightless vs Deep Compression,
at iso-accuracy.

Only FC-0 (``fc1.weight``, 800x500) is pruned and clustered; the convolutional layers of the
trained dense LeNet5 are kept frozen, so their output features are computed once and the
experiment trains the two-layer head (FC-0, FC-1) on them. Per nonzero fraction: magnitude
pruning of FC-0 in one shot, retraining of the head (FC-0 masked), k-means (k = 9, density
init), retraining of FC-1 alone: this is the simplified baseline (its errors are the bound).
Then for each construction, t goes up from ceil(log2 k) + 1: the layer is decoded from the
filter, FC-1 is retrained for the same epochs, and the first t whose validation error is
within the tolerance of the baseline's is kept (iso-accuracy on validation; test errors are
reported). Deep Compression is lossless, so its error is the baseline's.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from weightless.errors import WeightlessError
from .common import (  # noqa: I001
    resolved,
    Log,
    Progress,
    ReproConfig,
    available_constructions,
    encoded_layer_sizes,
    env_info,
    fmt_factor,
)
from .simplified_cache import dense_model, load_data

__all__ = ["NAME", "run", "markdown", "lenet5_features", "lenet5_head"]

NAME = "figure4"
K = 9


def lenet5_features(net: Any, x: np.ndarray) -> np.ndarray:
    """The input of ``net.fc1`` (LeNet5's conv features, float32 (n, 800)) for images ``x``."""
    import torch
    from torch.nn import functional as F

    out = []
    with torch.no_grad():
        for s in range(0, x.shape[0], 2000):
            h = torch.from_numpy(np.ascontiguousarray(x[s : s + 2000])).reshape(-1, 1, 28, 28)
            h = F.relu(F.max_pool2d(net.conv1(h), 2))
            h = F.relu(F.max_pool2d(net.conv2(h), 2))
            out.append(h.flatten(1).numpy())
    return np.concatenate(out).astype(np.float32)


def lenet5_head(net: Any) -> Any:
    """A module holding copies of ``net.fc1`` and ``net.fc2`` (same parameter names) that maps
    :func:`lenet5_features` to LeNet5's logits."""
    import torch
    from torch import nn

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = copy.deepcopy(net.fc1)
            self.fc2 = copy.deepcopy(net.fc2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.relu(self.fc1(x)))

    return Head()


def _hidden(w: np.ndarray, b: np.ndarray, feats: np.ndarray) -> np.ndarray:
    return np.maximum(feats @ w.T + b, 0).astype(np.float32)


def run(cfg: ReproConfig, log: Log) -> dict[str, Any]:
    """Run the sparsity sweep. Returns the JSON-ready result (one point per nonzero fraction).

    Raises:
        DataError: MNIST missing.
    """
    _E = resolved(cfg)
    import torch
    from torch import nn

    from ..data.mnist import MNIST, Split
    from weightless.filters import build
    from weightless.pipeline.steps import layer_seed
    from ..apps.run import baseline_sizes
    from weightless.simplify.cluster import cluster_weight
    from weightless.simplify.magnitude import topk_mask
    from weightless.training import TrainConfig, evaluate, train

    cfg.validate()
    t_start = time.perf_counter()
    data = load_data(cfg.quick)
    net, dinfo = dense_model("lenet5", data, cfg, log)
    feats = MNIST(*(Split(lenet5_features(net, s.x), s.y) for s in (data.train, data.val, data.test)))

    head0 = lenet5_head(net)
    dense_err = evaluate(head0, feats.test)
    cons = available_constructions()
    prog = Progress("figure4", [2.0 + len(cons)] * len(cfg.figure4_fractions), log)
    seed = layer_seed(cfg.seed, "fc1.weight")
    shape = tuple(head0.fc1.weight.shape)
    dense_bytes = 4 * int(np.prod(shape))

    # Retraining FC-1 for `retrain_epochs` sees that many epochs' worth of training images: use a
    # fixed random subset of that size for one epoch (hidden features are computed for it only).
    n_re = min(len(feats.train), max(1, int(round(_E.retrain_epochs * len(feats.train)))))
    pick = np.sort(np.random.default_rng(cfg.seed).permutation(len(feats.train))[:n_re])
    re_train = Split(feats.train.x[pick], feats.train.y[pick])

    def retrain_fc2(w: np.ndarray, b: np.ndarray, fc2: nn.Linear) -> tuple[float, float]:
        """Retrain a copy of FC-1 on the hidden features of FC-0 = w; return (val, test) error."""
        hid = MNIST(*(Split(_hidden(w, b, s.x), s.y) for s in (re_train, feats.val, feats.test)))
        lin = copy.deepcopy(fc2)
        if _E.retrain_epochs > 0:
            train(lin, hid, TrainConfig(epochs=1.0, lr=_E.retrain_lr, seed=cfg.seed))
        return evaluate(lin, hid.val), evaluate(lin, hid.test)

    points = []
    for frac in cfg.figure4_fractions:
        head = copy.deepcopy(head0)
        mask = topk_mask(head.fc1.weight, frac)
        with torch.no_grad():
            head.fc1.weight.mul_(mask)
        train(head, feats, TrainConfig(epochs=cfg.figure4_epochs, lr=5e-4, seed=cfg.seed, progress=cfg.progress,
                                       desc=f"prune FC-0 to {100 * frac:g}%"), masks={"fc1.weight": mask})
        cl = cluster_weight(head.fc1.weight.detach().numpy(), K, "density", seed=cfg.seed)
        b = head.fc1.bias.detach().numpy().copy()
        base_val, base_test = retrain_fc2(cl.weights(), b, head.fc2)
        base = baseline_sizes(cl.indices, cl.codebook, conv=False)
        flat = cl.indices.ravel()
        keys = np.flatnonzero(flat >= 0).astype(np.int64)
        vals = flat[keys].astype(np.int64)
        point: dict[str, Any] = {
            "nonzero_fraction": frac, "nonzero": int(keys.size), "k": K,
            "simplified_val_error": base_val, "simplified_test_error": base_test,
            "bytes": {"dense": dense_bytes, "csr": base["csr"], "csr_huffman": base["csr_huffman"],
                      "csr_huffman_best": base["csr_huffman_best"]},
            "weightless": {},
        }
        dc = min(base["csr_huffman"], base["csr_huffman_best"])
        point["deep_compression_factor"] = dense_bytes / dc
        point["csr_factor"] = dense_bytes / base["csr"]

        def _encode(con: str) -> dict[str, Any]:
            t_lo = int(np.ceil(np.log2(K))) + 1
            trials = []
            chosen = None
            for t in range(t_lo, _E.t_max + 1):
                f = build(keys, vals, k=K, t=t, size=int(flat.size), seed=seed, construction=con)
                v, te = retrain_fc2(f.reconstruct(shape, cl.codebook), b, head.fc2)
                trials.append({"t": t, "val_error": v, "test_error": te})
                if v <= base_val + _E.tolerance or t == _E.t_max:
                    chosen = (t, f, v, te)
                    break
            t, f, v, te = chosen
            sizes = encoded_layer_sizes(f, shape, cl.codebook)
            return {
                "t": t, "m": int(f.m), "false_positives": int(f.count_false_positives()),
                "val_error": v, "test_error": te, "iso_accuracy_val": bool(v <= base_val + _E.tolerance),
                "iso_accuracy_test": bool(te <= base_test + _E.tolerance),
                "bytes": sizes, "factor_entropy": dense_bytes / sizes["weightless_entropy"],
                "factor_raw": dense_bytes / sizes["weightless_raw"],
                "improvement_vs_deep_compression": dc / sizes["weightless_entropy"], "trials": trials,
            }

        for con in cons:
            try:
                point["weightless"][con] = _encode(con)
            except WeightlessError as exc:  # e.g. a construction that is still being finished
                log(f"figure4 {100 * frac:g}% {con}: failed: {exc}")
                point["weightless"][con] = {"error": f"{type(exc).__name__}: {exc}"}
        points.append(point)
        prog.step(
            f"{100 * frac:g}% nonzero: Deep Compression {point['deep_compression_factor']:.0f}x, "
            + ", ".join(f"Weightless {c} t={w['t']} {w['factor_entropy']:.0f}x" for c, w in point["weightless"].items()
                        if "error" not in w)
        )
    return {
        "experiment": NAME,
        "description": "Figure 4: LeNet5 FC-0 compression factor vs nonzero fraction, Weightless "
        "(entropy-coded) vs Deep Compression (CSR + Huffman, the smaller of published and best index width).",
        "method": __doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
        "t_rule": f"smallest t >= ceil(log2 k)+1 whose validation error after retraining FC-1 "
        f"({_E.retrain_epochs} epochs) is <= the simplified baseline's + {_E.tolerance} percentage points "
        f"(up to t_max = {_E.t_max}, flagged if even t_max fails)",
        "dense_test_error": dense_err,
        "dense_info": dinfo,
        "points": points,
        "seconds": round(time.perf_counter() - t_start, 1),
        "env": env_info(cfg),
    }


def markdown(result: dict[str, Any]) -> str:
    """A Markdown table of the sweep."""
    env = result["env"]
    cons = list(result["points"][0]["weightless"]) if result["points"] else []
    out = [
        "# Figure 4: LeNet5 FC-0, compression vs sparsity (iso-accuracy)",
        "",
        result["method"],
        "",
        f"t rule: {result['t_rule']}. Dense model test error {result['dense_test_error']:.2f}%. "
        f"Generated {env['date_utc']}{' (QUICK smoke run)' if env['config']['quick'] else ''}.",
        "",
        "| nonzero % | baseline test err % | CSR | Deep Compression | "
        + " | ".join(f"Weightless {c}: t, factor, test err %, improvement" for c in cons) + " |",
        "|---|---|---|---|" + "---|" * len(cons),
    ]
    for p in result["points"]:
        cells = []
        for c in cons:
            w = p["weightless"][c]
            if "error" in w:
                cells.append(f"failed: {w['error']}")
                continue
            flag = "" if w["iso_accuracy_val"] else " (NOT iso-accurate)"
            cells.append(f"t={w['t']}, {fmt_factor(w['factor_entropy'])}, {w['test_error']:.2f}, "
                         f"{w['improvement_vs_deep_compression']:.2f}x{flag}")
        out.append(
            f"| {100 * p['nonzero_fraction']:.2f} | {p['simplified_test_error']:.2f} | {fmt_factor(p['csr_factor'])} | "
            f"{fmt_factor(p['deep_compression_factor'])} | " + " | ".join(cells) + " |"
        )
    out += ["", "![Figure 4](figure4.png)", ""]
    return "\n".join(out)
