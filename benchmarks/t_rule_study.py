"""Study of the t decision rule (issue 10) on the trials of a frontier run (issue 15).

Reads ``results/frontier.json`` (written by ``weightless reproduce --full --only frontier``):
every filter point there was retrained by the real pipeline and carries the validation
decision statistics (paired error difference and its standard error, paired loss difference,
its standard error and the reference's mean loss) and the test error of the decoded file.

For each trial it recomputes, from those statistics alone, what the "error" rule and the
"loss" rule (see ``weightless.pipeline.steps.paired_difference``) decide at the tolerance and
confidence given here, and reports per sparsity the smallest swept t each rule accepts with
that point's test error against the lossless point of the same sparsity (paired 95% CI). On
validation alone it also reports how the loss difference, converted to percentage points by
the reference's error-to-loss ratio, tracks the error difference (Pearson r, least-squares
slope) and how much smaller its standard error is.

    python benchmarks/t_rule_study.py [--frontier results/frontier.json] [--out results]

Writes ``<out>/t_rule_study.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _conv(dec: dict[str, Any]) -> tuple[float, float]:
    """The loss difference and its standard error in percentage points: the scale the decision
    recorded (older records: the reference's error-to-loss ratio)."""
    scale = dec.get("loss_scale") or dec["reference_error"] / max(dec["reference_loss"], 1e-12)
    return dec["loss_difference"] * scale, dec["loss_standard_error"] * scale


def study(frontier: dict[str, Any], tolerance: float, z: float) -> dict[str, Any]:
    """Return the per-trial table, the per-sparsity choices of each rule and the calibration."""
    trials, choices = [], []
    for m in frontier["models"]:
        for p in m["points"]:
            row = {"model": m["model"], "nonzero_fraction": p["nonzero_fraction"], "chosen": {}}
            for q in p["t"][1:]:
                d = q["decision"]
                ld, lse = _conv(d)
                tr = {"model": m["model"], "nonzero_fraction": p["nonzero_fraction"], "t": q["t"],
                      "layer_bytes": q["layer_bytes"], "lossless_bytes": p["t"][0]["layer_bytes"],
                      "val_error_diff": d["difference"], "val_error_se": d["standard_error"],
                      "val_loss_diff_pp": round(ld, 4), "val_loss_se_pp": round(lse, 4),
                      "error_rule": d["difference"] + z * d["standard_error"] <= tolerance + 1e-12,
                      "loss_rule": ld + z * lse <= tolerance + 1e-12,
                      "test_minus_lossless": q["test_minus_lossless"]}
                trials.append(tr)
            for rule in ("error_rule", "loss_rule"):
                ok = [tr for tr in trials if tr["model"] == m["model"] and tr["nonzero_fraction"] == p["nonzero_fraction"]
                      and tr[rule]]
                best = min(ok, key=lambda tr: tr["t"]) if ok else None
                row["chosen"][rule] = None if best is None else {
                    "t": best["t"], "layer_bytes": best["layer_bytes"], "lossless_bytes": best["lossless_bytes"],
                    "test_minus_lossless": best["test_minus_lossless"]}
            choices.append(row)
    e = np.array([tr["val_error_diff"] for tr in trials])
    lpp = np.array([tr["val_loss_diff_pp"] for tr in trials])
    ese = np.array([tr["val_error_se"] for tr in trials])
    lse = np.array([tr["val_loss_se_pp"] for tr in trials])
    slope = float(np.dot(lpp, e) / max(np.dot(lpp, lpp), 1e-12))
    calib = {"trials": len(trials), "pearson_r": float(np.corrcoef(e, lpp)[0, 1]) if len(trials) > 2 else None,
             "slope_error_on_loss_pp": slope, "median_se_ratio_loss_to_error": float(np.median(lse / np.maximum(ese, 1e-12)))}
    return {"tolerance": tolerance, "z": z, "calibration": calib, "choices": choices, "trials": trials}


def markdown(r: dict[str, Any], source: str) -> str:
    """Markdown tables of the study."""
    c = r["calibration"]
    out = ["# The t rule: per-image errors or the paired loss (issue 10)", "", f"From `{source}` (the frontier's "
           f"trials), tolerance {r['tolerance']} pp, z = {r['z']}. Every decision uses validation data only; the "
           "test column is the decoded file's test error minus the lossless point's of the same sparsity "
           "(paired, 95% CI).", "",
           f"Validation only: over {c['trials']} trials, the loss difference converted to pp tracks the error "
           f"difference with Pearson r = {c['pearson_r']:.3f} and slope {c['slope_error_on_loss_pp']:.2f} (error pp "
           f"per converted loss pp); its standard error is {c['median_se_ratio_loss_to_error']:.2f}x the error "
           "difference's (median).", "",
           "| model | nonzero % | error rule: t, bytes (lossless), test - lossless | loss rule: t, bytes (lossless), test - lossless |",
           "|---|---|---|---|"]
    for row in r["choices"]:
        cells = []
        for rule in ("error_rule", "loss_rule"):
            ch = row["chosen"][rule]
            if ch is None:
                cells.append("none of the swept t")
                continue
            ci = ch["test_minus_lossless"]
            cells.append(f"t={ch['t']}, {ch['layer_bytes']} ({ch['lossless_bytes']}), {ci['difference']:+.2f} "
                         f"[{ci['ci95_low']:+.2f}, {ci['ci95_high']:+.2f}]")
        out.append(f"| {row['model']} | {100 * row['nonzero_fraction']:.2f} | " + " | ".join(cells) + " |")
    out += ["", "Every trial (validation figures in pp):", "",
            "| model | nonzero % | t | FC-0 bytes | err diff +- se | loss diff (pp) +- se | error rule | loss rule | test - lossless |",
            "|---|---|---|---|---|---|---|---|---|"]
    for tr in r["trials"]:
        ci = tr["test_minus_lossless"]
        out.append(f"| {tr['model']} | {100 * tr['nonzero_fraction']:.2f} | {tr['t']} | {tr['layer_bytes']} | "
                   f"{tr['val_error_diff']:+.2f} +- {tr['val_error_se']:.2f} | {tr['val_loss_diff_pp']:+.3f} +- "
                   f"{tr['val_loss_se_pp']:.3f} | {'yes' if tr['error_rule'] else 'no'} | {'yes' if tr['loss_rule'] else 'no'} | "
                   f"{ci['difference']:+.2f} [{ci['ci95_low']:+.2f}, {ci['ci95_high']:+.2f}] |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frontier", default="results/frontier.json")
    ap.add_argument("--out", default="results")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--z", type=float, default=1.645)
    a = ap.parse_args(argv)
    r = study(json.loads(Path(a.frontier).read_text()), a.tolerance, a.z)
    out = Path(a.out)
    (out / "t_rule_study.json").write_text(json.dumps(r, indent=1) + "\n")
    (out / "t_rule_study.md").write_text(markdown(r, a.frontier))
    print(markdown(r, a.frontier).split("\n\nEvery trial")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
