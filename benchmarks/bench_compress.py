"""Wall and CPU time of ``compress`` end to end, each next to one epoch of dense training of the
same model measured in the same run (the ratio survives machine noise), with the bytes and the
test error the run reaches (decoded from the file, paired 95% CI against the dense model).

Usage::

    python benchmarks/bench_compress.py                               # every case, default budget
    python benchmarks/bench_compress.py --cases lenet5:magnitude --max-error-increase 0.1 --out results/budget

Cases: ``lenet300:magnitude``, ``lenet5:magnitude``, ``lenet5:dns`` (the paper's recipes through
``weightless compress --model``; dense models cached in ./checkpoints, trained first if missing,
and that time is not counted) and ``own_model`` (``examples/own_model.py`` with full data, its own
dense training included). The budget covers the whole pipeline against the dense model: the
default 0.5 pp, or ``--max-error-increase`` / ``--max-error``. ``WEIGHTLESS_THREADS`` sets torch's
threads (default: the usable cores up to 2); the JSON records the count and the 1-minute load
average before and after each case (a quiet machine stays under its core count). Writes ``<out>/bench_compress.json``
and ``.md`` (``--tag T`` appends ``_T`` to the file names).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

from weightless.errors import BudgetError
from weightless.training.threads import DEFAULT_THREADS

CASES = ("lenet300:magnitude", "lenet5:magnitude", "lenet5:dns", "own_model")


def dense_epoch_seconds(model_name: str) -> float:
    """Seconds of one epoch of dense training of ``model_name`` on MNIST (the reference)."""
    from weightless.training import train
    from weightless_lab.apps.mnist import DENSE_TRAINING, mnist_task
    from weightless_lab.models import get_model

    task = mnist_task()
    cfg = replace(DENSE_TRAINING[model_name], epochs=1.0, progress=False)
    # warm-up: the first train() of a process imports torch's optimiser machinery (about 2 s)
    train(get_model(model_name), task, replace(cfg, epochs=0.01))
    t0 = time.perf_counter()
    train(get_model(model_name), task, cfg)
    return time.perf_counter() - t0


def run_lenet(case: str, args: argparse.Namespace, out: Path) -> dict:
    """One ``compress --model`` run: wall and CPU seconds, bytes, errors, budget figures."""
    from weightless_lab.apps.checkpoint import train_dense
    from weightless_lab.apps.mnist import DENSE_TRAINING, mnist_task
    from weightless_lab.apps.run import RunOptions, compress_run

    model, pruning = case.split(":")
    train_dense(model, mnist_task().train, DENSE_TRAINING[model], seed=0, cache_dir="checkpoints")  # cached: not timed
    opts = RunOptions(model=model, pruning=pruning, max_error_increase=args.max_error_increase, max_error=args.max_error,
                      allow_over_budget=True, progress=False)
    ref = dense_epoch_seconds(model)
    w0, c0 = time.perf_counter(), time.process_time()
    rep = compress_run(opts, out / f"{model}-{pruning}{args.tag}.wl", lambda s: print(s, file=sys.stderr, flush=True))
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"case": case, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
            "dense_epoch_seconds": round(ref, 2), "wall_in_dense_epochs": round(wall / ref, 2),
            "file_bytes": rep["file_bytes"], "dense_bytes": rep["dense_model_bytes"],
            "compression_factor": rep["model_compression_factor"], "dense_test_error": rep["dense_test_error"],
            "decoded_test_error": rep["decoded_test_error"], "decoded_vs_dense_test": rep["decoded_vs_dense_test"],
            "decoded_vs_simplified_test": rep["decoded_vs_simplified_test"], "budget": rep["budget"],
            "layers": {r["name"]: {"t": r["t"], "bytes": r["weightless_bytes"], "lossless_bytes": r["lossless_bytes"]}
                       for r in rep["layers"]}}


def run_own_model(args: argparse.Namespace, out: Path) -> dict:
    """``examples/own_model.py`` with full data (its dense training included)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from examples import own_model

    budget = ["--max-error-increase", str(args.max_error_increase if args.max_error_increase is not None else 0.5)]
    w0, c0 = time.perf_counter(), time.process_time()
    rep = own_model.main([*budget, "--out", str(out / f"own_model{args.tag}.wl")])
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"case": "own_model", "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
            "dense_epoch_seconds": rep.get("dense_epoch_seconds"),
            "wall_in_dense_epochs": round(wall / rep["dense_epoch_seconds"], 2) if rep.get("dense_epoch_seconds") else None,
            "file_bytes": rep["file_bytes"], "dense_bytes": rep["dense_bytes"], "compression_factor": rep["ratio"],
            "dense_test_error": rep["dense_test_error"], "decoded_test_error": rep["test_error_from_file"],
            "decoded_vs_dense_test": rep.get("decoded_vs_dense_test"), "budget": rep["budget"], "layers": rep["t"]}


def markdown(res: dict) -> str:
    """The Markdown table of a run."""
    lines = [f"# compress: wall time against one dense training epoch ({res['machine']}, "
             f"{res.get('torch_threads', '?')} torch threads)", "",
             f"Budget: {res['budget_setting']}. Command: `{res['command']}`.", "",
             "| case | wall s | CPU s | dense epoch s | wall / epoch | file B | x fp32 | test err % | vs dense (95% CI) | confirmed | backed off |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        if "budget_error" in r:
            lines.append(f"| {r['case']} | {r['wall_seconds']} | | | | | | | BudgetError: {r['budget_error']} | | |")
            continue
        ci = r.get("decoded_vs_dense_test") or {}
        conf = (r.get("budget") or {}).get("confirmation") or {}
        lines.append(f"| {r['case']} | {r['wall_seconds']} | {r['cpu_seconds']} | {r['dense_epoch_seconds']} | "
                     f"{r['wall_in_dense_epochs']} | {r['file_bytes']:,} | {r['compression_factor']} | "
                     f"{r['decoded_test_error']:.2f} | {ci.get('difference', float('nan')):+.2f} "
                     f"[{ci.get('ci95_low', float('nan')):+.2f}, {ci.get('ci95_high', float('nan')):+.2f}] | "
                     f"{conf.get('difference', float('nan')):+.2f} pp | {', '.join((r.get('budget') or {}).get('backed_off') or []) or '-'} |")
    return "\n".join(lines) + "\n"


def _capability() -> str:
    """The vector instruction set torch's CPU kernels use (it changes float rounding)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {CASES}")
    ap.add_argument("--max-error-increase", type=float, default=None)
    ap.add_argument("--max-error", type=float, default=None)
    ap.add_argument("--out", default="results/bench")
    ap.add_argument("--tag", default="", help="suffix of the output file names, after an underscore")
    args = ap.parse_args(argv)
    if args.tag and not args.tag.startswith("_"):
        args.tag = "_" + args.tag  # --tag default -> bench_compress_default.json, as committed
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        if case not in CASES:
            ap.error(f"unknown case {case!r}; known: {CASES}")
        print(f"== {case}", file=sys.stderr, flush=True)
        w0, load0 = time.perf_counter(), os.getloadavg()[0]
        try:
            runs.append(run_own_model(args, out) if case == "own_model" else run_lenet(case, args, out))
        except BudgetError as exc:  # no model within the budget: recorded, not hidden
            runs.append({"case": case, "budget_error": str(exc), "budget": exc.report,
                         "wall_seconds": round(time.perf_counter() - w0, 1)})
        runs[-1]["load_average_before_after"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
        res = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch CPU capability {_capability()}", "command": " ".join(sys.argv),
               "torch_threads": DEFAULT_THREADS,
               "budget_setting": (f"max_error_increase={args.max_error_increase}, max_error={args.max_error} vs the dense model"
                                  if args.max_error_increase is not None or args.max_error is not None
                                  else "the default budget, 0.5 pp over the dense model"),
               "runs": runs}
        (out / f"bench_compress{args.tag}.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
        (out / f"bench_compress{args.tag}.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
