"""Tables 1-3 of the paper: the four MNIST settings (LeNet-300-100 and LeNet5, magnitude
pruning and DNS), simplified with the Table 1 recipes and encoded layer by layer with
retraining (t chosen automatically on the validation split), once per filter construction.

Per layer: nonzero %, k, t, m/n, false positives (Table 1); plain CSR vs the Weightless raw
record (Table 2); CSR + Huffman with the published index widths and with the best width vs
the entropy-coded Weightless record (Table 3). Errors: the simplified model's and the test
error of the model decoded from a ``.wl`` file written with the encoded layers.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from typing import Any

import numpy as np

from weightless.errors import WeightlessError
from .. import paper as P
from .common import (
    resolved,
    Log,
    Progress,
    ReproConfig,
    available_constructions,
    construction_check_layers,
    encoded_layer_sizes,
    env_info,
    fmt_factor,
    fmt_kb,
    val_subset,
)
from .simplified_cache import load_data, prepare_simplified

__all__ = ["NAME", "run", "markdown", "layer_row"]

NAME = "table123"


def layer_row(rep: Any, res: Any) -> dict[str, Any]:
    """The size row of one encoded layer (``rep``: LayerReport, ``res``: CompressResult).
    Every size is the length of bytes decoded back and checked."""
    from ..apps.run import baseline_sizes

    enc = res.tensors[rep.name]
    shape = tuple(enc.shape)
    n_pos = int(np.prod(shape))
    conv = len(shape) > 2
    base = baseline_sizes(res.indices[rep.name], enc.codebook, conv=conv)
    wl = encoded_layer_sizes(enc.filter, shape, enc.codebook)
    sizes = {"dense": 4 * n_pos, "csr": base["csr"], "csr_huffman": base["csr_huffman"],
             "csr_huffman_best": base["csr_huffman_best"], **wl}
    dc = min(sizes["csr_huffman"], sizes["csr_huffman_best"])
    return {
        "name": rep.name,
        "paper_name": rep.paper_name,
        "shape": list(shape),
        "nonzero": rep.nonzero,
        "nonzero_percent": 100.0 * rep.nonzero / n_pos,
        "k": rep.k,
        "t": rep.t,
        "auto_t": rep.auto_t,
        "construction": getattr(rep, "construction", None),
        "seed": getattr(rep, "seed", None),
        "m": rep.m,
        "m_over_n": rep.m / max(rep.nonzero, 1),
        "false_positives": rep.false_positives,
        "build_seconds": rep.build_seconds,
        "val_error_encoded": rep.val_error_encoded,
        "val_error_retrained": rep.val_error_retrained,
        "t_trials": rep.trials,
        "bytes": sizes,
        "factor": {k: sizes["dense"] / v for k, v in sizes.items()},
        "improvement_raw": sizes["csr"] / sizes["weightless_raw"],
        "improvement_entropy": dc / sizes["weightless_entropy"],
        "improvement_entropy_vs_published": sizes["csr_huffman"] / sizes["weightless_entropy"],
    }


def _decoded_error(res: Any, model: str, data: Any) -> tuple[float, int, dict[str, Any]]:
    """Write the encoded model to a temporary ``.wl`` file, load it; return (test error, file
    bytes, whole-model figures with the Deep Compression baseline)."""
    from weightless.io import files as api
    from ..apps.whole import whole_model_report
    from ..models import get_model
    from weightless.training import per_example

    fd, path = tempfile.mkstemp(suffix=".wl")
    os.close(fd)
    try:
        nbytes = api.save(path, res.tensors, entropy=True)
        net = get_model(model)
        net.load_state_dict(api.load(path))
        errs = per_example(net, data, "test")[0]
        whole = whole_model_report(res, path, data, errs)
    finally:
        os.unlink(path)
    return 100.0 * float(errs.mean()), nbytes, whole


def _paper(model: str, pruning: str, layer: str) -> dict[str, Any]:
    t1 = P.TABLE1[(model, pruning)]
    l1 = t1["layers"].get(layer, {})
    t2 = P.TABLE2[(model, pruning)].get(layer)
    t3 = P.TABLE3[(model, pruning)].get(layer)
    return {
        "error": t1["error"], "nonzero_percent": l1.get("nonzero_percent"), "k": l1.get("k"), "t": l1.get("t"),
        "csr_factor": t2[0], "csr_kb": t2[1], "weightless_raw_factor": t2[2], "weightless_raw_kb": t2[3],
        "improvement_raw": t2[4],
        "csr_huffman_factor": t3[0], "csr_huffman_kb": t3[1], "weightless_entropy_factor": t3[2],
        "weightless_entropy_kb": t3[3], "improvement_entropy": t3[4],
    }


def run(cfg: ReproConfig, log: Log) -> dict[str, Any]:
    """Run Tables 1-3. Returns the JSON-ready result (see the module docstring).

    Raises:
        DataError: MNIST missing.
    """
    _E, enc = resolved(cfg), cfg.encode_config()
    from weightless.pipeline.encode import encode_with_retraining

    cfg.validate()
    t_start = time.perf_counter()
    data = load_data(cfg.quick)
    cons = available_constructions()
    w = {"lenet300": 1.0, "lenet5": 2.5}
    stages = []
    for m, _ in cfg.recipes:
        stages += [3 * w[m]] + [w[m]] * len(cons)
    prog = Progress("table123", stages, log)
    entries = []
    for model, pruning in cfg.recipes:
        simp, info = prepare_simplified(model, pruning, cfg, data, log)
        prog.step(f"{model}/{pruning} simplified")
        data_t, simp_t = val_subset(data, simp, cfg.val_images)
        entry: dict[str, Any] = {
            "model": model,
            "pruning": pruning,
            "dense_test_error": simp.dense_test_error,
            "simplified_test_error": simp.test_error,
            "simplified_val_error": simp.val_error,
            "simplified_val_error_t_choice": simp_t.val_error,
            "val_images_t_choice": len(data_t.val),
            "paper_error": P.TABLE1[(model, pruning)]["error"],
            "simplify_info": info,
            "simplified_layers": {
                n: {"paper_name": l.paper_name, "shape": list(l.indices.shape),
                    "nonzero_percent": 100.0 * l.nonzero_fraction, "k": l.k}
                for n, l in simp.layers.items()
            },
            "constructions": {},
        }
        for con in cons:
            problem = construction_check_layers(con, simp.layers.values(), range(1, _E.t_max + 1), cfg.seed)
            if problem is not None:
                log(f"{model}/{pruning} {con}: skipped, the construction fails: {problem}")
                entry["constructions"][con] = {"error": problem}
                prog.step(f"{model}/{pruning} {con} SKIPPED")
                continue
            ecfg = replace(enc, filters=replace(enc.filters, construction=con))
            t0 = time.perf_counter()
            try:
                res = encode_with_retraining(simp_t, data_t, ecfg, progress=cfg.progress, log=log,
                                             confirm_fraction=0.0)  # the paper's filters, measured
                decoded_err, file_bytes, whole = _decoded_error(res, model, data)
                rows = [layer_row(rep, res) for rep in res.layers]
            except WeightlessError as exc:  # e.g. a construction that is still being finished
                log(f"{model}/{pruning} {con}: failed: {exc}")
                entry["constructions"][con] = {"error": f"{type(exc).__name__}: {exc}"}
                prog.step(f"{model}/{pruning} {con} FAILED")
                continue
            for r in rows:
                r["paper"] = _paper(model, pruning, r["paper_name"])
            entry["constructions"][con] = {
                "layers": rows,
                "encoded_val_error": res.val_error,
                "encoded_test_error": res.test_error,
                "decoded_test_error": decoded_err,
                "iso_accuracy": bool(decoded_err <= simp.test_error),
                "file_bytes": file_bytes,
                "whole_model": whole,
                "whole_model_decisions": res.tail,
                "seconds": round(time.perf_counter() - t0, 2),
            }
            prog.step(
                f"{model}/{pruning} {con}: "
                + ", ".join(f"{r['paper_name']} t={r['t']} {r['factor']['weightless_entropy']:.0f}x" for r in rows)
                + f", decoded error {decoded_err:.2f}% (simplified {simp.test_error:.2f}%)"
            )
        entries.append(entry)
    return {
        "experiment": NAME,
        "description": "Tables 1-3: per-layer sizes of plain CSR, CSR + Huffman and Weightless "
        "(raw and entropy-coded) for the four MNIST settings, at the t chosen on the validation split.",
        "t_rule": f"smallest t in [ceil(log2 k)+1, {_E.t_max}] (binary search) whose paired error difference "
        f"against the simplified model on the first {cfg.val_images or 'all'} validation images, after retraining "
        f"the later layers ({_E.retrain_epochs} epochs, Adam lr {_E.retrain_lr}; best of {_E.seed_trials} filter "
        f"seeds by loss on 5,000 training images), plus {_E.confidence_z} standard errors, is within "
        f"{_E.tolerance} percentage points (per-example errors; the loss only ranks filter seeds)",
        "size_notes": "sizes are len() of bytes decoded back and checked; every record holds the layer shape "
        "and the float32 codebook; Weightless raw = filter.to_bytes() (+ shape and codebook); CSR uses 5-bit "
        "(FC) / 8-bit (conv) relative indices; csr_huffman_best picks the best index width per layer; "
        "improvement_entropy is against the smaller of the two Huffman variants",
        "recipes": entries,
        "seconds": round(time.perf_counter() - t_start, 1),
        "env": env_info(cfg),
    }


def _pv(ours: str, paper: Any) -> str:
    return f"{ours} ({paper})" if paper is not None else ours


def markdown(result: dict[str, Any]) -> str:
    """Markdown tables 1-3 (each cell: ours (paper))."""
    env = result["env"]
    out = [
        "# Tables 1-3: MNIST models",
        "",
        f"Generated {env['date_utc']} on {env['machine']['cpu']} ({env['machine']['logical_cpus']} logical CPUs), "
        f"weightless {env['versions']['weightless']}, commit {str(env['git']['commit'])[:10]}"
        f"{' (dirty)' if env['git']['dirty'] else ''}, torch {env['versions']['torch']}, seed {env['seed']}"
        f"{', QUICK smoke run (subset of MNIST, few epochs)' if env['config']['quick'] else ''}. "
        f"Each cell: ours (paper). Run time {result['seconds']:.0f} s.",
        "",
        f"t rule: {result['t_rule']}.",
        "",
        "## Table 1: baseline",
        "",
        "| model | pruning | dense err % | simplified err % (paper) | layer | nonzero % (paper) | k (paper) | construction | t (paper) | m/n | false positives |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["recipes"]:
        first = True
        for con, c in e["constructions"].items():
            if "error" in c:
                out.append(f"| {e['model']} | {e['pruning']} | | | | | | {con} | failed: {c['error']} | | |")
                continue
            for r in c["layers"]:
                p = r["paper"]
                serr = _pv(format(e["simplified_test_error"], ".2f"), p["error"]) if first else ""
                nzp = _pv(format(r["nonzero_percent"], ".2f"), p["nonzero_percent"])
                out.append(
                    f"| {e['model'] if first else ''} | {e['pruning'] if first else ''} | "
                    f"{e['dense_test_error']:.2f} | {serr} | "
                    f"{r['paper_name']} | {nzp} | "
                    f"{_pv(str(r['k']), p['k'])} | {con} | {_pv(str(r['t']), p['t'])} | {r['m_over_n']:.3f} | "
                    f"{r['false_positives']} |"
                )
                first = False
    out += [
        "",
        "## Table 2: before entropy coding (plain CSR vs Weightless raw filter)",
        "",
        "Compression factor vs dense float32, size in KB (KiB). Each cell: ours (paper).",
        "",
        "| model | pruning | layer | construction | CSR | Weightless raw | improvement | >= paper? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in result["recipes"]:
        for con, c in e["constructions"].items():
            for r in c.get("layers", []):
                p, b, f = r["paper"], r["bytes"], r["factor"]
                ok = f["weightless_raw"] >= p["weightless_raw_factor"] and r["improvement_raw"] >= p["improvement_raw"]
                out.append(
                    f"| {e['model']} | {e['pruning']} | {r['paper_name']} | {con} | "
                    f"{fmt_factor(f['csr'])} {fmt_kb(b['csr'])} KB ({fmt_factor(p['csr_factor'])} {p['csr_kb']}) | "
                    f"{fmt_factor(f['weightless_raw'])} {fmt_kb(b['weightless_raw'])} KB "
                    f"({fmt_factor(p['weightless_raw_factor'])} {p['weightless_raw_kb']}) | "
                    f"{r['improvement_raw']:.2f}x ({p['improvement_raw']:.2f}x) | {'yes' if ok else 'NO'} |"
                )
    out += [
        "",
        "## Table 3: after entropy coding (CSR + Huffman vs Weightless + ANS)",
        "",
        "CSR + Huffman with the published index widths (5 bits FC, 8 bits conv) and with the best "
        "width per layer; the improvement is against the smaller of the two. Each cell: ours (paper).",
        "",
        "| model | pruning | layer | construction | CSR+Huffman | CSR+Huffman best width | Weightless entropy-coded | improvement | vs published width | >= paper? |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["recipes"]:
        for con, c in e["constructions"].items():
            for r in c.get("layers", []):
                p, b, f = r["paper"], r["bytes"], r["factor"]
                ok = f["weightless_entropy"] >= p["weightless_entropy_factor"] and r["improvement_entropy"] >= p["improvement_entropy"]
                out.append(
                    f"| {e['model']} | {e['pruning']} | {r['paper_name']} | {con} | "
                    f"{fmt_factor(f['csr_huffman'])} {fmt_kb(b['csr_huffman'])} KB "
                    f"({fmt_factor(p['csr_huffman_factor'])} {p['csr_huffman_kb']}) | "
                    f"{fmt_factor(f['csr_huffman_best'])} {fmt_kb(b['csr_huffman_best'])} KB | "
                    f"{fmt_factor(f['weightless_entropy'])} {fmt_kb(b['weightless_entropy'])} KB "
                    f"({fmt_factor(p['weightless_entropy_factor'])} {p['weightless_entropy_kb']}) | "
                    f"{r['improvement_entropy']:.2f}x ({p['improvement_entropy']:.2f}x) | "
                    f"{r['improvement_entropy_vs_published']:.2f}x | {'yes' if ok else 'NO'} |"
                )
    out += [
        "",
        "## Test error (iso-accuracy check)",
        "",
        "The decoded model is loaded from a `.wl` file holding the encoded layers; iso-accuracy "
        "means its test error is <= the simplified model's.",
        "",
        "| model | pruning | construction | simplified err % | decoded err % | iso-accuracy | paper err % | file bytes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in result["recipes"]:
        for con, c in e["constructions"].items():
            if "error" in c:
                continue
            out.append(
                f"| {e['model']} | {e['pruning']} | {con} | {e['simplified_test_error']:.2f} | "
                f"{c['decoded_test_error']:.2f} | {'yes' if c['iso_accuracy'] else 'NO'} | {e['paper_error']:.2f} | "
                f"{c['file_bytes']} |"
            )
    out += whole_model_markdown(result)
    out += ["", f"Notes: {result['size_notes']}.", ""]
    return "\n".join(out)


def whole_model_markdown(result: dict[str, Any]) -> list[str]:
    """The whole-model table: every tensor of the file, against Deep Compression on the same
    simplification and the published whole-model figures."""
    out = [
        "",
        "## Whole-model files",
        "",
        "The whole `.wl` file (every tensor: filter layers, the layers and biases the whole-model stage "
        "simplified and stored losslessly, the rest dense; container included) against Deep Compression "
        "on the same simplification (each clustered tensor CSR + Huffman or dense, whichever is smaller; "
        "the sum of payloads, no container). Test errors of the model decoded from the file and of the "
        "Deep Compression model (the filter layers without false positives); the difference is paired "
        "on the 10,000 test images (95% CI). Published whole-model factors: "
        + "; ".join(f"{m}: " + ", ".join(f"{k} {v}" for k, v in d.items()) for m, d in P.WHOLE_MODEL_PUBLISHED.items())
        + ".",
        "",
        "| model | pruning | construction | Weightless bytes | factor | overhead | test err % | DC bytes | DC factor | DC test err % | WL - DC err (95% CI) | smaller at <= error? |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in result["recipes"]:
        for con, c in e["constructions"].items():
            w = c.get("whole_model")
            if not w:
                continue
            ci = w["weightless_minus_dc_test"]
            ok = w["file_bytes"] < w["dc_bytes"] and ci["difference"] <= 0
            out.append(
                f"| {e['model']} | {e['pruning']} | {con} | {w['file_bytes']} | {w['factor']:.0f}x | "
                f"{w['overhead_bytes']} B ({w['overhead_percent']}%) | {w['test_error']:.2f} | {w['dc_bytes']} | "
                f"{w['dc_factor']:.0f}x | {w['dc_test_error']:.2f} | {ci['difference']:+.2f} "
                f"[{ci['ci95_low']:+.2f}, {ci['ci95_high']:+.2f}] | {'yes' if ok else 'NO'} |"
            )
    return out
