"""Does longer retraining absorb the false positives at the paper's t? (issue 10)

Encodes the paper's layers of one recipe at the paper's t (Table 1) with the default retraining
(masked, trainable codebooks and biases, distillation) for several epoch counts, the whole-model
stage off, and reports the validation error, the test error of the model decoded from the file
and its paired difference to the simplified model (95% CI). The test split chooses nothing.

    python benchmarks/retrain_epochs.py [--recipe lenet300:magnitude] [--epochs 2,6,12,24]

Writes results/retrain_epochs.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from weightless_lab.apps.mnist import PAPER_T
from weightless_lab.apps.run import paired_ci
from weightless_lab.experiments.common import ReproConfig, env_info, file_test_errors, load_data, prepare_simplified
from weightless.pipeline.config import EncodeConfig
from weightless.pipeline.encode import encode_with_retraining
from weightless.training import per_example, set_threads

OUT = Path(__file__).resolve().parents[1] / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="lenet300:magnitude")
    ap.add_argument("--epochs", default="2,6,12,24")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    set_threads(1)
    model, pruning = a.recipe.split(":")
    cfg = ReproConfig.for_mode(False, progress=False)
    data = load_data(False)
    simp, _ = prepare_simplified(model, pruning, cfg, data, print)
    ref = per_example(simp.model, data, "test")[0]
    tmap = dict(PAPER_T[(model, pruning)])
    rows = []
    for ep in [float(x) for x in a.epochs.split(",")]:
        base = EncodeConfig(t=tmap, whole_model=False, lossless_fallback=False)
        ecfg = replace(base, retrain=replace(base.retrain, epochs=ep))
        t0 = time.perf_counter()
        res = encode_with_retraining(simp, data, ecfg)
        nbytes, errs = file_test_errors(res.tensors, model, data)
        row = {"epochs": ep, "t": [r.t for r in res.layers], "file_bytes": nbytes, "val_error": res.val_error,
               "val_decisions": [r.decision for r in res.layers], "test_error": 100 * float(errs.mean()),
               "test_minus_simplified": paired_ci(errs, ref), "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(json.dumps({k: row[k] for k in ("epochs", "t", "val_error", "test_error", "test_minus_simplified", "seconds")}),
              flush=True)
    result = {"recipe": a.recipe, "simplified_test_error": simp.test_error, "simplified_val_error": simp.val_error,
              "rows": rows, "env": env_info(cfg)}
    out = Path(a.out)
    (out / "retrain_epochs.json").write_text(json.dumps(result, indent=1) + "\n")
    md = [f"# Retraining epochs at the paper's t ({a.recipe}, t {'/'.join(map(str, rows[0]['t']))})", "",
          f"`benchmarks/retrain_epochs.py --recipe {a.recipe} --epochs {a.epochs}`; commit "
          f"{str(result['env']['git']['commit'])[:10]}; simplified model: validation {simp.val_error:.2f}%, test "
          f"{simp.test_error:.2f}%. Default retraining (masked, trainable codebooks and biases, distillation 0.5, "
          "cosine lr 5e-4) for each epoch count after each encoded layer; whole-model stage off.", "",
          "| epochs after each layer | validation error % | test error % (decoded file) | test - simplified, pp [95% CI] | s |",
          "|---|---|---|---|---|"]
    for r in rows:
        ci = r["test_minus_simplified"]
        md.append(f"| {r['epochs']:g} | {r['val_error']:.2f} | {r['test_error']:.2f} | {ci['difference']:+.2f} "
                  f"[{ci['ci95_low']:+.2f}, {ci['ci95_high']:+.2f}] | {r['seconds']:.0f} |")
    (out / "retrain_epochs.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
