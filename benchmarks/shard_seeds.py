"""Per-shard seed search against one seed per layer, through the whole pipeline (issue 10).

Encodes the paper's layers of one recipe at fixed t (default: the paper's Table 1 t) with the
default retraining, whole-model stage and lossless fallback off, once per setting:
``seed_search="layer"`` with one table (today's default) and ``seed_search="shard"`` with S
tables. Reports the bytes of each encoded layer and of the file, the validation error after the
last layer (the decision data), the test error of the model decoded from the file and its paired
difference (95% CI) to the simplified model and to the first setting. The test split chooses
nothing.

    python benchmarks/shard_seeds.py [--recipe lenet5:dns] [--shards 1,4,8] [--t-offset 0]

``--shards 1,4,8``: S = 1 runs the layer search, S > 1 the shard search with S tables.
``--t-offset -1`` encodes every layer one bit below the paper's t. Writes
results/shard_seeds_<recipe>_<offset>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "results"


def main(argv: list[str] | None = None) -> int:
    from weightless_lab.apps.mnist import PAPER_T
    from weightless_lab.apps.run import paired_ci
    from weightless_lab.experiments.common import ReproConfig, env_info, file_test_errors, load_data, prepare_simplified
    from weightless.pipeline.config import EncodeConfig
    from weightless.pipeline.encode import encode_with_retraining
    from weightless.training import per_example, set_threads

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="lenet5:dns")
    ap.add_argument("--shards", default="1,4,8")
    ap.add_argument("--t-offset", type=int, default=0)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    set_threads(1)
    model, pruning = a.recipe.split(":")
    cfg = ReproConfig.for_mode(False, progress=False)
    data = load_data(False)
    simp, _ = prepare_simplified(model, pruning, cfg, data, print)
    ref = per_example(simp.model, data, "test")[0]
    tmap = {n: t + a.t_offset for n, t in PAPER_T[(model, pruning)].items()}
    rows, first = [], None
    for S in [int(x) for x in a.shards.split(",")]:
        ecfg = EncodeConfig(t=tmap, whole_model=False, lossless_fallback=False, construction="compact", shards=S,
                            seed_search="layer" if S == 1 else "shard")
        t0 = time.perf_counter()
        res = encode_with_retraining(simp, data, ecfg)
        nbytes, errs = file_test_errors(res.tensors, model, data)
        first = errs if first is None else first
        row = {"shards": S, "seed_search": ecfg.seed_search, "t": [r.t for r in res.layers],
               "layer_bytes": [r.filter_bytes for r in res.layers], "file_bytes": nbytes, "val_error": res.val_error,
               "test_error": round(100 * float(errs.mean()), 2), "test_minus_simplified": paired_ci(errs, ref),
               "test_minus_first_row": paired_ci(errs, first), "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"recipe": a.recipe, "t_offset": a.t_offset, "simplified_test_error": simp.test_error,
              "simplified_val_error": simp.val_error, "rows": rows, "env": env_info(cfg)}
    out = Path(a.out)
    stem = f"shard_seeds_{model}_{pruning}_{'paper_t' if a.t_offset == 0 else f'paper_t{a.t_offset:+d}'}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    md = [f"# Seed search per shard vs per layer ({a.recipe}, t {'/'.join(map(str, rows[0]['t']))})", "",
          f"`python benchmarks/shard_seeds.py --recipe {a.recipe} --shards {a.shards} --t-offset {a.t_offset}`; commit "
          f"{str(result['env']['git']['commit'])[:10]}. Compact construction, 8 seeds (per layer, or per shard), default "
          f"retraining, whole-model stage and lossless fallback off. Simplified model: validation {simp.val_error:.2f}%, "
          f"test {simp.test_error:.2f}%.", "",
          "| tables | seed search | raw filter bytes per layer | file bytes | val error % | test error % | test - simplified, pp [95% CI] "
          "| test - first row, pp [95% CI] | s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d, f = r["test_minus_simplified"], r["test_minus_first_row"]
        md.append(f"| {r['shards']} | {r['seed_search']} | {' / '.join(f'{b:,}' for b in r['layer_bytes'])} | {r['file_bytes']:,} "
                  f"| {r['val_error']:.2f} | {r['test_error']:.2f} | {d['difference']:+.2f} [{d['ci95_low']:+.2f}, {d['ci95_high']:+.2f}] "
                  f"| {f['difference']:+.2f} [{f['ci95_low']:+.2f}, {f['ci95_high']:+.2f}] | {r['seconds']:.0f} |")
    (out / f"{stem}.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
